"""Synthetic inputs: shapes, dtypes and ranges, reproducible from a seed and a batch size."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from mlperf_ext.errors import ConfigError, ModelError
from tests.tiers.micro.models import mlp3
from tiers.micro import TensorSpec, cut_layers, synthetic_inputs


def _spec(name, shape, dtype, elem):
    return TensorSpec(name, shape, np.dtype(dtype), elem)


SPECS = [_spec("f", (None, 64, 8, 8), np.float32, TensorProto.FLOAT),
         _spec("h", (None, 16), np.float16, TensorProto.FLOAT16),
         _spec("u", (None, 32, 8, 8), np.uint8, TensorProto.UINT8),
         _spec("i", (None, 32, 8, 8), np.int8, TensorProto.INT8),
         _spec("idx", (None, 4), np.int64, TensorProto.INT64),
         _spec("m", (None, 8), np.bool_, TensorProto.BOOL)]


def test_same_seed_same_inputs_other_seed_other_inputs():
    a = synthetic_inputs(SPECS, batch=4, seed=11)
    b = synthetic_inputs(SPECS, batch=4, seed=11)
    c = synthetic_inputs(SPECS, batch=4, seed=12)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["f"], c["f"]) and not np.array_equal(a["u"], c["u"])
    twins = synthetic_inputs([SPECS[0], TensorSpec("g", SPECS[0].shape, SPECS[0].dtype, SPECS[0].elem_type)])
    assert not np.array_equal(twins["f"], twins["g"])  # each input has its own stream


def test_shapes_dtypes_and_ranges():
    feeds = synthetic_inputs(SPECS, batch=4, seed=0)
    for spec in SPECS:
        assert feeds[spec.name].shape == spec.concrete_shape(4)
        assert feeds[spec.name].dtype == spec.dtype
    f = feeds["f"]
    assert abs(float(f.mean())) < 0.05 and abs(float(f.std()) - 1) < 0.05  # N(0, 1), 16384 draws
    u, i = feeds["u"], feeds["i"]
    assert u.min() <= 2 and u.max() >= 253  # the whole uint8 range
    assert i.min() <= -126 and i.max() >= 125
    assert feeds["idx"].min() >= 0 and feeds["idx"].max() <= 127
    assert set(np.unique(feeds["m"])) <= {False, True}


def test_batch_sets_the_dynamic_dimension_only():
    spec = _spec("x", (None, 3), np.float32, TensorProto.FLOAT)
    assert synthetic_inputs([spec], batch=5)["x"].shape == (5, 3)
    with pytest.raises(ModelError, match="dynamic dimension other than the batch.*fix:"):
        synthetic_inputs([_spec("x", (None, None), np.float32, TensorProto.FLOAT)], batch=2)
    with pytest.raises(ModelError, match="fixed batch of 1.*fix:"):
        synthetic_inputs([_spec("x", (1, 3), np.float32, TensorProto.FLOAT)], batch=2)
    with pytest.raises(ConfigError, match="fix:"):
        synthetic_inputs([spec], batch=0)


def test_a_cut_is_accepted_directly():
    cut = cut_layers(mlp3()).cuts[0]
    feeds = synthetic_inputs(cut, batch=3, seed=1)
    assert list(feeds) == ["input"] and feeds["input"].shape == (3, 20)
    np.testing.assert_array_equal(feeds["input"], synthetic_inputs(cut.inputs, batch=3, seed=1)["input"])
