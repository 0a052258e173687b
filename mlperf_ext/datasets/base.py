"""The Dataset interface the QSL reads from, and an in-memory implementation."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from mlperf_ext.errors import DatasetError


@dataclass(frozen=True)
class DatasetScan:
    """What one pass over a dataset finds: its content hash, and the samples with a NaN or Inf."""

    sha256: str
    nonfinite: int  # samples holding a NaN or an infinity
    first_nonfinite: int | None  # the first such sample's index


class Dataset(ABC):
    """An indexable set of preprocessed samples, each ready to feed the model, with optional labels."""

    name: str = "dataset"
    #: one line shown next to results, e.g. "MNIST padded to 32x32 (not CIFAR-10)"
    description: str = ""

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def sample_shape(self) -> tuple[int, ...]: ...

    @property
    @abstractmethod
    def dtype(self) -> np.dtype: ...

    @property
    def labels(self) -> np.ndarray | None:
        """int64 class index per sample, or None when the dataset carries no labels."""
        return None

    @property
    def annotations(self) -> dict | None:
        """COCO-format annotations (image k describes sample k) for the detection task, or None."""
        return None

    @abstractmethod
    def load(self, indices: np.ndarray) -> np.ndarray:
        """Samples at `indices`, stacked: shape (len(indices), *sample_shape)."""

    def scan(self) -> DatasetScan:
        """One pass over what the QSL would serve. Its hash (samples as loaded, labels, shape, dtype) is part
        of a point's key, so edited data is never mistaken for the data a stored row measured; and the
        samples that hold a NaN or an infinity are counted, since a model fed them answers with garbage."""
        digest = hashlib.sha256(f"{len(self)} {self.sample_shape} {np.dtype(self.dtype).str}".encode())
        dtype = np.dtype(self.dtype)
        fields = dtype.names or (None,)  # a record's float fields are scanned one by one
        floats = [f for f in fields if np.issubdtype(dtype[f] if f else dtype, np.inexact)]
        count, first = 0, None
        for start in range(0, len(self), 4096):
            chunk = np.ascontiguousarray(self.load(np.arange(start, min(start + 4096, len(self)))))
            digest.update(chunk.tobytes())
            if floats:
                bad = np.zeros(len(chunk), dtype=bool)
                for f in floats:
                    part = chunk[f] if f else chunk
                    bad |= ~np.isfinite(part.reshape(len(chunk), -1)).all(axis=1)
                if first is None and bad.any():
                    first = start + int(np.argmax(bad))
                count += int(bad.sum())
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        if self.annotations is not None:  # only then: the hash of a dataset without them is what it always was
            digest.update(json.dumps(self.annotations, sort_keys=True).encode())
        return DatasetScan(digest.hexdigest(), count, first)


class ArrayDataset(Dataset):
    """Samples already in memory as one array (what the small shipped datasets use)."""

    def __init__(self, name: str, samples: np.ndarray, labels: np.ndarray | None = None,
                 description: str = "", annotations: dict | None = None):
        if samples.ndim < 2 and not (samples.ndim == 1 and samples.dtype.names):
            raise DatasetError(f"dataset '{name}' must be an array of samples (N, ...), got shape "
                               f"{samples.shape}; fix: stack the samples along a first axis")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (samples.shape[0],):
                raise DatasetError(f"dataset '{name}' has {samples.shape[0]} samples but labels of shape "
                                   f"{labels.shape}; fix: give one label per sample")
            if not np.issubdtype(labels.dtype, np.integer):
                raise DatasetError(f"dataset '{name}' labels must be integers, got {labels.dtype}; "
                                   "fix: store class indices")
            labels = labels.astype(np.int64)
        self.name = name
        self.description = description
        self._samples = samples
        self._labels = labels
        self._annotations = annotations

    def __len__(self) -> int:
        return int(self._samples.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self._samples.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self._samples.dtype

    @property
    def labels(self) -> np.ndarray | None:
        return self._labels

    @property
    def annotations(self) -> dict | None:
        return self._annotations

    @property
    def samples(self) -> np.ndarray:
        return self._samples

    def load(self, indices: np.ndarray) -> np.ndarray:
        return self._samples[np.asarray(indices, dtype=np.int64)]


def record_dataset(name: str, arrays: dict[str, np.ndarray], labels: np.ndarray | None = None,
                   description: str = "", annotations: dict | None = None) -> ArrayDataset:
    """Samples for a model with several inputs: one array per input name, each (N, ...), stored as numpy
    records (a field per input) so that a batch is still one array the QSL gathers in one take."""
    if not arrays:
        raise DatasetError(f"dataset '{name}' holds no input arrays; fix: save one array per model input name")
    counts = {key: (a.shape[0] if np.ndim(a) else 0) for key, a in arrays.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise DatasetError(f"dataset '{name}' input arrays hold different numbers of samples "
                           f"({', '.join(f'{k}: {n}' for k, n in counts.items())}); fix: give every input the same N")
    dtype = np.dtype([(key, a.dtype, a.shape[1:]) for key, a in arrays.items()])
    records = np.empty(next(iter(counts.values())), dtype=dtype)
    for key, a in arrays.items():
        records[key] = a
    return ArrayDataset(name, records, labels, description, annotations)
