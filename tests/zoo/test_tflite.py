"""TFLite variants: the float writer against ONNX Runtime, full-integer quantization, and the converted
models' held-out accuracy and top-1 agreement with the ONNX INT8 variants (tiny MLP and CNV families trained
here)."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.errors import BackendUnavailable, ModelError
from mlperf_ext.zoo import cnv, read_metadata, registry, tflite
from mlperf_ext.zoo.evaluate import ort_logits
from mlperf_ext.zoo.metadata import sha256_file
from mlperf_ext.zoo.mlp import MlpFamily, MlpRecipe

TINY_MLP = MlpRecipe(widths=(64, 32), epochs=3, batch_size=64, finetune_epochs=2, qat_epochs=2)
#: one width trained from scratch, long enough to classify (86.9 % held-out top-1 measured; ~1 s of training)
TINY_CNV = cnv.FamilyConfig(
    widths=(8,), method="scratch", base=cnv.TrainConfig(epochs=3, lr=3e-3), train_limit=1024
)
#: the converted model must agree with the ONNX INT8 variant on at least this share of held-out top-1s
#: (both are min/max-calibrated 8-bit PTQ of the same weights on the same 256 samples; measured: 99.9-100 %)
MIN_AGREEMENT = 0.97


@pytest.fixture(scope="module")
def families():
    """Tiny MLP (and, with torch, CNV) families and their TFLite twins, registered under test prefixes."""
    sources = [MlpFamily(TINY_MLP, prefix="mlptfl")]
    if _has_torch():
        sources.append(cnv.CnvFamily(TINY_CNV, prefix="cnvtfl"))
    for family in sources:
        registry.register_family(family.prefix, family.list_models, family.build)
    twins = tflite.TfliteFamily(sources=tuple(sources), prefix="tfltest")
    tflite.register(twins)
    yield twins
    for name in ("tfltest", *(f.prefix for f in sources)):
        registry.unregister_family(name)


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def built(families, tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("zoo")
    names = ["mlptfl-w32-int8-tflite"] + (["cnvtfl-c8-int8-tflite"] if _has_torch() else [])
    messages: list[str] = []
    paths = registry.build(names, models_dir, progress=messages.append)
    return models_dir, dict(zip(names, paths, strict=True)), messages


def test_every_int8_variant_has_a_tflite_twin(families):
    names = {i.name: i for i in families.list_models()}
    assert {"mlptfl-w64-int8-tflite", "mlptfl-w32-int8-tflite"} <= set(names)
    info = names["mlptfl-w32-int8-tflite"]
    assert (info.family, info.precision, info.dataset, info.pruning) == (
        "mlptfl-tflite",
        "int8",
        "mnist",
        0.5,
    )
    assert not any(n.endswith(("fp32-tflite", "int2-tflite")) for n in names)
    default = {i.name for i in tflite.DEFAULT_FAMILY.list_models()}
    assert {"mlp-w256-int8-tflite", "mlp-w2048-int8-tflite", "cnv-c16-int8-tflite"} <= default


def test_artifact_is_a_full_integer_tflite_file(built):
    _, paths, _ = built
    for path in paths.values():
        assert path.suffix == ".tflite"
        data = path.read_bytes()
        graph = tflite.read_tflite(data)
        assert set(graph.tensor_types) == {"int8", "int32"}  # int32: biases and the reshape's shape
        assert "QUANTIZE" not in graph.ops and "DEQUANTIZE" not in graph.ops
        assert graph.inputs[0].quant.dtype == "int8" and graph.inputs[0].quant.scale > 0
        assert graph.outputs[0].quant.dtype == "int8" and graph.inputs[0].signature[0] == -1  # dynamic batch
        meta = read_metadata(path)
        assert (
            meta["sha256"] == sha256_file(path) and meta["format"] == "tflite" and meta["precision"] == "int8"
        )
        assert meta["input"]["tflite"]["dtype"] == "int8" and meta["producer"]["calibration_samples"] == 256


def test_cnv_twin_is_built_with_torch(built):
    pytest.importorskip("torch", reason="the CNV family needs torch (pip install 'mlperf-ext[torch]')")
    assert "cnvtfl-c8-int8-tflite" in built[1]


def test_reader_agrees_with_the_interpreter(built):
    """read_tflite parses the flatbuffer itself; LiteRT's interpreter must see the same inputs and outputs."""
    from ai_edge_litert.interpreter import Interpreter

    for path in built[1].values():
        graph = tflite.read_tflite(path.read_bytes())
        interpreter = Interpreter(model_path=str(path))
        for ours, theirs in ((graph.inputs[0], interpreter.get_input_details()[0]),
                             (graph.outputs[0], interpreter.get_output_details()[0])):
            assert ours.name == theirs["name"] and ours.quant == tflite.TensorQuant.of(theirs)
            assert list(ours.shape) == list(theirs["shape"])
            assert list(ours.signature) == list(theirs["shape_signature"])
        assert len(graph.ops) == len(interpreter._get_ops_details())


