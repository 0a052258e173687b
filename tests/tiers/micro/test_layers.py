"""What a layer is: anchors, their companions (Q/DQ, bias Add, constants, shape chains) and names."""

from __future__ import annotations

import numpy as np

from tests.tiers.micro.models import matmul_bias, ort_run, reshape_with_shape_chain, small_resnet
from tiers.micro import cut_layers, prepare, synthetic_inputs
from tiers.micro.layers import QDQ_OPS


def test_every_node_of_a_plain_graph_is_its_own_layer():
    model = small_resnet()
    lg = prepare(model)
    assert [layer.op_type for layer in lg.layers] == [n.op_type for n in model.graph.node]
    assert all(len(layer.nodes) == 1 for layer in lg.layers)
    # the builder leaves nodes unnamed: each gets <op>_<index>, unique
    names = [layer.name for layer in lg.layers]
    assert names == [f"{n.op_type}_{i}" for i, n in enumerate(model.graph.node)]
    assert not any(n.name for n in model.graph.node)  # the caller's model is not renamed


def test_shape_chain_and_constant_join_the_layer_that_needs_them():
    model = reshape_with_shape_chain()
    lg = prepare(model)
    assert [layer.op_type for layer in lg.layers] == ["Relu", "Reshape", "Add"]
    cuts = cut_layers(lg, dedup=False).cuts
    reshape, add = cuts[1], cuts[2]
    assert reshape.op_types == ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape")
    assert [s.name for s in reshape.inputs] == ["r"] and [s.name for s in reshape.outputs] == ["flat"]
    assert add.op_types == ("Constant", "Add")
    x = np.random.default_rng(0).standard_normal((3, 2, 3, 4)).astype(np.float32)
    r = np.maximum(x, 0)
    flat = ort_run(reshape.model, {"r": r})["flat"]
    np.testing.assert_array_equal(flat, r.reshape(3, -1))
    y = ort_run(add.model, {"flat": flat})["y"]
    np.testing.assert_allclose(y, ort_run(model, {"x": x})["y"], rtol=1e-6)


def test_matmul_and_its_bias_add_are_one_layer():
    lg = prepare(matmul_bias())
    assert [(layer.name, layer.op_type) for layer in lg.layers] == [("fc", "MatMul"), ("act", "Relu")]
    assert [lg.source.nodes[i].name for i in lg.layers[0].nodes] == ["fc", "bias"]
    # a product the graph also returns is not a private input of the Add: then the Add is a layer
    lg2 = prepare(matmul_bias(shared=True))
    assert [layer.op_type for layer in lg2.layers] == ["MatMul", "Add", "Relu"]


def test_qdq_markers_join_the_layers_they_serve(small_resnet_int8):
    """DQ(inputs) -> op -> Q per layer; weight DQs inside; every node in some layer; only DQs shared."""
    q = small_resnet_int8
    lg = prepare(q)
    src = lg.source
    assert not any(layer.op_type in QDQ_OPS for layer in lg.layers)
    counted: dict[int, int] = {}
    for layer in lg.layers:
        for i in layer.nodes:
            counted[i] = counted.get(i, 0) + 1
    assert set(counted) == set(range(len(src.nodes)))  # nothing left out
    shared = {src.nodes[i].op_type for i, k in counted.items() if k > 1}
    assert shared == {"DequantizeLinear"}  # the residual fork's DQ, read by two layers
    for layer in lg.layers:
        ops = [src.nodes[i].op_type for i in layer.nodes]
        if layer.op_type in ("Conv", "Gemm"):
            assert ops.count("DequantizeLinear") >= 3  # activation, weight, bias
        assert "QuantizeLinear" in ops  # its output stays quantized


def test_cut_names_follow_node_names_the_source_gives():
    model = small_resnet()
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    model.graph.node[1].name = "n0"  # a duplicate gets a fresh one
    lg = prepare(model)
    assert lg.layers[0].name == "n0" and lg.layers[1].name == "Relu_1"
    cut = cut_layers(lg).cuts[0]
    assert cut.layers == ("n0",) and cut.name == "n0"
    out = ort_run(cut.model, synthetic_inputs(cut))
    assert list(out) == [s.name for s in cut.outputs]
