"""The query sample library: holds in memory exactly the samples LoadGen asked to load.

Loaded samples live in one contiguous array so that gathering a batch is a single numpy take
(the issue path must stay cheap); `_row_of[index]` maps a dataset index to its row, -1 if unloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlperf_ext.datasets.base import Dataset
from mlperf_ext.errors import DatasetError

#: performance set size when the dataset is larger (MLPerf's resnet50 uses 1024 via mlperf.conf)
DEFAULT_PERFORMANCE_COUNT = 1024


class SampleLibrary:
    """LoadGen's load/unload callbacks plus `gather` for the SUT."""

    def __init__(self, dataset: Dataset, performance_count: int | None = None):
        if len(dataset) == 0:
            raise DatasetError(f"dataset '{dataset.name}' is empty; fix: point at a dataset with samples")
        self.dataset = dataset
        self.total_count = len(dataset)
        self.performance_count = min(performance_count or DEFAULT_PERFORMANCE_COUNT, self.total_count)
        self._row_of = np.full(self.total_count, -1, dtype=np.int64)
        self._data = np.empty((0, *dataset.sample_shape), dtype=dataset.dtype)
        self._order: list[int] = []  # dataset index of each loaded row (LoadGen's load order)
        self._first_row: dict[int, int] = {}  # loaded dataset index -> its row (Python ints: the fast path)

    def load(self, indices: Sequence[int]) -> None:
        """LoadGen callback: bring these samples into memory (replacing any previous set)."""
        asked = np.asarray(indices, dtype=np.int64)
        _, first = np.unique(asked, return_index=True)
        wanted = asked[np.sort(first)]  # LoadGen's order, so in-order issue maps to consecutive rows
        self._data = np.ascontiguousarray(self.dataset.load(wanted))
        self._row_of[:] = -1
        self._row_of[wanted] = np.arange(wanted.size)
        self._order = wanted.tolist()
        self._first_row = {index: row for row, index in enumerate(self._order)}

    def unload(self, indices: Sequence[int]) -> None:
        """LoadGen callback: forget these samples."""
        self._row_of[np.asarray(indices, dtype=np.int64)] = -1
        for index in indices:
            self._first_row.pop(index, None)
        if not (self._row_of >= 0).any():
            self._data = self._data[:0]
            self._order, self._first_row = [], {}

    def gather(self, indices: Sequence[int]) -> np.ndarray:
        """A batch of loaded samples, in the order given.

        When the rows are consecutive (Offline issues the loaded set in order) the batch is a view of
        the resident buffer, not a copy: copying 64 MNIST samples from a buffer larger than the
        cache cost ~55 us per batch, 4 % of an MLP batch's compute (measured through LoadGen). The
        run is recognised on the Python list LoadGen handed over (one slice compare, ~1 us for 256
        samples) before any conversion to an array (~10 us).
        """
        if isinstance(indices, list) and indices:
            first = self._first_row.get(indices[0], -1)  # kept in step with _row_of by load and unload
            n = len(indices)
            if first >= 0 and (n == 1 or self._order[first:first + n] == indices):
                return self._data[first:first + n]
        rows = self._row_of[np.asarray(indices, dtype=np.int64)]
        n, first = len(rows), rows[0]
        if first >= 0 and (n == 1 or (rows[-1] - first == n - 1 and (np.diff(rows) == 1).all())):
            return self._data[first:first + n]
        if rows.min() < 0:
            raise RuntimeError("LoadGen issued a sample that is not loaded")
        return self._data[rows]

    def gather_one(self, index: int) -> np.ndarray:
        """One loaded sample as a batch of one (a view): `gather([index])` without the list's checks."""
        row = self._first_row.get(index, -1)
        if row < 0:
            raise RuntimeError("LoadGen issued a sample that is not loaded")
        return self._data[row:row + 1]

    def first_batch(self, size: int) -> np.ndarray:
        """`size` samples from the start of the dataset (for warm-up and compute timing)."""
        idx = np.arange(size) % self.total_count
        return np.ascontiguousarray(self.dataset.load(idx))
