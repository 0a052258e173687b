"""Seeded synthetic inputs for a cut: its shapes and dtypes, reproducible from a seed and a batch size.

Why synthetic: a cut's inputs are intermediate activations of the parent model; the dense kernels time
the same whatever the values, so a seeded generator replaces a dataset. Values:

* floating point: N(0, 1) (float16 rounded from float32 draws);
* 8- and 16-bit integers (quantized activations): uniform over the dtype's whole range;
* 32- and 64-bit integers: uniform in [0, 127] (such activations are indices or sizes, which the
  whole range would make invalid);
* bool: uniform {False, True}.

Input ``k`` of a cut is drawn from ``numpy.random.default_rng([seed, k])``, so each input depends only on
the seed, its position and the batch. The dynamic leading dimension is the batch; a fixed one must
equal it (``TensorSpec.concrete_shape``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlperf_ext.errors import ConfigError, ModelError
from tiers.micro.source import TensorSpec

#: upper bound (inclusive) of wide-integer inputs
WIDE_INT_MAX = 127


def _draw(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dt = spec.dtype
    if dt.kind == "f":
        return rng.standard_normal(shape, dtype=np.float32).astype(dt)
    if dt.kind in "iu":
        if dt.itemsize <= 2:
            info = np.iinfo(dt)
            return rng.integers(int(info.min), int(info.max), size=shape, dtype=dt, endpoint=True)
        return rng.integers(0, WIDE_INT_MAX, size=shape, dtype=dt, endpoint=True)
    if dt.kind == "b":
        return rng.integers(0, 1, size=shape, endpoint=True).astype(bool)
    raise ModelError(f"input '{spec.name}' has dtype {dt}, which has no synthetic generator; "
                     "fix: feed this cut real inputs")


def synthetic_inputs(specs: Sequence[TensorSpec] | object, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Feeds ``{input name: array}`` for ``specs`` (a list of TensorSpec, or a Cut's ``inputs``)."""
    if batch < 1:
        raise ConfigError(f"batch must be at least 1, not {batch}; fix: pass a positive batch")
    seq = getattr(specs, "inputs", specs)
    return {s.name: _draw(s, s.concrete_shape(batch), np.random.default_rng([seed, k]))
            for k, s in enumerate(seq)}
