"""GraphBuilder.finish hands back only models that onnx.checker accepts."""

from __future__ import annotations

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
