"""Small models built here (onnx.helper, the zoo's GraphBuilder) and ONNX Runtime helpers for the tests."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.zoo import mlp
from mlperf_ext.zoo.onnx_builder import GraphBuilder


def ort_run(model: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of ``model`` on ORT's CPU provider, by name."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))


def run_chain(cuts, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run cuts one after another (in the given order), each reading its inputs by name from the ones before."""
    env = dict(feeds)
    for cut in cuts:
        env.update(ort_run(cut.model, {s.name: env[s.name] for s in cut.inputs}))
    return env


def mlp3(widths=(20, 16, 16, 16, 5), seed: int = 0, batch="N") -> onnx.ModelProto:
    """The zoo's MLP export (Gemm + Relu, 3 hidden layers) with random weights and biases."""
    rng = np.random.default_rng(seed)
    layers = [(rng.standard_normal((a, b)).astype(np.float32) * np.float32(1 / np.sqrt(a)),
               rng.standard_normal(b).astype(np.float32) * np.float32(0.1))
              for a, b in zip(widths[:-1], widths[1:], strict=True)]
    model = mlp.export_onnx(layers, name="mlp3")
    if batch != "N":
        for vi in list(model.graph.input) + list(model.graph.output):
            vi.type.tensor_type.shape.dim[0].Clear()
            vi.type.tensor_type.shape.dim[0].dim_value = batch
    return model


def small_resnet(seed: int = 0) -> onnx.ModelProto:
    """Stem conv + max pool, an identity residual block, a projection block, pooling and a classifier."""
    g = GraphBuilder("small_resnet", seed)
    x = g.input("input", 3, 16, 16)
    x = g.max_pool(g.conv(x, 8, 3, stride=1, pad=1), 2, 2)
    for out_ch, stride in ((8, 1), (16, 2)):
        shortcut = x
        if stride != 1 or g.channels[x] != out_ch:
            shortcut = g.conv(x, out_ch, 1, stride=stride, relu=False)
        y = g.conv(x, out_ch, 3, stride=stride, pad=1)
        y = g.conv(y, out_ch, 3, pad=1, relu=False, gamma_scale=0.3)
        x = g.relu(g.add(y, shortcut))
    x = g.flatten(g.global_avg_pool(x), g.channels[x])
    return g.finish(g.gemm(x, 10, output="logits"))


def calibration(shape=(8, 3, 16, 16), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _f(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    m = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(inits)),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def reshape_with_shape_chain() -> onnx.ModelProto:
    """Relu -> Reshape to [N, -1] through Shape -> Gather -> Unsqueeze -> Concat, then Add of a Constant."""
    ints = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
            numpy_helper.from_array(np.array([0], np.int64), "axes0"),
            numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Shape", ["r"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["r", "target"], ["flat"]),
             helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
                 np.linspace(-1, 1, 24).astype(np.float32), "cv")),
             helper.make_node("Add", ["flat", "c"], ["y"])]
    return _model(nodes, [_f("x", ["N", 2, 3, 4])], [_f("y", ["N", 24])], ints)


def matmul_bias(shared: bool = False) -> onnx.ModelProto:
    """MatMul + bias Add + Relu; with ``shared`` the product is also an output of the graph."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["p"], name="fc"),
             helper.make_node("Add", ["p", "b"], ["h"], name="bias"),
             helper.make_node("Relu", ["h"], ["y"], name="act")]
    outputs = [_f("y", ["N", 4])] + ([_f("p", ["N", 4])] if shared else [])
    return _model(nodes, [_f("x", ["N", 8])], outputs, inits)


def two_parallel_chains() -> onnx.ModelProto:
    """Two chains from one input to two outputs that never rejoin, interleaved in the node order."""
    nodes = [helper.make_node("Relu", ["x"], ["a1"], name="a1"),
             helper.make_node("Sigmoid", ["x"], ["b1"], name="b1"),
             helper.make_node("Relu", ["a1"], ["a2"], name="a2"),
             helper.make_node("Sigmoid", ["b1"], ["b2"], name="b2")]
    return _model(nodes, [_f("x", ["N", 4])], [_f("a2", ["N", 4]), _f("b2", ["N", 4])])
