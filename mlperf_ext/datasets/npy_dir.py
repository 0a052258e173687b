"""`.npy` directory datasets: the format users drop their own preprocessed data into.

Two layouts are accepted (never with pickles):
- `samples.npy` holding all samples (N, ...) plus optional `labels.npy` (N,) of integers;
- one `<name>.npy` file per sample plus `labels.txt` / `val_map.txt` whose lines are `<name>.npy <label>`
  (MLPerf's val_map layout); without a labels file the files are taken in sorted order, unlabelled.
Either may hold COCO-format `annotations.json` (image k describes sample k), which the detection task scores.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlperf_ext.datasets.base import ArrayDataset, Dataset
from mlperf_ext.errors import DatasetError


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DatasetError(f"{path} is not a plain .npy array ({exc}); fix: save it with "
                           "numpy.save and a numeric dtype") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {path} ({exc}); fix: check the file is a .npy array") from exc


def _read_label_map(path: Path) -> list[tuple[str, int]]:
    entries = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}:{lineno}: expected '<file>.npy <class index >= 0>', got {line!r}; "
                               "fix: one file name and one non-negative class index per line")
        entries.append((parts[0], int(parts[1])))
    if not entries:
        raise DatasetError(f"{path} lists no samples; fix: add '<file>.npy <label>' lines")
    return entries


def checked_labels(labels: np.ndarray | None, where: str) -> np.ndarray | None:
    """The labels as read, or DatasetError for a negative class index."""
    if labels is not None and np.issubdtype(labels.dtype, np.integer) and labels.size and labels.min() < 0:
        raise DatasetError(f"{where} holds a negative label ({int(labels.min())}); fix: store class indices >= 0")
    return labels


#: COCO-format annotations beside the samples (the detection task scores against them)
ANNOTATIONS = "annotations.json"


def read_annotations(directory: Path) -> dict | None:
    """The directory's annotations.json, or None when it has none."""
    path = directory / ANNOTATIONS
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not readable JSON ({exc}); fix: save COCO-format annotations (images, "
                           "annotations, categories) with json.dump") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path} is not a JSON object; fix: save COCO-format annotations (images, annotations, "
                           "categories)")
    return data


class NpyDirDataset(Dataset):
    """A directory of preprocessed `.npy` samples; loads lazily, one file per sample."""

    def __init__(self, directory: str | Path, name: str | None = None):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DatasetError(f"dataset directory {self.directory} does not exist; fix: pass a directory "
                               "holding samples.npy or per-sample .npy files")
        self.name = name or self.directory.name
        self.description = f".npy directory {self.directory}"
        self._inner: ArrayDataset | None = None
        self._files: list[Path] = []
        self._labels: np.ndarray | None = None
        self._annotations = read_annotations(self.directory)
        whole = self.directory / "samples.npy"
        if whole.exists():
            samples = _load_npy(whole)
            labels_path = self.directory / "labels.npy"
            labels = checked_labels(_load_npy(labels_path), str(labels_path)) if labels_path.exists() else None
            self._inner = ArrayDataset(self.name, samples, labels, self.description, self._annotations)
            return
        label_file = next((self.directory / n for n in ("val_map.txt", "labels.txt")
                           if (self.directory / n).exists()), None)
        if label_file is not None:
            entries = _read_label_map(label_file)
            self._files = [self.directory / f for f, _ in entries]
            missing = [str(p.name) for p in self._files if not p.exists()]
            if missing:
                raise DatasetError(f"{label_file} names {len(missing)} missing file(s), e.g. {missing[0]}; "
                                   "fix: remove those lines or add the files")
            self._labels = np.array([label for _, label in entries], dtype=np.int64)
        else:
            self._files = sorted(self.directory.glob("*.npy"))
        if not self._files:
            raise DatasetError(f"{self.directory} holds no .npy samples; fix: add samples.npy or "
                               "per-sample .npy files")
        first = _load_npy(self._files[0])
        self._shape, self._dtype = tuple(first.shape), first.dtype

    def __len__(self) -> int:
        return len(self._inner) if self._inner is not None else len(self._files)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self._inner.sample_shape if self._inner is not None else self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._inner.dtype if self._inner is not None else self._dtype

    @property
    def labels(self) -> np.ndarray | None:
        return self._inner.labels if self._inner is not None else self._labels

    @property
    def annotations(self) -> dict | None:
        return self._annotations

    def load(self, indices: np.ndarray) -> np.ndarray:
        if self._inner is not None:
            return self._inner.load(indices)
        out = np.empty((len(indices), *self._shape), dtype=self._dtype)
        for row, index in enumerate(indices):
            sample = _load_npy(self._files[int(index)])
            if sample.shape != self._shape or sample.dtype != self._dtype:
                raise DatasetError(f"{self._files[int(index)]} has shape {sample.shape} {sample.dtype}, "
                                   f"others {self._shape} {self._dtype}; fix: preprocess all samples alike")
            out[row] = sample
        return out
