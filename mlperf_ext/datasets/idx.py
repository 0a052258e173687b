"""Reader for the IDX files MNIST-style datasets come in (train-images-idx3-ubyte[.gz] and friends).

Format (source: http://yann.lecun.com/exdb/mnist/, "FILE FORMATS FOR THE MNIST DATABASE"):
a 4-byte magic number `0x00 0x00 <type code> <number of dims>`, then one big-endian uint32 per
dimension, then the values in C order, big-endian. Type codes: 0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64. MNIST labels are 0x00000801 (uint8, 1 dim) and images
0x00000803 (uint8, 3 dims: count, rows, cols). Files may be gzip-compressed (detected by content).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mlperf_ext.datasets.base import Dataset
from mlperf_ext.errors import DatasetError

#: IDX type code -> big-endian numpy dtype (source: the MNIST page cited above)
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803
_GZIP_MAGIC = b"\x1f\x8b"
_LAYOUTS = ("mlp", "cnv", "raw")


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DatasetError(f"IDX file {path} does not exist; fix: pass the path of an "
                           "*-idx?-ubyte or *-idx?-ubyte.gz file")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path} is a damaged gzip file ({exc}); fix: download it again or "
                           "gunzip a good copy") from exc


def read_idx_header(raw: bytes, path: Path) -> tuple[int, np.dtype, tuple[int, ...], int]:
    """(magic, dtype, dims, offset of the data) from an IDX file's bytes; checks what it can."""
    if len(raw) < 4:
        raise DatasetError(f"{path} is {len(raw)} bytes, too short for an IDX header; "
                           "fix: download the file again")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndims = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or type_code not in IDX_DTYPES or ndims == 0:
        raise DatasetError(f"{path} has magic number 0x{magic:08x}, not an IDX file (expected "
                           f"0x0000TTDD with a known type code TT); fix: pass an IDX file such as "
                           "t10k-images-idx3-ubyte (gunzipped or .gz)")
    offset = 4 + 4 * ndims
    if len(raw) < offset:
        raise DatasetError(f"{path} is truncated inside its header ({len(raw)} bytes, header needs "
                           f"{offset}); fix: download the file again")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims))
    return magic, IDX_DTYPES[type_code], dims, offset


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (plain or gzip), in native byte order."""
    path = Path(path)
    raw = _read_bytes(path)
    _, dtype, dims, offset = read_idx_header(raw, path)
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - offset
    if have < expected:
        raise DatasetError(f"{path} is truncated: header says {dims} {dtype.name} values ({expected} bytes) "
                           f"but only {have} bytes follow; fix: download the file again")
    if have > expected:
        raise DatasetError(f"{path} has {have - expected} bytes after the {dims} values its header "
                           "declares; fix: check the file is an unmodified IDX file")
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=offset)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


class IdxDataset(Dataset):
    """MNIST-style images (0x803, uint8 N x H x W) with optional labels (0x801), preprocessed on load.

    layout: "mlp" → float32 (H*W,) in [0, 1]; "cnv" → float32 (1, 32, 32) in [0, 1], zero-padded
    around the centre (MNIST 28x28 gets 2 px each side, as in mnist.cnv_input); "raw" → uint8 (H, W).
    """

    def __init__(self, images_path: str | Path, labels_path: str | Path | None = None,
                 layout: str = "mlp", name: str | None = None, num_classes: int = 10):
        if layout not in _LAYOUTS:
            raise DatasetError(f"unknown IDX layout '{layout}'; fix: use one of {', '.join(_LAYOUTS)}")
        images_path = Path(images_path)
        self.name = name or images_path.name.split(".")[0]
        self.layout = layout
        self._images = self._read_checked(images_path, IMAGES_MAGIC, "images", "t10k-images-idx3-ubyte")
        count, height, width = self._images.shape
        if layout == "cnv" and (height > 32 or width > 32):
            raise DatasetError(f"{images_path} holds {height}x{width} images, larger than the 32x32 "
                               "'cnv' layout; fix: use layout='mlp' or 'raw'")
        self._labels: np.ndarray | None = None
        if labels_path is not None:
            labels_path = Path(labels_path)
            labels = self._read_checked(labels_path, LABELS_MAGIC, "labels", "t10k-labels-idx1-ubyte")
            if labels.shape[0] != count:
                raise DatasetError(f"{images_path} holds {count} images but {labels_path} holds "
                                   f"{labels.shape[0]} labels; fix: pair the images file with its own "
                                   "labels file (same split)")
            if labels.size and int(labels.max()) >= num_classes:
                raise DatasetError(f"{labels_path} has label {int(labels.max())}, outside 0..{num_classes - 1}; "
                                   "fix: pass num_classes or the right labels file")
            self._labels = labels.astype(np.int64)
        source = f"IDX {images_path.name}" + (f" + {Path(labels_path).name}" if labels_path else " (unlabelled)")
        self.description = f"{source}, {count} images {height}x{width}, layout {layout}"

    @staticmethod
    def _read_checked(path: Path, magic: int, what: str, example: str) -> np.ndarray:
        raw = _read_bytes(path)
        found, _, _, _ = read_idx_header(raw, path)
        if found != magic:
            raise DatasetError(f"{path} has magic number 0x{found:08x}, but IDX {what} files have "
                               f"0x{magic:08x}; fix: pass a file like {example} here (images and "
                               "labels swapped?)")
        return read_idx(path)

    def __len__(self) -> int:
        return int(self._images.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        height, width = self._images.shape[1:]
        return {"mlp": (height * width,), "cnv": (1, 32, 32), "raw": (height, width)}[self.layout]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8) if self.layout == "raw" else np.dtype(np.float32)

    @property
    def labels(self) -> np.ndarray | None:
        return self._labels

    def load(self, indices: np.ndarray) -> np.ndarray:
        images = self._images[np.asarray(indices, dtype=np.int64)]
        if self.layout == "raw":
            return images
        scaled = images.astype(np.float32) / np.float32(255.0)
        if self.layout == "mlp":
            return scaled.reshape(len(images), -1)
        height, width = images.shape[1:]
        top, left = (32 - height) // 2, (32 - width) // 2
        out = np.zeros((len(images), 1, 32, 32), dtype=np.float32)
        out[:, 0, top:top + height, left:left + width] = scaled
        return out
