"""Models with several inputs: a BERT-style encoder (input_ids, attention_mask, token_type_ids) built with onnx,
its samples as named arrays (.npz, inputs/ directory), checked against the model by name, shape and dtype, run on
ONNX Runtime and OpenVINO directly and through the real CLI in all four scenarios, and refused in one line by the
backends that feed one tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.datasets import open_dataset
from mlperf_ext.errors import DatasetError, ModelError
from sut.base import DeploymentOptions
from sut.model_file import RECORD, check_inputs, inspect_model
from sut.onnxruntime import OnnxRuntimeBackend
from tests.sut.conftest import assert_four_scenarios_valid, assert_user_error, run_spec

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
VOCAB, WIDTH, CLASSES, LENGTH = 50, 16, 4, 12


def build_encoder(path: Path, seed: int = 0):
    """Embeddings of the tokens and their segment, mean-pooled over the attention mask, then a linear head; returns
    (path, numpy reference of the logits)."""
    rng = np.random.default_rng(seed)
    words = rng.standard_normal((VOCAB, WIDTH)).astype(np.float32)
    types = rng.standard_normal((2, WIDTH)).astype(np.float32)
    head = rng.standard_normal((WIDTH, CLASSES)).astype(np.float32)
    bias = rng.standard_normal(CLASSES).astype(np.float32)
    one, axis1, axis2 = np.array(1.0, np.float32), np.array([1], np.int64), np.array([2], np.int64)
    nodes = [
        helper.make_node("Gather", ["words", "input_ids"], ["w"]),
        helper.make_node("Gather", ["types", "token_type_ids"], ["t"]),
        helper.make_node("Add", ["w", "t"], ["h"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
        helper.make_node("Mul", ["h", "m3"], ["hm"]),
        helper.make_node("ReduceSum", ["hm", "axis1"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["m", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one"], ["denominator"]),
        helper.make_node("Div", ["total", "denominator"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "head"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], ["logits"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((words, "words"), (types, "types"), (head, "head"),
                                                        (bias, "bias"), (one, "one"), (axis1, "axis1"),
                                                        (axis2, "axis2"))]
    graph = helper.make_graph(nodes, "encoder",
                              [helper.make_tensor_value_info(n, TensorProto.INT64, ["N", LENGTH]) for n in INPUTS],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)

    def reference(input_ids, attention_mask, token_type_ids):
        h = words[input_ids] + types[token_type_ids]
        m = attention_mask.astype(np.float32)
        pooled = (h * m[..., None]).sum(1) / np.maximum(m.sum(1, keepdims=True), 1.0)
        return pooled @ head + bias

    return path, reference


def encoder_samples(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, LENGTH + 1, n)
    positions = np.arange(LENGTH)
    mask = (positions[None, :] < lengths[:, None]).astype(np.int64)
    split = rng.integers(0, LENGTH, n)
    return {"input_ids": rng.integers(0, VOCAB, (n, LENGTH)).astype(np.int64) * mask,
            "attention_mask": mask,
            "token_type_ids": (positions[None, :] >= split[:, None]).astype(np.int64) * mask}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """(model path, its .npz dataset labelled with the reference's top-1, the arrays, the reference)."""
    folder = tmp_path_factory.mktemp("encoder")
    path, reference = build_encoder(folder / "encoder.onnx")
    arrays = encoder_samples(240)
    labels = reference(**arrays).argmax(1)
    data = folder / "encoder.npz"
    np.savez(data, **arrays, labels=labels)
    return path, data, arrays, reference


def test_the_model_reads_as_three_inputs_fed_as_records(encoder):
    info = inspect_model(encoder[0])
    assert info.input_names == INPUTS
    assert info.input.dtype == RECORD and info.input.shape == (None,) and info.fixed_batch is None
    assert all(spec.shape == (None, LENGTH) and spec.dtype == "int64" for spec in info.inputs)


def test_named_arrays_become_records_from_npz_and_an_inputs_folder(encoder, tmp_path):
    _path, data, arrays, _reference = encoder
    dataset = open_dataset(data)
    assert np.dtype(dataset.dtype).names == INPUTS and dataset.sample_shape == () and len(dataset) == 240
    rows = dataset.load(np.array([3, 7]))
    for name in INPUTS:
        np.testing.assert_array_equal(rows[name], arrays[name][[3, 7]])
    folder = tmp_path / "encoder-data"
    (folder / "inputs").mkdir(parents=True)
    for name, values in arrays.items():
        np.save(folder / "inputs" / f"{name}.npy", values)
    np.save(folder / "labels.npy", np.zeros(240, np.int64))
    again = open_dataset(folder)
    assert sorted(np.dtype(again.dtype).names) == sorted(INPUTS) and len(again.labels) == 240  # fields by file name
    for name in INPUTS:
        np.testing.assert_array_equal(again.load(np.array([3, 7]))[name], rows[name])


def test_inputs_are_checked_by_name_shape_and_dtype(encoder, tmp_path):
    path, _data, arrays, _reference = encoder
    specs = inspect_model(path).inputs
    check_inputs(open_dataset(encoder[1]), specs)
    cases = {
        "renamed": ({**{k: v for k, v in arrays.items() if k != "token_type_ids"}, "segment_ids": arrays["token_type_ids"]},
                    "missing token_type_ids"),
        "int32": ({**arrays, "attention_mask": arrays["attention_mask"].astype(np.int32)}, "int64"),
        "longer": ({k: np.pad(v, ((0, 0), (0, 4))) for k, v in arrays.items()}, f"({LENGTH},)"),
    }
    for name, (bad, words) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **bad)
        with pytest.raises(DatasetError) as exc:
            check_inputs(open_dataset(tmp_path / f"{name}.npz"), specs)
        assert words in assert_user_error(exc.value), name
    with pytest.raises(DatasetError) as exc:
        check_inputs(open_dataset("mnist"), specs)
    assert "one array per sample" in assert_user_error(exc.value)
    np.savez(tmp_path / "short.npz", input_ids=arrays["input_ids"], attention_mask=arrays["attention_mask"][:5])
    with pytest.raises(DatasetError) as exc:
        open_dataset(tmp_path / "short.npz")
    assert "different numbers of samples" in assert_user_error(exc.value)


