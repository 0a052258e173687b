"""Built-in datasets through the registry (`open_dataset`)."""

from __future__ import annotations

import numpy as np
import pytest

from mlperf_ext.datasets import BUILTIN, open_dataset
from mlperf_ext.datasets.mnist import mlp_input, mnist_split
from mlperf_ext.errors import DatasetError


def test_mnist_through_registry_matches_split():
    ds = open_dataset("mnist")
    assert len(ds) == 1000 and ds.sample_shape == (784,) and ds.dtype == np.float32
    assert np.bincount(ds.labels, minlength=10).tolist() == [100] * 10
    _, _, x_test, y_test = mnist_split()
    np.testing.assert_array_equal(ds.load(np.array([0, 999])), mlp_input(x_test[[0, 999]]))
    np.testing.assert_array_equal(ds.labels, y_test)
    assert "held-out" in ds.description


@pytest.mark.parametrize("name, n, shape", [
    ("mnist-train", 4000, (784,)),
    ("mnist32", 1000, (1, 32, 32)),
    ("mnist32-train", 4000, (1, 32, 32)),
    ("digits", 360, (64,)),
    ("digits-train", 1437, (64,)),
])
def test_all_builtins(name, n, shape):
    ds = open_dataset(name)
    assert ds.name == name and len(ds) == n and ds.sample_shape == shape
    assert ds.labels is not None and ds.labels.shape == (n,)
    assert ds.description
    batch = ds.load(np.arange(3))
    assert batch.shape == (3, *shape) and batch.min() >= 0.0 and batch.max() <= 1.0


def test_mnist32_says_it_is_not_cifar():
    assert "MNIST padded to 32x32 — not CIFAR-10" in open_dataset("mnist32").description


def test_registry_lists_names_and_rejects_unknown():
    open_dataset("digits")
    assert {"mnist", "mnist-train", "mnist32", "mnist32-train", "digits", "digits-train"} <= set(BUILTIN)
    with pytest.raises(DatasetError, match="mnist32"):
        open_dataset("no-such-dataset")
