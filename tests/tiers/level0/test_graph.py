"""Hand-computed level-0 counts for small graphs built here with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.errors import ModelError
from tiers.level0.graph import analyze


def _model(nodes, inputs, outputs, inits, opset=17, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    m = helper.make_model(graph, opset_imports=ops)
    m.ir_version = 9
    return m


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def dense_model(batch="N", k=784, n=10) -> onnx.ModelProto:
    """Gemm y = x·Wᵀ + b: 2·k·n ops per input, k·n + n params."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((n, k)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(n, np.float32), "b")
    node = helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)
    return _model([node], [_f("x", [batch, k])], [_f("y", [batch, n])], [w, b])


def conv_model(cin=4, cout=4, group=1, hw=8, k=3) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((cout, cin // group, k, k)).astype(np.float32), "W")
    node = helper.make_node("Conv", ["x", "W"], ["y"], group=group, pads=[1, 1, 1, 1], kernel_shape=[k, k])
    return _model([node], [_f("x", [1, cin, hw, hw])], [_f("y", [1, cout, hw, hw])], [w])


def qdq_int8_dense(k=784, n=10) -> onnx.ModelProto:
    """x → Q/DQ (activation), W int8 → DQ (per-tensor) → MatMul."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-127, 127, (k, n)).astype(np.int8), "Wq"),
             numpy_helper.from_array(np.array(0.02, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
             numpy_helper.from_array(np.array(0, np.int8), "zx")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["Wq", "sw", "zw"], ["W"]),
             helper.make_node("MatMul", ["xd", "W"], ["y"])]
    return _model(nodes, [_f("x", ["N", k])], [_f("y", ["N", n])], inits)


def int4_matmulnbits(k=64, n=32, block=32) -> onnx.ModelProto:
    """com.microsoft MatMulNBits, 4-bit weights packed two per byte with one fp32 scale per block."""
    rng = np.random.default_rng(0)
    blocks = k // block
    inits = [numpy_helper.from_array(rng.integers(0, 255, (n, blocks, block // 2)).astype(np.uint8), "B"),
             numpy_helper.from_array(np.full(n * blocks, 0.01, np.float32), "scales")]
    node = helper.make_node("MatMulNBits", ["x", "B", "scales"], ["y"], domain="com.microsoft",
                            K=k, N=n, bits=4, block_size=block)
    return _model([node], [_f("x", [1, k])], [_f("y", [1, n])], inits, domains=("com.microsoft",))


def test_dense_counts_and_dynamic_batch():
    a = analyze(dense_model())
    assert a.analysed_batch == 1
    assert a.ops == 2 * 784 * 10  # bias adds not counted
    assert a.params == 784 * 10 + 10
    assert a.weight_bytes == (784 * 10 + 10) * 4
    assert a.stored_precision == "fp32"
    assert a.activation_elements == 784 + 10
    assert a.operational_intensity("fp32") == pytest.approx(15680 / 31400)
    assert a.operational_intensity("int8", batch=8) == pytest.approx(8 * 15680 / 7850)


def test_fixed_batch_is_reported_per_input():
    a = analyze(dense_model(batch=4))
    assert a.analysed_batch == 4
    assert a.ops == 2 * 784 * 10
    assert a.nodes[0].ops == 4 * 2 * 784 * 10


@pytest.mark.parametrize("group,expected_ops,expected_params", [
    (1, 2 * 4 * 64 * (4 * 9), 4 * 4 * 9),  # plain: 2·Cout·H·W·Cin·k²
    (2, 2 * 4 * 64 * (2 * 9), 4 * 2 * 9),  # grouped: Cin/group = 2
    (4, 2 * 4 * 64 * 9, 4 * 9),  # depthwise
])
def test_conv_grouped_and_depthwise(group, expected_ops, expected_params):
    a = analyze(conv_model(group=group))
    assert a.ops == expected_ops
    assert a.params == expected_params
    assert a.weight_bytes == expected_params * 4


def test_qdq_int8_graph_has_int8_weight_bytes():
    m = qdq_int8_dense()
    ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])  # a real, loadable graph
    a = analyze(m)
    assert a.stored_precision == "int8"
    assert a.ops == 2 * 784 * 10  # Q/DQ carry the datatype, not work
    assert a.params == 7840  # scales and zero points are not parameters
    assert a.weight_bytes == 7840 + (4 + 1) * 2  # int8 weights + two fp32 scales + two int8 zero points
    fp32 = analyze(dense_model())
    assert a.weight_bytes < fp32.weight_bytes / 3.9


def test_int4_matmulnbits():
    m = int4_matmulnbits()
    ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    a = analyze(m)
    assert a.ops == 2 * 64 * 32
    assert a.params == 64 * 32
    assert a.weight_bytes == 64 * 32 / 2 + 32 * 2 * 4  # packed nibbles + one fp32 scale per block
    assert a.stored_precision == "int4"


def test_int4_qdq_dtype():
    if not hasattr(TensorProto, "INT4"):
        pytest.skip("this onnx has no INT4 datatype")
    w = helper.make_tensor("Wq", TensorProto.INT4, [8, 4], np.ones(32, np.int8).tolist())
    inits = [w, numpy_helper.from_array(np.array(0.1, np.float32), "s")]
    nodes = [helper.make_node("DequantizeLinear", ["Wq", "s"], ["W"]), helper.make_node("MatMul", ["x", "W"], ["y"])]
    a = analyze(_model(nodes, [_f("x", [1, 8])], [_f("y", [1, 4])], inits, opset=21))
    assert a.params == 32 and a.weight_bytes == 32 / 2 + 4 and a.stored_precision == "int4"


def test_elementwise_pool_norm_softmax_rules():
    rng = np.random.default_rng(0)
    c = 2
    inits = [numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), n) for n in ("g", "b", "m", "v")]
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["gp"]),
             helper.make_node("Flatten", ["gp"], ["f"]),
             helper.make_node("Softmax", ["f"], ["y"])]
    a = analyze(_model(nodes, [_f("x", [1, c, 4, 4])], [_f("y", [1, c])], inits))
    by = {n.op_type: n.ops for n in a.nodes}
    assert by == {"BatchNormalization": 2 * 32, "Relu": 32, "MaxPool": 8 * 4, "GlobalAveragePool": 8,
                  "Flatten": 0, "Softmax": 3 * 2}
    assert a.params == 4 * c


def test_unknown_op_is_listed_not_counted():
    node = helper.make_node("MyOp", ["x"], ["y"], domain="custom")
    a = analyze(_model([node], [_f("x", [1, 4])], [_f("y", [1, 4])], [], domains=("custom",)))
    assert a.ops == 0 and a.unsupported == ["MyOp"]


def test_missing_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="fix:"):
        analyze(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="fix:"):
        analyze(bad)


def test_chained_matmulnbits_keep_their_op_counts():
    """ONNX shape inference stops after a contrib op; a second MatMulNBits must still be counted."""
    from mlperf_ext.zoo.quantize import to_int4_matmulnbits

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 16)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])], "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    q = to_int4_matmulnbits(model)[0]
    assert [n.op_type for n in q.graph.node].count("MatMulNBits") == 2
    a = analyze(q)
    assert a.unsupported == []
    assert a.mac_ops == 2 * (64 * 32 + 32 * 16)  # both MatMulNBits counted


@pytest.mark.parametrize("op, attrs", [("Relu", {}), ("Softmax", {}), ("ReduceMean", {}),
                                       ("MaxPool", {"kernel_shape": [2, 2]}), ("LRN", {"size": 3})])
def test_per_element_op_of_unknown_shape_is_listed_not_silently_zero(op, attrs):
    """An input without a shape leaves the output unknown: the op cannot be counted and must say so."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    a = analyze(_model([helper.make_node(op, ["x"], ["y"], **attrs)], [x], [y], []))
    assert op in a.unsupported and a.ops == 0


def test_per_element_op_of_known_shape_is_counted():
    a = analyze(_model([helper.make_node("Relu", ["x"], ["y"])], [_f("x", [1, 8])], [_f("y", [1, 8])], []))
    assert a.ops == 8 and a.unsupported == []


def _conv_bn_model(unfolded: bool, c: int = 4, hw: int = 8) -> onnx.ModelProto:
    """Conv 3x3 (pad 1) then BatchNormalization, or the same conv with a bias (BN folded)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32), "W")]
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    if unfolded:
        inits += [numpy_helper.from_array(rng.uniform(0.5, 1.5, c).astype(np.float32), n)
                  for n in ("scale", "B", "mean", "var")]
        nodes = [helper.make_node("Conv", ["x", "W"], ["h"], **conv),
                 helper.make_node("BatchNormalization", ["h", "scale", "B", "mean", "var"], ["y"])]
    else:
        inits.append(numpy_helper.from_array(np.zeros(c, np.float32), "b"))
        nodes = [helper.make_node("Conv", ["x", "W", "b"], ["y"], **conv)]
    return _model(nodes, [_f("x", ["N", c, hw, hw])], [_f("y", ["N", c, hw, hw])], inits)


def test_unfolded_batchnorm_adds_its_ops_and_weights_but_no_macs():
    """BN kept as a node: 2 ops per output element (scale, shift), its scale, B, mean and var are stored
    weights; the Conv's count is the folded graph's."""
    unfolded, folded = _conv_bn_model(True), _conv_bn_model(False)
    ort.InferenceSession(unfolded.SerializeToString(), providers=["CPUExecutionProvider"])
    a, f = analyze(unfolded), analyze(folded)
    elements = 4 * 8 * 8
    assert a.mac_ops == f.mac_ops == 2 * elements * 4 * 9
    assert {n.op_type: n.ops for n in a.nodes} == {"Conv": a.mac_ops, "BatchNormalization": 2 * elements}
    assert a.ops == f.ops + 2 * elements and a.unsupported == []
    assert a.params == 4 * 4 * 9 + 4 * 4 and f.params == 4 * 4 * 9 + 4
    assert a.weight_bytes == 4 * a.params
    assert {n.op_type: n.params for n in a.nodes}["BatchNormalization"] == 4 * 4


def test_declared_inputs_win_over_stale_value_info():
    """A cut model can keep a value_info for its new input with the parent's batch; the input's shape counts."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    stale = helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "cut", [x], [y], value_info=[stale])
    from tiers.level0.graph import _Tensors

    assert _Tensors(helper.make_model(g)).shape("x") == [1, 4]