def test_reader_refuses_what_is_not_a_tflite_file():
    for data in (b"not a model at all", b"\x10\x00\x00\x00TFL3" + b"\xff" * 8):
        with pytest.raises(ModelError) as err:
            tflite.read_tflite(data)
        assert "\n" not in str(err.value) and "fix:" in str(err.value)


def test_mlp_ops_and_cnv_ops(built):
    _, paths, _ = built
    assert tflite.read_tflite(paths["mlptfl-w32-int8-tflite"].read_bytes()).facts()["ops"] == {
        "FULLY_CONNECTED": 4
    }
    if "cnvtfl-c8-int8-tflite" in paths:
        ops = tflite.read_tflite(paths["cnvtfl-c8-int8-tflite"].read_bytes()).facts()["ops"]
        assert ops["CONV_2D"] == 6 and ops["MAX_POOL_2D"] == 2 and ops["RESHAPE"] == 2  # NCHW in, flatten


def test_accuracy_and_agreement_are_measured_on_the_held_out_split(built):
    models_dir, paths, _ = built
    from mlperf_ext.datasets.mnist import cnv_input, mlp_input, mnist_split

    _, _, x_test, y_test = mnist_split()
    for name, path in paths.items():
        meta = read_metadata(path)
        x = (cnv_input if meta["dataset"] == "mnist32" else mlp_input)(x_test)
        got = tflite.litert_logits(path, x)
        onnx_int8 = ort_logits(models_dir / f"{meta['source']['int8']}.onnx", x)
        accuracy = float((got.argmax(1) == y_test).mean())
        agreement = float((got.argmax(1) == onnx_int8.argmax(1)).mean())
        assert meta["accuracy"] == pytest.approx(accuracy) and meta["accuracy_detail"]["samples"] == len(
            y_test
        )
        assert meta["agreement"]["onnx_int8"] == pytest.approx(agreement)
        assert agreement >= MIN_AGREEMENT, (
            f"{name}: top-1 agreement with the ONNX INT8 variant {agreement:.3f}"
        )
        assert accuracy > 0.5, f"{name}: held-out top-1 {accuracy:.3f}"  # 10 classes: chance is 0.1
        assert abs(accuracy - meta["agreement"]["onnx_int8_accuracy"]) <= 1 - agreement


def test_second_build_is_cached(built):
    models_dir, paths, messages = built
    path = paths["mlptfl-w32-int8-tflite"]
    before = path.stat().st_mtime_ns
    again: list[str] = []
    assert registry.build(["mlptfl-w32-int8-tflite"], models_dir, progress=again.append) == [path]
    assert path.stat().st_mtime_ns == before and "mlptfl-w32-int8-tflite: cached" in again
    assert any("top-1 agreement with mlptfl-w32-int8" in m for m in messages)


