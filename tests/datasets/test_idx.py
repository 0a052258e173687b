"""IDX reader on files written here in the MNIST byte layout, good and malformed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.datasets.idx import IdxDataset, read_idx
from mlperf_ext.datasets.mnist import cnv_input, mlp_input
from mlperf_ext.errors import DatasetError


def write_idx(path: Path, array: np.ndarray, type_code: int = 0x08, compress: bool = False) -> Path:
    """Encode by hand (big-endian header and data), independently of the reader under test."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    payload = header + array.astype(big).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.fixture
def mnist_like(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    return (images, labels,
            write_idx(tmp_path / "imgs-idx3-ubyte", images),
            write_idx(tmp_path / "labels-idx1-ubyte.gz", labels, compress=True))


@pytest.mark.parametrize("type_code, dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                               (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, type_code, dtype, compress):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    out = read_idx(write_idx(tmp_path / "a.idx", array, type_code, compress))
    assert out.dtype == dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_dataset_layouts(mnist_like):
    images, labels, images_path, labels_path = mnist_like
    ds = IdxDataset(images_path, labels_path)
    assert len(ds) == 7 and ds.sample_shape == (784,) and ds.dtype == np.float32
    np.testing.assert_array_equal(ds.labels, labels.astype(np.int64))
    np.testing.assert_array_equal(ds.load(np.array([3, 1])), mlp_input(images[[3, 1]]))
    cnv = IdxDataset(images_path, labels_path, layout="cnv")
    assert cnv.sample_shape == (1, 32, 32)
    np.testing.assert_array_equal(cnv.load(np.arange(7)), cnv_input(images))
    raw = IdxDataset(images_path, layout="raw")
    assert raw.labels is None and raw.dtype == np.uint8
    np.testing.assert_array_equal(raw.load(np.array([6])), images[[6]])


def test_truncated_file(tmp_path, mnist_like):
    _, _, images_path, _ = mnist_like
    cut = tmp_path / "cut"
    cut.write_bytes(images_path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated.*fix:"):
        read_idx(cut)
    header_only = tmp_path / "header"
    header_only.write_bytes(images_path.read_bytes()[:9])
    with pytest.raises(DatasetError, match="truncated inside its header"):
        read_idx(header_only)


def test_damaged_gzip(tmp_path, mnist_like):
    _, _, _, labels_path = mnist_like
    bad = tmp_path / "bad.gz"
    bad.write_bytes(labels_path.read_bytes()[:-12])
    with pytest.raises(DatasetError, match="damaged gzip"):
        read_idx(bad)


def test_trailing_bytes(tmp_path, mnist_like):
    _, _, images_path, _ = mnist_like
    long = tmp_path / "long"
    long.write_bytes(images_path.read_bytes() + b"\0\0")
    with pytest.raises(DatasetError, match="2 bytes after"):
        read_idx(long)


def test_wrong_magic_and_type_code(tmp_path):
    not_idx = tmp_path / "x"
    not_idx.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DatasetError, match="magic number 0x89504e47"):
        read_idx(not_idx)
    bad_code = tmp_path / "y"
    bad_code.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(DatasetError, match="known type code"):
        read_idx(bad_code)


def test_swapped_and_mismatched_files(tmp_path, mnist_like):
    _, _, images_path, labels_path = mnist_like
    with pytest.raises(DatasetError, match="0x00000801.*swapped"):
        IdxDataset(labels_path, images_path)
    other_labels = write_idx(tmp_path / "l5", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DatasetError, match="7 images but .* 5 labels"):
        IdxDataset(images_path, other_labels)
    big_labels = write_idx(tmp_path / "l7", np.full(7, 12, dtype=np.uint8))
    with pytest.raises(DatasetError, match="label 12"):
        IdxDataset(images_path, big_labels)
    with pytest.raises(DatasetError, match="does not exist"):
        IdxDataset(tmp_path / "missing", labels_path)
    with pytest.raises(DatasetError, match="unknown IDX layout"):
        IdxDataset(images_path, layout="nhwc")
