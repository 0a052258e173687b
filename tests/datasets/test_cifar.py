"""CIFAR-10 binary reader on batch files written here record by record, good and malformed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.datasets.cifar import Cifar10BinaryDataset
from mlperf_ext.errors import DatasetError


def write_batch(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """One record per image: label byte, then the R, G and B planes (32x32 each, row-major)."""
    with path.open("wb") as f:
        for image, label in zip(images, labels, strict=True):
            f.write(bytes([int(label)]))
            for channel in range(3):
                f.write(image[:, :, channel].tobytes())  # image is HWC here, as a photo would be
    return path


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=n)


def test_single_file(tmp_path):
    images, labels = _data(4, 0)
    ds = Cifar10BinaryDataset(write_batch(tmp_path / "test_batch.bin", images, labels))
    assert len(ds) == 4 and ds.sample_shape == (3, 32, 32) and ds.dtype == np.float32
    np.testing.assert_array_equal(ds.labels, labels)
    got = ds.load(np.array([2, 0]))
    np.testing.assert_allclose(got, images[[2, 0]].transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_directory_splits_and_normalisation(tmp_path):
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    all_images, all_labels = [], []
    for i in range(1, 6):
        images, labels = _data(2, i)
        write_batch(root / f"data_batch_{i}.bin", images, labels)
        all_images.append(images)
        all_labels.append(labels)
    write_batch(root / "test_batch.bin", *_data(3, 9))
    (root / "batches.meta.txt").write_text("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n")
    train = Cifar10BinaryDataset(tmp_path, split="train")  # parent of the archive directory works too
    assert len(train) == 10 and train.class_names[9] == "truck"
    np.testing.assert_array_equal(train.labels, np.concatenate(all_labels))
    mean, std = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)
    norm = Cifar10BinaryDataset(root, split="train", mean=mean, std=std)
    expected = (np.concatenate(all_images).transpose(0, 3, 1, 2) / 255.0
                - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    np.testing.assert_allclose(norm.load(np.arange(10)), expected, rtol=1e-5, atol=1e-5)
    assert len(Cifar10BinaryDataset(root)) == 3


def test_wrong_size(tmp_path):
    images, labels = _data(2, 0)
    path = write_batch(tmp_path / "b.bin", images, labels)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="6145 bytes, not a positive multiple of the 3073"):
        Cifar10BinaryDataset(path)
    pickle_like = tmp_path / "data_batch_1"
    pickle_like.write_bytes(b"\x80\x04" + b"\0" * 100)
    with pytest.raises(DatasetError, match="pickle"):
        Cifar10BinaryDataset(pickle_like)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(DatasetError, match="0 bytes"):
        Cifar10BinaryDataset(empty)


def test_bad_label(tmp_path):
    images, _ = _data(3, 0)
    path = write_batch(tmp_path / "b.bin", images, np.array([1, 2, 57]))
    with pytest.raises(DatasetError, match="record 2 has label 57"):
        Cifar10BinaryDataset(path)


def test_missing_files_and_bad_args(tmp_path):
    write_batch(tmp_path / "data_batch_1.bin", *_data(1, 0))
    with pytest.raises(DatasetError, match="data_batch_2.bin, data_batch_3.bin"):
        Cifar10BinaryDataset(tmp_path, split="train")
    with pytest.raises(DatasetError, match="test_batch.bin"):
        Cifar10BinaryDataset(tmp_path)
    with pytest.raises(DatasetError, match="unknown CIFAR-10 split"):
        Cifar10BinaryDataset(tmp_path, split="val")
    with pytest.raises(DatasetError, match="does not exist"):
        Cifar10BinaryDataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="three floats"):
        Cifar10BinaryDataset(tmp_path / "data_batch_1.bin", mean=(0.5,))
    with pytest.raises(DatasetError, match="positive"):
        Cifar10BinaryDataset(tmp_path / "data_batch_1.bin", std=(0.5, 0.0, 0.5))
