"""The LoadGen SUT adapter: issued samples -> backend batches -> completed samples.

`run_batch` is the whole system path of one batch: gather the loaded samples, run the backend,
reduce logits to the top-1 class and complete the samples with it (4 bytes each, what the accuracy
log and TEST01 read). A failure completes the samples empty and is recorded, never raised: an
exception escaping into LoadGen aborts the process.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from mlperf_ext import loadgen
from mlperf_ext.qsl import SampleLibrary
from sut.base import Backend


def top1(logits: np.ndarray) -> np.ndarray:
    """Class index per sample as contiguous little-endian int32 (the response payload)."""
    if logits.ndim == 1:
        logits = logits[:, None]
    return np.ascontiguousarray(logits.reshape(logits.shape[0], -1).argmax(axis=1), dtype="<i4")


class SutAdapter:
    """Runs batches for a dispatcher; completes every sample exactly once, and counts the batch sizes
    the dispatcher really formed (a Server batcher's batches depend on arrivals, not on --batch)."""

    def __init__(self, backend: Backend, library: SampleLibrary, errors: loadgen.CallbackErrors):
        self.backend = backend
        self.library = library
        self.errors = errors
        self.batches = 0
        self.samples = 0
        self.batch_sizes: Counter[int] = Counter()
        self.outputs_per_sample: int | None = None  # what top-1 is taken over (seen on the first batch)
        self._count_lock = threading.Lock()  # streams finish batches concurrently

    def run_batch(self, ids: Sequence[int], indices: Sequence[int], stream: int = 0) -> None:
        try:
            logits = self.backend.infer(self.library.gather(indices), stream)
            result = top1(logits)
            if self.outputs_per_sample is None:
                self.outputs_per_sample = int(logits.size // max(len(logits), 1))
            if len(result) != len(ids):  # LoadGen would read past the buffer
                raise ValueError(f"backend returned {len(result)} results for {len(ids)} samples")
        except BaseException as exc:  # noqa: BLE001 - recorded, samples still completed
            self.errors.record(exc, f"infer(stream {stream})")
            loadgen.complete_empty(ids)
            return
        try:
            loadgen.complete(ids, result)
        except BaseException as exc:  # noqa: BLE001 - a dead stream would stall the run until the watchdog
            self.errors.record(exc, f"complete(stream {stream})")
            return
        with self._count_lock:
            self.batches += 1
            self.samples += len(ids)
            self.batch_sizes[len(ids)] += 1
