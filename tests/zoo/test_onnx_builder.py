"""GraphBuilder.finish hands back only models that onnx.checker accepts; fold_bn=False keeps BatchNorm."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from mlperf_ext.zoo.onnx_builder import GraphBuilder


def _tiny() -> GraphBuilder:
    g = GraphBuilder("tiny", seed=0)
    x = g.input("input", 1, 4, 4)
    x = g.flatten(g.global_avg_pool(g.conv(x, 2, 3, pad=1)), 2)
    g.gemm(x, 3, output="logits")
    return g


def test_finish_returns_a_checked_model():
    model = _tiny().finish("logits")
    onnx.checker.check_model(model)
    assert model.graph.output[0].name == "logits"


def test_finish_rejects_a_malformed_graph():
    g = _tiny()
    g.nodes.append(helper.make_node("Relu", ["logits"], ["logits"]))  # a second producer of 'logits'
    with pytest.raises(onnx.checker.ValidationError):
        g.finish("logits")


def _conv_bn(fold_bn: bool) -> onnx.ModelProto:
    g = GraphBuilder("convbn", seed=3, fold_bn=fold_bn)
    x = g.input("input", 3, 6, 6)
    x = g.conv(x, 4, 3, pad=1)  # conv + BN + ReLU
    x = g.conv(x, 4, 3, pad=1, bn=False)  # conv + bias + ReLU: unaffected by fold_bn
    x = g.flatten(g.global_avg_pool(x), 4)
    return g.finish(g.gemm(x, 2, output="logits"))


def test_unfolded_batchnorm_is_its_own_node_with_the_same_draws():
    from onnx import numpy_helper

    from mlperf_ext.zoo.onnx_builder import BN_EPS, model_props

    folded, unfolded = _conv_bn(True), _conv_bn(False)
    assert [n.op_type for n in unfolded.graph.node] == [
        "Conv", "BatchNormalization", "Relu", "Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]
    assert [n.op_type for n in folded.graph.node] == [
        "Conv", "Relu", "Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]
    inits_u = {t.name: numpy_helper.to_array(t) for t in unfolded.graph.initializer}
    inits_f = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    conv_u, bn = unfolded.graph.node[0], unfolded.graph.node[1]
    conv_f = folded.graph.node[0]
    assert len(conv_u.input) == 2 and len(conv_f.input) == 3
    gamma, beta, mean, var = (inits_u[n] for n in bn.input[1:])
    assert onnx.helper.get_attribute_value(bn.attribute[0]) == pytest.approx(BN_EPS)
    scale = gamma / np.sqrt(var + np.float32(BN_EPS))
    np.testing.assert_allclose(inits_f[conv_f.input[1]], inits_u[conv_u.input[1]] * scale[:, None, None, None],
                               rtol=1e-6)
    np.testing.assert_allclose(inits_f[conv_f.input[2]], beta - mean * scale, rtol=1e-6, atol=1e-7)
    props_f, props_u = model_props(folded), model_props(unfolded)
    assert props_u["params_unfolded"] == props_f["params_unfolded"]
    assert props_u["params_folded"] == props_f["params_folded"]
    assert props_u["batchnorm"].startswith("unfolded") and "batchnorm" not in props_f


def test_unfolded_and_folded_graphs_compute_the_same():
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # BN runs as its own kernel
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6), dtype=np.float32)
    y_f, y_u = (ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
                .run(["logits"], {"input": x})[0] for m in (_conv_bn(True), _conv_bn(False)))
    np.testing.assert_allclose(y_u, y_f, rtol=1e-5, atol=1e-6)
