"""Reader for CIFAR-10's *binary* version (never the Python pickle version: unpickling runs code).

Format (source: https://www.cs.toronto.edu/~kriz/cifar.html, "Binary version"): files
data_batch_1.bin .. data_batch_5.bin (train) and test_batch.bin (test), 10000 records each; a record
is 1 label byte (0..9) followed by 3072 pixel bytes: the 1024 red, then 1024 green, then 1024 blue
values of a 32x32 image in row-major order. batches.meta.txt names the classes, one per line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlperf_ext.datasets.base import Dataset
from mlperf_ext.errors import DatasetError

RECORD_BYTES = 1 + 3 * 32 * 32
SPLIT_FILES = {
    "test": ("test_batch.bin",),
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
}
#: the directory name inside the official cifar-10-binary.tar.gz
ARCHIVE_DIR = "cifar-10-batches-bin"


def _batch_files(path: Path, split: str) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"CIFAR-10 path {path} does not exist; fix: pass the extracted "
                           f"{ARCHIVE_DIR} directory or one .bin batch file")
    if split not in SPLIT_FILES:
        raise DatasetError(f"unknown CIFAR-10 split '{split}'; fix: use 'test' or 'train'")
    if not (path / SPLIT_FILES[split][0]).exists() and (path / ARCHIVE_DIR).is_dir():
        path = path / ARCHIVE_DIR
    files = [path / name for name in SPLIT_FILES[split]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise DatasetError(f"{path} lacks CIFAR-10 {split} batch file(s) {', '.join(missing)}; fix: "
                           "extract cifar-10-binary.tar.gz (the binary version, not the Python one) there")
    return files


def read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) from one binary batch file, validated."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        hint = " (a pickle from the Python version?)" if raw[:1].tobytes() == b"\x80" else ""
        raise DatasetError(f"{path} is {raw.size} bytes, not a positive multiple of the {RECORD_BYTES}-byte "
                           f"CIFAR-10 record{hint}; fix: use the binary version's data_batch_N.bin/"
                           "test_batch.bin files, complete")
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DatasetError(f"{path} record {int(bad[0])} has label {int(labels[bad[0]])}, outside 0..9; "
                           "fix: use CIFAR-10 binary batches (CIFAR-100 uses a different layout)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


class Cifar10BinaryDataset(Dataset):
    """CIFAR-10 binary batches as float32 (3, 32, 32) in [0, 1], optionally normalised per channel.

    `path_or_dir` is one .bin file (split ignored) or a directory holding the batches (or holding
    cifar-10-batches-bin). `mean`/`std`, when given, are per-channel values on the [0, 1] scale, applied
    as (x - mean) / std, as the training pipeline of the model expects.
    """

    def __init__(self, path_or_dir: str | Path, split: str = "test",
                 mean: tuple[float, float, float] | None = None,
                 std: tuple[float, float, float] | None = None, name: str | None = None):
        path = Path(path_or_dir)
        files = _batch_files(path, split)
        parts = [read_cifar10_batch(f) for f in files]
        self._images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        self._labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        self._mean = self._channel_param(mean, "mean")
        self._std = self._channel_param(std, "std")
        if self._std is not None and np.any(self._std <= 0):
            raise DatasetError(f"CIFAR-10 std must be positive, got {std}; fix: pass three values > 0")
        self.name = name or ("cifar10" if path.is_dir() else path.stem)
        self.class_names = self._class_names(files[0].parent)
        norm = f", normalised mean={mean} std={std}" if mean is not None or std is not None else ""
        self.description = (f"CIFAR-10 binary {split if path.is_dir() else path.name}: "
                            f"{len(self._labels)} images 3x32x32 float32 in [0, 1]{norm}")

    @staticmethod
    def _channel_param(value: tuple[float, ...] | None, what: str) -> np.ndarray | None:
        if value is None:
            return None
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != (3,):
            raise DatasetError(f"CIFAR-10 {what} needs one value per RGB channel, got {value}; "
                               "fix: pass three floats")
        return arr.reshape(1, 3, 1, 1)

    @staticmethod
    def _class_names(directory: Path) -> list[str] | None:
        meta = directory / "batches.meta.txt"
        if not meta.is_file():
            return None
        names = [line.strip() for line in meta.read_text().splitlines() if line.strip()]
        return names or None

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (3, 32, 32)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def load(self, indices: np.ndarray) -> np.ndarray:
        x = self._images[np.asarray(indices, dtype=np.int64)].astype(np.float32) / np.float32(255.0)
        if self._mean is not None:
            x -= self._mean
        if self._std is not None:
            x /= self._std
        return x
