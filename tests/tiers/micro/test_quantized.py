"""Quantized variants stay quantized when cut: dtypes read from each cut model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from mlperf_ext.zoo import archs, quantize
from tests.tiers.micro.models import calibration, mlp3, ort_run, run_chain, small_resnet
from tiers.micro import cut_layers, cut_stacks, prepare, synthetic_inputs


def _initializer_types(model: onnx.ModelProto) -> dict[str, int]:
    return {t.name: t.data_type for t in model.graph.initializer}


def _weight_dq_types(model: onnx.ModelProto) -> list[int]:
    """Data types of the initializers that DequantizeLinear nodes read as their quantized input."""
    inits = _initializer_types(model)
    return [inits[n.input[0]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]


def _check_quantized_compute(cut, weight_type: int) -> None:
    ops = [n.op_type for n in cut.model.graph.node]
    assert "QuantizeLinear" in ops, cut.name
    assert weight_type in _weight_dq_types(cut.model), cut.name
    inner = [s for s in cut.inputs if s.name != "input"]
    assert all(s.dtype in (np.uint8, np.int8) for s in inner), cut.name  # activations arrive quantized


def test_int8_qdq_layers_are_quantized_and_chain_into_the_model(small_resnet_int8):
    q = small_resnet_int8
    cuts = cut_layers(q, dedup=False)
    assert cuts.skipped == []
    compute = [c for c in cuts.cuts if c.op_type in ("Conv", "Gemm")]
    assert len(compute) == sum(n.op_type in ("Conv", "Gemm") for n in q.graph.node)
    for cut in compute:
        _check_quantized_compute(cut, TensorProto.INT8)
        assert cut.cost.weight_dtypes.get("int8", 0) > 0  # level 0 reads the stored int8 weights
    for cut in cuts.cuts:
        outs = ort_run(cut.model, synthetic_inputs(cut, batch=2))
        assert all(outs[s.name].shape == s.concrete_shape(2) for s in cut.outputs)
    x = calibration((3, 3, 16, 16), seed=5)
    whole = ort_run(q, {"input": x})["logits"]
    np.testing.assert_allclose(run_chain(cuts.cuts, {"input": x})["logits"], whole, atol=1e-6)


def test_int4_matmulnbits_layers_keep_their_packed_weights():
    model = mlp3(widths=(32, 32, 32, 32, 16))
    q, _ = quantize.to_int4_matmulnbits(model, block_size=16)
    cuts = cut_layers(q, dedup=False)
    fc = [c for c in cuts.cuts if c.op_type == "MatMulNBits"]
    assert len(fc) == 4 and cuts.skipped == []
    for cut in fc:
        assert cut.op_types == ("MatMulNBits", "Add")  # the Gemm's bias stays in the layer
        node = next(n for n in cut.model.graph.node if n.op_type == "MatMulNBits")
        assert onnx.helper.get_attribute_value(next(a for a in node.attribute if a.name == "bits")) == 4
        assert _initializer_types(cut.model)[node.input[1]] == TensorProto.UINT8  # packed 4-bit blob
        assert cut.cost.weight_dtypes.get("int4", 0) == 32 * (16 if cut is fc[-1] else 32)
        assert cut.inputs[0].shape == (None, 32)
    x = np.random.default_rng(2).standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_allclose(run_chain(cuts.cuts, {"input": x})["logits"], ort_run(q, {"input": x})["logits"],
                               atol=1e-6)


def test_int4_qdq_layers_keep_int4_weights():
    q, _ = quantize.to_int4_qdq(small_resnet(), calibration(), "input")
    cuts = cut_layers(q)
    convs = [c for c in cuts.cuts if c.op_type == "Conv"]
    assert convs and cuts.skipped == []
    for cut in convs:
        _check_quantized_compute(cut, TensorProto.INT4)
    for cut in cuts.cuts:
        ort_run(cut.model, synthetic_inputs(cut))


def test_int8_stacks_stay_quantized(small_resnet_int8):
    q = small_resnet_int8
    stacks = cut_stacks(q, 2)
    assert stacks.cuts
    with_conv = [c for c in stacks.cuts if "Conv" in c.layer_ops]
    assert with_conv
    for cut in with_conv:
        _check_quantized_compute(cut, TensorProto.INT8)
    for cut in stacks.cuts:
        ort_run(cut.model, synthetic_inputs(cut))


@pytest.mark.slow
def test_int8_resnet50_cuts_are_quantized_and_run(resnet50):
    """The zoo's INT8 recipe on ResNet-50 (about 12 s to quantize on two cores)."""
    q, _ = quantize.to_int8_qdq(resnet50, archs.calibration_inputs(), archs.INPUT_NAME)
    lg = prepare(q, name="resnet50-int8")
    cuts = cut_layers(lg)
    assert cuts.skipped == [] and cuts.occurrences == cuts.layer_count
    assert sum(c.op_type == "Conv" for c in cuts.cuts) > 0
    for cut in cuts.cuts:
        if cut.op_type in ("Conv", "Gemm"):
            _check_quantized_compute(cut, TensorProto.INT8)
        outs = ort_run(cut.model, synthetic_inputs(cut))
        assert all(outs[s.name].shape == s.concrete_shape(1) for s in cut.outputs)
