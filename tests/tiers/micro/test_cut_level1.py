"""Level 1: standalone layer models with their own weights, deduplicated, checked, runnable, costed."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, shape_inference

from mlperf_ext.errors import ConfigError, ModelError
from tests.tiers.micro.models import mlp3, ort_run, run_chain
from tiers.level0.graph import analyze
from tiers.micro import cut_layers, cut_model, synthetic_inputs
from tiers.micro.cut import META_PREFIX


def test_mlp_cut_layer_by_layer_reproduces_the_whole_model():
    """Each cut carries the weights of its own layer: chained, they give the whole model's output."""
    model = mlp3()
    cuts = cut_layers(model, dedup=False)
    assert [c.name for c in cuts.cuts] == ["fc0", "relu0", "fc1", "relu1", "fc2", "relu2", "fc3"]
    x = np.random.default_rng(3).standard_normal((5, 20)).astype(np.float32)
    whole = ort_run(model, {"input": x})["logits"]
    chained = run_chain(cuts.cuts, {"input": x})["logits"]
    np.testing.assert_allclose(chained, whole, rtol=1e-5, atol=1e-6)
    # and a cut with another layer's weights would not: fc1 and fc2 have the same shapes, not the same values
    fc1, fc2 = cuts.cuts[2], cuts.cuts[4]
    assert fc1.signature == fc2.signature
    w1 = {t.name: numpy_helper.to_array(t) for t in fc1.model.graph.initializer}
    w2 = {t.name: numpy_helper.to_array(t) for t in fc2.model.graph.initializer}
    src = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(w1) == {"fc1.weight", "fc1.bias"} and set(w2) == {"fc2.weight", "fc2.bias"}
    np.testing.assert_array_equal(w1["fc1.weight"], src["fc1.weight"])


def test_identical_layers_are_cut_once_with_their_occurrences():
    cuts = cut_layers(mlp3())
    by_name = {c.name: c for c in cuts.cuts}
    assert cuts.layer_count == 7 and cuts.unique == 4 and cuts.occurrences == 7
    assert by_name["fc1"].instances == [("fc1",), ("fc2",)]  # 16 -> 16, twice
    assert by_name["relu0"].occurrences == 3
    assert by_name["fc0"].occurrences == 1 and by_name["fc3"].occurrences == 1
    assert by_name["fc1"].op_type == "Gemm" and by_name["relu0"].op_type == "Relu"


def test_attributes_are_part_of_the_key():
    nodes = [helper.make_node("LeakyRelu", [a], [b], alpha=alpha)
             for a, b, alpha in (("x", "h1", 0.1), ("h1", "h2", 0.2), ("h2", "y", 0.1))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    cuts = cut_layers(model)
    assert [c.instances for c in cuts.cuts] == [[("LeakyRelu_0",), ("LeakyRelu_2",)], [("LeakyRelu_1",)]]


def test_dynamic_batch_stays_dynamic_and_a_fixed_one_stays_fixed():
    dyn = cut_layers(mlp3()).cuts[0]
    assert dyn.inputs[0].shape == (None, 20) and dyn.outputs[0].shape == (None, 16)
    assert dyn.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    for batch in (1, 3):
        out = ort_run(dyn.model, synthetic_inputs(dyn, batch=batch))
        assert out[dyn.outputs[0].name].shape == (batch, 16)
    fixed = cut_layers(mlp3(batch=2)).cuts[0]
    assert fixed.inputs[0].shape == (2, 20)
    with pytest.raises(ModelError, match="fixed batch of 2.*fix:"):
        synthetic_inputs(fixed, batch=3)


def _independent_layer_keys(model: onnx.ModelProto) -> list[tuple]:
    """Op, attributes, input/output shapes and weight shapes of each node, from ONNX shape inference."""
    inf = shape_inference.infer_shapes(model)
    shapes = {vi.name: tuple(d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim)
              for vi in list(inf.graph.value_info) + list(inf.graph.input) + list(inf.graph.output)}
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    keys = []
    for n in model.graph.node:
        attrs = tuple(sorted((a.name, str(onnx.helper.get_attribute_value(a))) for a in n.attribute))
        ins = tuple(inits.get(t) or shapes[t] for t in n.input)
        keys.append((n.op_type, attrs, ins, tuple(shapes[t] for t in n.output)))
    return keys


def test_resnet50_layers_unique_layers_and_level0_costs(resnet50, resnet50_layers):
    cuts = cut_layers(resnet50_layers)
    keys = _independent_layer_keys(resnet50)
    assert cuts.skipped == []
    assert cuts.layer_count == len(resnet50.graph.node)  # the builder's graph has no auxiliary nodes
    assert cuts.unique == len(set(keys))
    assert cuts.occurrences == cuts.layer_count
    assert sorted(n for c in cuts.cuts for inst in c.instances for n in inst) == sorted(
        layer.name for layer in resnet50_layers.layers)
    whole = analyze(resnet50)
    assert sum(c.ops * c.occurrences for c in cuts.cuts) == whole.ops
    assert sum(c.weight_bytes * c.occurrences for c in cuts.cuts) == whole.weight_bytes
    convs = [c for c in cuts.cuts if c.op_type == "Conv"]
    assert convs and all(c.ops > 0 and c.weight_bytes > 0 for c in convs)


def test_resnet50_unique_layers_pass_the_checker_and_run(resnet50_layers):
    cuts = cut_layers(resnet50_layers)
    for cut in cuts.cuts:
        reread = onnx.ModelProto.FromString(cut.to_bytes())
        onnx.checker.check_model(reread, full_check=True)
        assert all(s.shape[0] is None for s in cut.inputs + cut.outputs)
        out = ort_run(reread, synthetic_inputs(cut, batch=2, seed=7))
        for spec in cut.outputs:
            assert out[spec.name].shape == spec.concrete_shape(2), cut.name
            assert out[spec.name].dtype == spec.dtype


def test_saved_cut_says_where_it_came_from(tmp_path):
    model = mlp3()
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    cuts = cut_layers(path, name="mlp-fp32")
    cut = cuts.cuts[0]
    assert cut.parent_model == "mlp-fp32"
    assert cut.parent_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    saved = cut.save(tmp_path / "cuts" / "fc0.onnx")
    props = {p.key: p.value for p in onnx.load(str(saved)).metadata_props}
    assert props[META_PREFIX + "parent_sha256"] == cut.parent_sha256
    assert props[META_PREFIX + "layers"] == "fc0" and props[META_PREFIX + "signature"] == cut.signature
    assert cut.summary()["occurrences"] == 1 and cut.summary()["inputs"][0]["shape"] == [None, 20]
    assert cut.activation_bytes(batch=2) == 2 * (20 + 16) * 4


def test_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found; fix:"):
        cut_layers(tmp_path / "absent.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="fix:"):
        cut_layers(bad)


def test_cut_model_gives_both_levels_from_one_load():
    both = cut_model(mlp3(), sizes=(2,))
    assert both.level1.unique == 4 and set(both.level2) == {2}
    assert both.level2[2].level == 2 and both.level2[2].size == 2
    with pytest.raises(ConfigError, match="fix:"):
        cut_model(mlp3(), levels=(3,))
