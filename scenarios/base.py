"""What every scenario module provides, and the stream workers they share.

A scenario module decides *how* issued samples reach the backend (inline on LoadGen's issue thread,
split into batches, or queued and dynamically batched) and which LoadGen hints to derive from a
compute-time estimate when the user gave none.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mlperf_ext.errors import ConfigError

RunBatch = Callable[[Sequence[int], Sequence[int], int], None]
#: run_one(id, index): one sample on stream 0 (the adapter's cheaper form of a batch of one)
RunOne = Callable[[int, int], None]

# Caps on hints derived from compute timing. LoadGen pre-generates every query of a run up front
# (~400 B each), so a hint taken from a near-zero compute time (the null backend) would ask for
# millions of queries and exhaust memory. The Offline cap sits above what the harness reaches at all on a
# small host: the null backend through the native dispatcher completes ~3.6 M samples/s at batch 256 on 2
# cores (benchmarks/harness_overhead.py); a hint below the SUT's rate ends the query before the minimum
# duration (INVALID).
MAX_OFFLINE_QPS = 5_000_000.0  # ~2 GB of pre-generated samples per quick (1 s) run
#: the highest Server target the harness tries on its own: above the 0.5-1 M QPS the native dispatcher
#: sustains with the null backend on 2 cores (benchmarks/harness_overhead.py), and LoadGen's limit on a
#: user's target (mlperf_ext.loadgen.QPS_LIMITS): a 1 s probe pre-generates ~0.4 GB of queries there
MAX_SERVER_QPS = 1_000_000.0
OFFLINE_QPS_MARGIN = 1.5
MIN_EXPECTED_LATENCY_NS = 5_000


@dataclass(frozen=True)
class DispatchConfig:
    """Deployment knobs the dispatch policy needs."""

    batch: int = 1  # the largest batch handed to the backend
    streams: int = 1  # concurrent executions, one worker thread each
    samples_per_query: int = 8  # MultiStream query size
    max_wait_us: int = 1000  # Server: how long a partial batch may wait for more samples

    def __post_init__(self):
        if self.batch < 1 or self.streams < 1 or self.samples_per_query < 1:
            raise ConfigError("batch, streams and samples_per_query must be >= 1; fix: pass positive values")
        if self.max_wait_us < 0:
            raise ConfigError("max_wait_us must be >= 0; fix: pass 0 or more microseconds")


@dataclass(frozen=True)
class ComputeEstimate:
    """Pure compute measured before the run at the point's deployment: the mean latency (s) of one
    execution of `batch` samples on one stream, and the samples/s of all streams running at once."""

    batch: int
    latency_s: float
    throughput: float


class Dispatcher(Protocol):
    #: which implementation ran ("native": scenarios/native.py; "python": the classes here)
    impl: str
    #: why a Python dispatcher ran where the native one would have (None when by design)
    impl_note: str | None
    #: a LoadGen SUT handle when the dispatcher is itself the SUT (native); None: the issue/flush callbacks
    #: go into a FastSUT
    sut_handle: int | None

    def issue(self, ids: list[int], indices: list[int]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Scenario(Protocol):
    name: str

    def nominal_batch(self, config: DispatchConfig) -> int:
        """The batch size this scenario's backend calls normally have (for compute timing)."""

    def auto_settings(self, estimate: ComputeEstimate, config: DispatchConfig) -> dict:
        """LoadGen hints (TestSettings fields) derived from the estimate, used when the user set none.
        A hint only sizes the run; it is never the figure the run is judged by."""

    def make_dispatcher(self, run_batch: RunBatch, config: DispatchConfig,
                        run_one: RunOne | None = None) -> Dispatcher:
        """The dispatcher of this scenario's policy; `run_one`, where given, is what a dispatcher that
        runs single samples may call instead of a batch of one."""


def chunks(ids: Sequence[int], indices: Sequence[int], size: int):
    for start in range(0, len(ids), size):
        yield ids[start:start + size], indices[start:start + size]


class PythonDispatcher:
    """What the Python dispatchers share: LoadGen calls them through a FastSUT."""

    impl = "python"
    impl_note: str | None = None
    sut_handle: int | None = None


class Inline(PythonDispatcher):
    """Runs every issued query on LoadGen's issue thread, split into batches: no hand-off cost."""

    def __init__(self, run_batch: RunBatch, batch: int):
        self._run, self._batch = run_batch, batch

    def issue(self, ids: list[int], indices: list[int]) -> None:
        if len(ids) <= self._batch:
            self._run(ids, indices, 0)
            return
        for part_ids, part_idx in chunks(ids, indices, self._batch):
            self._run(part_ids, part_idx, 0)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class StreamPool(PythonDispatcher):
    """`streams` worker threads; worker k runs its batches on backend stream k (the native batcher's
    fallback for Offline and MultiStream)."""

    def __init__(self, run_batch: RunBatch, streams: int, batch: int):
        self._run, self._batch = run_batch, batch
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, args=(k,), daemon=True,
                                          name=f"stream-{k}") for k in range(streams)]
        for worker in self._workers:
            worker.start()

    def _work(self, stream: int) -> None:
        while (job := self._jobs.get()) is not None:
            self._run(job[0], job[1], stream)

    def issue(self, ids: list[int], indices: list[int]) -> None:
        for job in chunks(ids, indices, self._batch):
            self._jobs.put(job)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join()