def test_static_batch_copy_for_edgetpu_compiler(built):
    """`--static-batch 1` writes a copy with no dynamic-sized tensor left, computing the same outputs."""
    models_dir, paths, _ = built
    lines: list[str] = []
    assert (
        tflite.main([str(models_dir), "mlptfl-w32-int8-tflite", "--static-batch", "1"], say=lines.append) == 0
    )
    static = models_dir / "mlptfl-w32-int8-tflite-b1.tflite"
    assert any("edgetpu_compiler mlptfl-w32-int8-tflite-b1.tflite" in line for line in lines)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(static))
    interpreter.allocate_tensors()
    assert all(-1 not in list(t["shape_signature"]) for t in interpreter.get_tensor_details())
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    np.testing.assert_array_equal(
        tflite.litert_logits(static, x), tflite.litert_logits(paths["mlptfl-w32-int8-tflite"], x)
    )
    meta = read_metadata(static)
    assert meta["static_batch"] == 1 and meta["sha256"] == sha256_file(static)


def test_build_without_litert_names_the_extra(families, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # `import ai_edge_litert` raises ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'mlperf-ext\[coral\]'"):
        registry.build(["mlptfl-w32-int8-tflite"], tmp_path)
    assert not list(tmp_path.glob("*.tflite"))


# ---- the float writer on its own -------------------------------------------------------------------------


def _graph(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    model = helper.make_model(
        helper.make_graph(nodes, "t", inputs, outputs, inits), opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.checker.check_model(model)
    return model


def _image_net(channels: int, padding: list[int], seed: int = 0) -> onnx.ModelProto:
    """Conv 3x3 (padded or not) -> Relu -> MaxPool 2 -> Flatten of CxHxW > 1 -> Gemm: each layout change."""
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((4, channels, 3, 3)).astype(np.float32)
    kb = rng.standard_normal(4).astype(np.float32)
    side = (8 - 2 + padding[0] + padding[2]) // 2
    w = rng.standard_normal((5, 4 * side * side)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "k", "kb"], ["c"], kernel_shape=[3, 3], pads=padding),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["logits"], transB=1),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((k, "k"), (kb, "kb"), (w, "w"), (b, "b"))]
    return _graph(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        inits,
    )


@pytest.mark.parametrize("channels,padding", [(1, [0, 0, 0, 0]), (3, [0, 0, 0, 0]), (3, [1, 1, 1, 1])])
def test_float_writer_reproduces_onnx_runtime(channels, padding):
    model = _image_net(channels, padding)
    x = np.random.default_rng(1).standard_normal((16, channels, 8, 8)).astype(np.float32)
    expected = ort_logits(model.SerializeToString(), x)
    data = tflite.float_tflite(model)
    got = tflite.litert_logits(data, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    ops = tflite.read_tflite(data).facts()["ops"]
    assert ops.get("TRANSPOSE", 0) == (2 if channels > 1 else 1)  # NCHW->NHWC (C>1), and back before Flatten
    assert "RELU" not in ops  # fused into the CONV_2D


def test_float_writer_refuses_what_it_does_not_write():
    softmax = _graph(
        [helper.make_node("Softmax", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [],
    )
    with pytest.raises(ModelError) as err:
        tflite.float_tflite(softmax)
    msg = str(err.value)
    assert "\n" not in msg and "Softmax" in msg and "fix:" in msg and "onnx2tf" in msg


def test_tensor_quantization_saturates_and_round_trips():
    q = tflite.TensorQuant("int8", 0.5, -3)
    x = np.asarray([-100.0, -1.25, 0.0, 0.26, 100.0], np.float32)
    codes = q.quantize(x)
    assert codes.dtype == np.int8 and codes.tolist() == [-128, -5, -3, -2, 127]  # -2.5 rounds to even
    np.testing.assert_allclose(q.dequantize(codes), [-62.5, -1.0, 0.0, 0.5, 65.0])
    assert tflite.TensorQuant("float32").quantize(x) is x  # an unquantized tensor passes unchanged


def test_level0_counts_a_tflite_variant_from_its_onnx_int8_source(built):
    from tiers.level0.graph import analyze, onnx_source

    models_dir, paths, _ = built
    path = paths["mlptfl-w32-int8-tflite"]
    source = onnx_source(path)
    assert source == models_dir / "mlptfl-w32-int8.onnx"
    assert analyze(path).ops == analyze(source).ops > 0
    copy = models_dir / "elsewhere.tflite"
    copy.write_bytes(path.read_bytes())  # no metadata beside it: refused, not guessed
    with pytest.raises(ModelError, match="names no ONNX source"):
        analyze(copy)
