"""Level 2: stacks of consecutive layers, residual shortcuts, parallel modules, skips and coverage."""

from __future__ import annotations

import numpy as np
import pytest

from mlperf_ext.errors import ConfigError
from tests.tiers.micro.models import ort_run, run_chain, small_resnet, two_parallel_chains
from tiers.micro import cut_layers, cut_stacks, prepare, synthetic_inputs


def _covers_every_layer_once(stacks, layer_count: int) -> None:
    in_stacks = [n for c in stacks.cuts for inst in c.instances for n in inst]
    assert len(in_stacks) == len(set(in_stacks))  # a tiling: no layer in two stacks
    assert len(in_stacks) + len(stacks.uncovered) == layer_count
    assert set(in_stacks).isdisjoint(stacks.uncovered)


@pytest.mark.parametrize("size", [2, 4])
def test_resnet50_stacks_tile_the_model_and_run(resnet50_layers, size):
    stacks = cut_stacks(resnet50_layers, size)
    _covers_every_layer_once(stacks, len(resnet50_layers.layers))
    assert {s.kind for s in stacks.skipped} == {"tail"}  # every window of a ResNet is a valid stack
    windows = [c for c in stacks.cuts if c.kind == "stack"]
    assert windows and all(len(c.layers) == size for c in windows)
    assert all(len(c.inputs) <= 2 and len(c.outputs) <= 2 for c in stacks.cuts)
    # the residual Adds: inside windows (the shortcut as a second graph input) ...
    with_add = [c for c in windows if "Add" in c.layer_ops]
    assert with_add and all(len(c.inputs) == 2 for c in with_add)
    # ... and whole projection blocks (both branches compute): cut whole, one input, one output
    modules = [c for c in stacks.cuts if c.kind == "module"]
    assert sum(c.occurrences for c in modules) == 4
    for m in modules:
        assert m.layer_ops.count("Conv") == 4 and m.layer_ops[-1] == "Add"
        assert len(m.inputs) == 1 and len(m.outputs) == 1
    for cut in stacks.cuts:
        out = ort_run(cut.model, synthetic_inputs(cut, batch=1, seed=3))
        assert all(out[s.name].shape == s.concrete_shape(1) for s in cut.outputs), cut.name


def test_stacks_and_uncovered_layers_chain_into_the_model():
    """Stacks carry the right weights and boundaries: stacks + level-1 cuts of the rest = the model."""
    model = small_resnet()
    lg = prepare(model)
    order = {layer.name: layer.index for layer in lg.layers}
    for size in (2, 4):
        stacks = cut_stacks(lg, size, dedup=False)
        singles = [c for c in cut_layers(lg, dedup=False).cuts if c.name in stacks.uncovered]
        pieces = sorted(stacks.cuts + singles, key=lambda c: order[c.layers[0]])
        x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
        got = run_chain(pieces, {"input": x})["logits"]
        np.testing.assert_allclose(got, ort_run(model, {"input": x})["logits"], rtol=1e-5, atol=1e-5)


def test_googlenet_inception_modules_are_cut_whole(googlenet_layers):
    stacks = cut_stacks(googlenet_layers, 4)
    modules = [c for c in stacks.cuts if c.kind == "module"]
    assert sum(c.occurrences for c in modules) == 9  # 3a, 3b, 4a-4e, 5a, 5b
    for m in modules:
        assert m.layer_ops.count("Conv") == 6 and m.layer_ops[-1] == "Concat"
        assert len(m.inputs) == 1 and len(m.outputs) == 1
        assert "4 computing branches" in m.note
    assert all("Concat" not in c.layer_ops for c in stacks.cuts if c.kind == "stack")
    _covers_every_layer_once(stacks, len(googlenet_layers.layers))
    first = modules[0]
    out = ort_run(first.model, synthetic_inputs(first))
    assert out[first.outputs[0].name].shape == first.outputs[0].concrete_shape(1)


def test_googlenet_inception_modules_can_be_skipped_with_the_reason(googlenet_layers):
    stacks = cut_stacks(googlenet_layers, 2, modules="skip")
    skipped = [s for s in stacks.skipped if s.kind == "module"]
    assert len(skipped) == 9
    assert all("would leave a computing branch out" in s.reason and len(s.layers) == 14 for s in skipped)
    assert not any(c.kind == "module" or "Concat" in c.layer_ops for c in stacks.cuts)
    assert set(skipped[0].layers) <= set(stacks.uncovered)


def test_a_window_of_parallel_branches_is_skipped():
    stacks = cut_stacks(two_parallel_chains(), 2)
    assert stacks.cuts == []
    assert [s.layers for s in stacks.skipped] == [("a1", "b1"), ("a2", "b2")]
    assert all("not connected" in s.reason for s in stacks.skipped)
    sliding = cut_stacks(two_parallel_chains(), 2, stride=1)
    assert sliding.cuts == [] and len(sliding.skipped) == 3
    assert sliding.uncovered == ["a1", "b1", "a2", "b2"]


def test_at_most_max_inputs_from_outside(resnet50_layers):
    stacks = cut_stacks(resnet50_layers, 2, max_inputs=1)
    refused = [s for s in stacks.skipped if s.kind == "window"]
    assert refused and all("needs 2 activation inputs" in s.reason for s in refused)
    assert all(len(c.inputs) == 1 for c in stacks.cuts)


def test_sliding_windows_overlap(resnet50_layers):
    tiled = cut_stacks(resnet50_layers, 4)
    sliding = cut_stacks(resnet50_layers, 4, stride=1)
    assert sliding.occurrences > tiled.occurrences
    assert sliding.stride == 1 and tiled.stride == 4


@pytest.mark.parametrize("kwargs", [{"size": 1}, {"size": 2, "stride": 0}, {"size": 2, "modules": "half"},
                                    {"size": 2, "max_inputs": 0}])
def test_bad_stack_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="fix:"):
        cut_stacks(small_resnet(), **kwargs)
