"""The built-in splits are computed once and read back by later processes without sklearn: the same arrays,
a damaged file computed again, and a folder that cannot be written costing nothing but the time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlperf_ext.datasets import split_cache
from mlperf_ext.datasets.digits import digits_split
from mlperf_ext.datasets.mnist import load_mnist5k, mnist_split, stratified_split

READ_BACK = """
import json, sys
import numpy as np
from mlperf_ext.datasets.digits import digits_split
from mlperf_ext.datasets.mnist import mnist_split
sums = [[float(np.asarray(a, dtype=np.float64).sum()) for a in f()] for f in (mnist_split, digits_split)]
print(json.dumps({"sums": sums, "imported": sorted(m for m in ("sklearn", "pandas") if m in sys.modules)}))
"""


def _sums(split) -> list[float]:
    return [float(np.asarray(a, dtype=np.float64).sum()) for a in split]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPERF_EXT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "splits"


def test_a_later_process_reads_the_stored_split_without_sklearn(cache, tmp_path):
    fresh = stratified_split(*load_mnist5k(), 0, 0.2)  # what sklearn gives, computed here and now
    mnist, digits = mnist_split(), digits_split()
    assert all(np.array_equal(a, b) for a, b in zip(mnist, fresh, strict=True))
    assert sorted(p.name.split("-")[0] for p in cache.glob("*.npz")) == ["digits", "mnist5k"]
    out = subprocess.run([sys.executable, "-c", READ_BACK], capture_output=True, text=True, check=True,
                         env={**os.environ, "MLPERF_EXT_CACHE": str(tmp_path / "cache")})
    seen = json.loads(out.stdout)
    assert seen["imported"] == []  # neither sklearn nor the CSV parser was needed
    assert seen["sums"] == [_sums(mnist), _sums(digits)]


def test_the_key_covers_what_decides_the_split(cache):
    mnist_split(seed=0)
    mnist_split(seed=1)
    mnist_split(seed=0, test_fraction=0.25)
    assert len(list(cache.glob("mnist5k-*.npz"))) == 3
    key = split_cache.split_key("mnist5k", "digest-a", 0, 0.2)
    assert key != split_cache.split_key("mnist5k", "digest-b", 0, 0.2)  # another source file
    assert key != split_cache.split_key("digits", "digest-a", 0, 0.2)


def test_a_damaged_file_is_computed_again_and_replaced(cache):
    first = mnist_split()
    (stored,) = cache.glob("mnist5k-*.npz")
    stored.write_bytes(stored.read_bytes()[:1000])  # a truncated write from a killed process
    again = mnist_split()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert split_cache._read(stored) is not None  # replaced by a whole file
    assert not list(cache.glob("*.part"))


def test_a_folder_that_cannot_be_written_still_gives_the_split(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("MLPERF_EXT_CACHE", str(blocker))
    x_train, _y_train, x_test, y_test = mnist_split()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10
