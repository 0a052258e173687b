"""UCI optdigits via `sklearn.datasets.load_digits` (the data ships inside the scikit-learn wheel).

1797 images of 8x8 pixels with values 0..16, 10 classes (source: scikit-learn's load_digits docs).
The split is sklearn's `train_test_split(stratify=labels, random_state=seed, test_size=test_fraction)`;
with the defaults (seed 0, fraction 0.2) that is 1437 training and 360 held-out samples, each class
in the held-out set in proportion to its share of the whole set. x is float32 (N, 64) in [0, 1]
(pixel / 16). The split is kept on disk after its first computation (`split_cache`).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from mlperf_ext.datasets.mnist import stratified_split
from mlperf_ext.datasets.split_cache import Split, cached_split

#: maximum pixel value in load_digits (4x4 blocks of 0/1 pixels counted; source: sklearn docs)
DIGITS_MAX = 16.0


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(DIGITS_MAX))
    y = np.asarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def digits_source() -> Path:
    """The file load_digits reads, found without importing sklearn (its digest keys the cached split)."""
    spec = importlib.util.find_spec("sklearn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


def digits_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """(x_train, y_train, x_test, y_test); x float32 (N, 64) in [0, 1], y int64, stratified by class."""
    return cached_split("digits", digits_source(), seed, test_fraction,
                        lambda: stratified_split(*_load(), seed, test_fraction))
