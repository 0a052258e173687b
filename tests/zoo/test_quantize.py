"""Precision builders on a small trained MLP: valid ONNX, runs in ORT, accuracy near FP32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.datasets.mnist import mlp_input, mnist_split
from mlperf_ext.zoo import numpy_training as nt
from mlperf_ext.zoo import quantize
from mlperf_ext.zoo.evaluate import openvino_logits, ort_logits, top1
from mlperf_ext.zoo.metadata import onnx_facts
from mlperf_ext.zoo.mlp import export_onnx


@pytest.fixture(scope="module")
def trained():
    """A 64-wide MLP trained for 3 epochs (about 2 s), its FP32 ONNX graph and the split."""
    x_train, y_train, x_test, y_test = mnist_split()
    x_train, x_test = mlp_input(x_train), mlp_input(x_test)
    p = nt.init_mlp(784, 64, 3, 10, seed=0)
    nt.train(p, x_train, y_train, nt.TrainConfig(epochs=3, batch_size=64))
    fp32 = export_onnx(nt.fold_batchnorm(p))
    return {"weights": p, "fp32": fp32, "x_train": x_train, "y_train": y_train, "x_test": x_test,
            "y_test": y_test, "acc": top1(ort_logits(fp32.SerializeToString(), x_test), y_test)}


def _acc(model: onnx.ModelProto, t: dict) -> float:
    onnx.checker.check_model(model)
    return top1(ort_logits(model.SerializeToString(), t["x_test"]), t["y_test"])


def test_fp32_baseline_is_trained(trained):
    assert trained["acc"] > 0.85


@pytest.mark.parametrize("precision, max_drop", [("fp16", 0.005), ("int8", 0.03), ("int4", 0.03)])
def test_precision_variant_runs_close_to_fp32(trained, precision, max_drop):
    model, producer = quantize.make_variant(trained["fp32"], precision, calib=trained["x_train"])
    acc = _acc(model, trained)
    assert acc >= trained["acc"] - max_drop, (precision, acc, trained["acc"])
    facts = onnx_facts(model)
    assert producer["weight_bits"] == {"fp16": 16, "int8": 8, "int4": 4}[precision]
    if precision == "fp16":
        assert "FLOAT16" in facts["initializer_types"]
        inp = model.graph.input[0].type.tensor_type.elem_type
        assert inp == TensorProto.FLOAT  # keep_io_types
    if precision == "int8":
        assert {"QuantizeLinear", "DequantizeLinear"} <= set(facts["ops"]) and "INT8" in facts["initializer_types"]
        assert producer["calibration_samples"] == quantize.INT8_CALIBRATION_SAMPLES
        assert producer["method"] == "PTQ"
    if precision == "int4":
        assert "com.microsoft.MatMulNBits" in facts["ops"] and "Gemm" not in facts["ops"]
        assert producer["block_size"] == 32 and producer["quantized_nodes"] == 4
        bits = {helper.get_attribute_value(a) for n in model.graph.node if n.op_type == "MatMulNBits"
                for a in n.attribute if a.name == "bits"}
        assert bits == {4}


def test_int4_qdq_for_conv_style_models(trained):
    model, producer = quantize.to_int4_qdq(trained["fp32"], trained["x_train"][:64], "input")
    assert "INT4" in onnx_facts(model)["initializer_types"]
    assert _acc(model, trained) >= trained["acc"] - 0.05


def test_int2_qat_weights_export_exactly(trained):
    """Weights already on the ternary grid (what QAT produces) survive INT2 export unchanged."""
    p, t = trained["weights"], trained
    quant = nt.fake_quant_2bit
    grid = export_onnx(nt.fold_batchnorm(p, quant))
    model, producer = quantize.to_int2_qdq(grid, scale_rule="max", qat={"epochs": 0})
    assert producer["method"] == "QAT" and producer["max_abs_weight_rounding_error"] < 1e-5
    facts = onnx_facts(model)
    assert "INT2" in facts["initializer_types"] and facts["opsets"]["ai.onnx"] == 25 and facts["ir_version"] == 11
    got = ort_logits(model.SerializeToString(), t["x_test"])
    np.testing.assert_allclose(got, nt.forward(p, t["x_test"], quant), rtol=1e-3, atol=1e-3)


def test_int2_ptq_computes_what_its_ternary_weights_compute(trained):
    """Plain 2-bit PTQ may be a weak model, so its accuracy proves nothing; what must hold is that ORT runs
    exactly the ternary weights the recipe chose. onnx's reference evaluator (pure numpy) runs the fp32 graph
    with those weights (codes x scale) as the independent side."""
    from onnx.reference import ReferenceEvaluator

    model, producer = quantize.make_variant(trained["fp32"], "int2")
    assert producer["method"] == "PTQ"
    ternary = onnx.ModelProto.FromString(trained["fp32"].SerializeToString())
    axes = quantize._weight_axes(ternary)
    for init in ternary.graph.initializer:
        if init.name in axes:
            w = numpy_helper.to_array(init)
            codes, scale = quantize.int2_codes(w, axes[init.name], "twn")
            shape = [1] * w.ndim
            shape[axes[init.name]] = -1
            init.CopyFrom(numpy_helper.from_array((codes * scale.reshape(shape)).astype(np.float32), init.name))
    x = trained["x_test"]
    reference = ReferenceEvaluator(ternary).run(None, {ternary.graph.input[0].name: x})[0]
    got = ort_logits(model.SerializeToString(), x)
    np.testing.assert_allclose(got, reference, rtol=1e-3, atol=1e-3 * np.abs(reference).max())
    assert _acc(model, trained) == pytest.approx(top1(reference, trained["y_test"]), abs=0.002)


def test_int2_qat_beats_chance_by_a_margin(trained):
    p = trained["weights"].copy()
    nt.train(p, trained["x_train"], trained["y_train"],
             nt.TrainConfig(epochs=2, batch_size=64, lr=3e-4, quant="int2"))
    model, _ = quantize.to_int2_qdq(export_onnx(nt.fold_batchnorm(p, nt.fake_quant_2bit)), scale_rule="max")
    assert _acc(model, trained) > 0.8


def test_pack_int2_roundtrips_through_onnx():
    codes = np.array([[-1, 0, 1], [1, -2, 0], [0, 0, -1]], np.int8)
    t = helper.make_tensor("w", TensorProto.INT2, [3, 3], quantize.pack_int2(codes), raw=True)
    np.testing.assert_array_equal(numpy_helper.to_array(t).astype(np.int8), codes)


@pytest.mark.parametrize("trans_b, alpha, beta", [(1, 1.0, 1.0), (0, 0.5, 2.0)])
def test_gemm_to_matmul_is_equivalent(trans_b, alpha, beta):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 7) if trans_b else (7, 5)).astype(np.float32)
    c = rng.normal(size=5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w", "c"], ["y"], transB=trans_b, alpha=alpha, beta=beta)], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rewritten, count = quantize.gemm_to_matmul(model)
    assert count == 1 and {n.op_type for n in rewritten.graph.node} == {"MatMul", "Add"}
    x = rng.normal(size=(4, 7)).astype(np.float32)
    np.testing.assert_allclose(ort_logits(rewritten.SerializeToString(), x),
                               ort_logits(model.SerializeToString(), x), rtol=1e-5, atol=1e-5)


def test_openvino_claims_hold(trained, tmp_path):
    """The OpenVINO backend's `supports` facts, checked against OpenVINO itself."""
    pytest.importorskip("openvino")
    from sut.base import DeploymentOptions
    from sut.model_file import inspect_model
    from sut.onnxruntime import OnnxRuntimeBackend
    from sut.openvino import INT2_REASON, OpenVinoBackend

    int2, _ = quantize.to_int2_qdq(trained["fp32"], scale_rule="twn")
    int8, _ = quantize.to_int8_qdq(trained["fp32"], trained["x_train"][:64], "input")
    for name, model in (("int2", int2), ("int8", int8)):
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, path)
        why = OpenVinoBackend.supports(inspect_model(path), DeploymentOptions())
        if why is None:
            acc = top1(openvino_logits(path, trained["x_test"]), trained["y_test"])
            assert acc >= trained["acc"] - 0.03
        else:
            assert name == "int2" and why.startswith(INT2_REASON)
            with pytest.raises(Exception, match="Unsupported type"):
                openvino_logits(path, trained["x_test"][:4])
        assert OnnxRuntimeBackend.supports(inspect_model(path), DeploymentOptions()) is None


def test_int2_leaves_an_opset25_callers_model_untouched():
    """At opset >= 25 no conversion copies the graph, so to_int2_qdq must copy it itself."""
    w = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
    model.ir_version = 11
    before = model.SerializeToString()
    variant, _ = quantize.to_int2_qdq(model, scale_rule="max")
    assert model.SerializeToString() == before
    assert "DequantizeLinear" in {n.op_type for n in variant.graph.node}