def _direct(backend_cls, encoder, **options):
    path, data, arrays, reference = encoder
    backend = backend_cls()
    backend.load(path, DeploymentOptions(max_batch=8, **options))
    dataset = open_dataset(data)
    batch = dataset.load(np.arange(8))
    expected = reference(**{k: v[:8] for k, v in arrays.items()})
    np.testing.assert_allclose(backend.infer(batch, options.get("streams", 1) - 1), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.infer(batch[:3]), expected[:3], rtol=1e-4, atol=1e-4)
    assert backend.compute_step(batch)() > 0
    assert tuple(s.name for s in backend.input_specs()) == INPUTS
    backend.close()


def test_onnxruntime_feeds_each_input_by_name(encoder):
    _direct(OnnxRuntimeBackend, encoder, streams=2, threads=2)


def test_openvino_feeds_each_input_by_name(encoder):
    pytest.importorskip("openvino")
    from sut.openvino import OpenVinoBackend

    _direct(OpenVinoBackend, encoder, streams=2, threads=2)


def test_backends_that_feed_one_tensor_refuse_in_one_line(encoder):
    from sut.registry import backend_class

    info = inspect_model(encoder[0])
    for name in ("tensorrt", "pynq"):
        reason = backend_class(name).supports(info, DeploymentOptions())
        assert "3 (input_ids, attention_mask, token_type_ids)" in reason and "fix:" in reason, name


def test_a_scalar_or_disagreeing_batch_is_a_model_error(tmp_path):
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 3])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "g", [a, b],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    with pytest.raises(ModelError) as exc:
        inspect_model(tmp_path / "m.onnx")
    assert "disagree on the batch dimension" in assert_user_error(exc.value)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_four_scenarios_through_the_cli_score_the_encoder(encoder, tmp_path, backend):
    """All four scenarios VALID; Offline's accuracy run scores every sample right (the labels are the model's own
    top-1), which holds only if every input reached the input of its name."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    path, data, _arrays, _reference = encoder
    common = {"models": [str(path)], "dataset": str(data), "backends": [backend], "batch": 8, "threads": 1}
    short = {"min_duration_ms": 200}
    proc, rows = run_spec([
        {**common, "scenarios": ["SingleStream", "MultiStream"], "mode": "performance", "settings": short},
        {**common, "scenarios": ["Offline"], "mode": "submission", "streams": 2, "threads": 2, "settings": short},
        {**common, "scenarios": ["Server"], "mode": "performance",
         "settings": {**short, "server_target_qps": 3000}},
    ], tmp_path)
    assert_four_scenarios_valid(proc, rows, backend)
    acc = rows["Offline"].accuracy
    assert (acc.good, acc.total) == (240, 240)
