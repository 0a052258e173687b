"""The LoadGen SUT adapter: issued samples -> backend batches -> completed samples.

`run_batch` is the whole system path of one batch: gather the loaded samples, run the backend,
reduce logits to the top-1 class and complete the samples with it (a little-endian int32 each, what
the accuracy log and TEST01 read), through the stream's reusable responses (loadgen.ResponseSlots). That
is the classification task's path. `TaskAdapter` is the path of a task that reads every output by name
(tasks/): the backend's `infer_outputs`, then the task's payloads, one per sample, of any size.
A failure completes the samples empty and is recorded, never raised: an exception escaping into LoadGen
aborts the process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from mlperf_ext import loadgen
from mlperf_ext.qsl import SampleLibrary
from sut.base import Backend


class SutAdapter:
    """Runs batches for a dispatcher; completes every sample exactly once, and counts the batch sizes
    the dispatcher really formed (a Server batcher's batches depend on arrivals, not on --batch).

    Each stream runs one batch at a time, so each keeps its own response slots and counts: no lock on
    the system path."""

    def __init__(self, backend: Backend, library: SampleLibrary, errors: loadgen.CallbackErrors):
        self.backend = backend
        self.library = library
        self.errors = errors
        self.outputs_per_sample: int | None = None  # what top-1 is taken over (seen on the first batch)
        self._slots: dict[int, loadgen.ResponseSlots] = {}
        self._sizes: dict[int, dict[int, int]] = {}  # stream -> batch size -> batches
        # bound once: at a Server batch of one, each lookup saved is a few percent of the harness's cost
        self._infer, self._gather, self._gather_one = backend.infer, library.gather, library.gather_one
        # run_one's response (one caller at a time: LoadGen's issue thread)
        self._complete_one = loadgen.ResponseSlots().complete_one
        self._ones = 0  # samples run_one completed with a result

    def _stream_sizes(self, stream: int) -> dict[int, int]:
        """The batch-size counts of one stream (only that stream's thread adds its key)."""
        sizes = self._sizes.get(stream)
        if sizes is None:
            sizes = self._sizes[stream] = {}
        return sizes

    @property
    def batch_sizes(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for sizes in list(self._sizes.values()):
            total.update(sizes)
        if self._ones:
            total[1] += self._ones
        return total

    @property
    def batches(self) -> int:
        return sum(self.batch_sizes.values())

    @property
    def samples(self) -> int:
        return sum(size * count for size, count in self.batch_sizes.items())

    def run_batch(self, ids: Sequence[int], indices: Sequence[int], stream: int = 0) -> None:
        n = len(ids)
        try:
            slots = self._slots.get(stream)
            if slots is None:  # first batch of this stream (only this stream's thread writes its keys)
                slots = self._slots[stream] = loadgen.ResponseSlots()
                self._sizes[stream] = {}
            logits = self._infer(self._gather(indices), stream)
            if logits.ndim != 2:
                logits = logits.reshape(len(logits), -1)
            if len(logits) != n:  # LoadGen would read past the buffer
                raise ValueError(f"backend returned {len(logits)} results for {n} samples")
            if self.outputs_per_sample is None:
                self.outputs_per_sample = int(logits.shape[1])
            classes = logits.argmax(axis=-1)
        except BaseException as exc:  # noqa: BLE001 - recorded, samples still completed
            self.errors.record(exc, f"infer(stream {stream})")
            loadgen.complete_empty(ids)
            return
        try:
            slots.complete(ids, classes)
        except BaseException as exc:  # noqa: BLE001 - a dead stream would stall the run until the watchdog
            self.errors.record(exc, f"complete(stream {stream})")
            return
        sizes = self._sizes[stream]
        sizes[n] = sizes.get(n, 0) + 1

    def run_one(self, sample_id: int, index: int) -> None:
        """`run_batch([sample_id], [index], 0)` in fewer steps: the Server batch-of-one path, which LoadGen's
        issue thread runs for every query (no lists, no reshape; ~0.9 against ~1.6 us in Python, measured
        with the null backend). The same checks, the same top-1, the same failure handling."""
        try:
            logits = self._infer(self._gather_one(index), 0)
            if len(logits) != 1:  # LoadGen would read past the buffer
                raise ValueError(f"backend returned {len(logits)} results for 1 sample")
            if self.outputs_per_sample is None:
                self.outputs_per_sample = int(logits.size)
            top1 = logits.argmax()  # flat: over the one sample's outputs, as run_batch's reshape(1, -1)
        except BaseException as exc:  # noqa: BLE001 - recorded, the sample still completed
            self.errors.record(exc, "infer(stream 0)")
            loadgen.complete_empty([sample_id])
            return
        try:
            self._complete_one(sample_id, top1)
        except BaseException as exc:  # noqa: BLE001 - an exception must not reach LoadGen
            self.errors.record(exc, "complete(stream 0)")
            return
        self._ones += 1


class TaskAdapter(SutAdapter):
    """The adapter of a task that reads every output by name (`Task.named_outputs`): each batch runs through
    `backend.infer_outputs`, and the task turns the outputs into each sample's payload. The same counts, checks
    and failure handling as the classification path."""

    def __init__(self, backend: Backend, library: SampleLibrary, errors: loadgen.CallbackErrors, task):
        super().__init__(backend, library, errors)
        self._infer_outputs, self._payloads = backend.infer_outputs, task.payloads

    def run_batch(self, ids: Sequence[int], indices: Sequence[int], stream: int = 0) -> None:
        n = len(ids)
        try:
            sizes = self._stream_sizes(stream)
            outputs = self._infer_outputs(self._gather(indices), stream)
            short = {name: len(value) for name, value in outputs.items() if len(value) != n}
            if short:  # a payload would be read past its output
                raise ValueError(f"backend returned {short} results for {n} samples")
            payloads = self._payloads(outputs, indices)
        except BaseException as exc:  # noqa: BLE001 - recorded, samples still completed
            self.errors.record(exc, f"infer(stream {stream})")
            loadgen.complete_empty(ids)
            return
        try:
            loadgen.complete_payloads(ids, payloads)
        except BaseException as exc:  # noqa: BLE001 - a dead stream would stall the run until the watchdog
            self.errors.record(exc, f"complete(stream {stream})")
            return
        sizes[n] = sizes.get(n, 0) + 1

    def run_one(self, sample_id: int, index: int) -> None:
        self.run_batch([sample_id], [index], 0)


def make_adapter(backend: Backend, library: SampleLibrary, errors: loadgen.CallbackErrors, task) -> SutAdapter:
    """The adapter for a task: the first-output top-1 path, or the named-outputs path."""
    if task.named_outputs:
        return TaskAdapter(backend, library, errors, task)
    return SutAdapter(backend, library, errors)
