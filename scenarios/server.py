"""Server: Poisson arrivals under a latency bound. Issued samples go to a queue; `streams` workers
each take up to `batch` samples, waiting at most `max_wait_us` after the oldest one arrived for a
batch to fill (dynamic batching), then run it on their own stream.

The queue and the workers are native (scenarios/native.py): LoadGen's issue thread takes no GIL and the
backend's Python runs once per batch; with one stream and batches of one, LoadGen's issue thread runs
each query itself (a worker would be a third busy thread on a small host, for nothing to batch). `DynamicBatcher` is the same policy in Python, the fallback where the
extension is not built: there every query crosses from the issue thread to a worker through a
`threading.Condition`, which caps the rate at what the GIL allows per query.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque

from scenarios.base import ComputeEstimate, DispatchConfig, PythonDispatcher, RunBatch, RunOne
from scenarios.native import native_or_python

#: LoadGen's issue thread needs the GIL for every query; a 5 ms switch interval shows up directly
#: in the tail latency (measured with LoadGen's null SUT on 2 cores), so the Server run lowers it.
SERVER_SWITCH_INTERVAL_S = 0.0005


class DynamicBatcher(PythonDispatcher):
    def __init__(self, run_batch: RunBatch, config: DispatchConfig):
        self._run = run_batch
        self._max_batch = config.batch
        self._max_wait = config.max_wait_us * 1e-6
        self._pending: deque[tuple[int, int, float]] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._flushing = False  # LoadGen issues nothing more in this series: partial batches need not wait
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(SERVER_SWITCH_INTERVAL_S)
        self._workers = [threading.Thread(target=self._work, args=(k,), daemon=True, name=f"stream-{k}")
                         for k in range(config.streams)]
        for worker in self._workers:
            worker.start()

    def issue(self, ids: list[int], indices: list[int]) -> None:
        now = time.perf_counter()
        with self._ready:
            self._pending.extend((sid, idx, now) for sid, idx in zip(ids, indices))
            self._flushing = False
            self._ready.notify()

    def _take(self) -> list[tuple[int, int, float]] | None:
        """Up to `max_batch` queued samples, once the batch is full or its oldest sample waited
        `max_wait`, or LoadGen flushed; None when closing. Never an empty batch: another stream may take what this one
        waited for, and then this one goes back to waiting."""
        with self._ready:
            while True:
                while not self._pending:
                    if self._closing:
                        return None
                    self._ready.wait()
                while (self._pending and len(self._pending) < self._max_batch and not self._closing
                       and not self._flushing):
                    remaining = self._pending[0][2] + self._max_wait - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._ready.wait(remaining)
                if not self._pending:
                    continue
                n = min(self._max_batch, len(self._pending))
                taken = [self._pending.popleft() for _ in range(n)]
                if self._pending:
                    self._ready.notify()  # let another stream start on what is left
                return taken

    def _work(self, stream: int) -> None:
        while (taken := self._take()) is not None:
            self._run([t[0] for t in taken], [t[1] for t in taken], stream)

    def flush(self) -> None:
        with self._ready:
            self._flushing = True
            self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        for worker in self._workers:
            worker.join()
        sys.setswitchinterval(self._old_switch)


class Server:
    name = "Server"

    def nominal_batch(self, config: DispatchConfig) -> int:
        return config.batch

    def auto_settings(self, estimate: ComputeEstimate, config: DispatchConfig) -> dict:
        # The target QPS is the claim being tested, so it is never derived from the compute rate:
        # the user sets it, or the runner searches it with short runs (tiers/runner/server_search.py).
        return {}

    def make_dispatcher(self, run_batch: RunBatch, config: DispatchConfig, run_one: RunOne | None = None):
        # one stream with batches of one: nothing to batch, so LoadGen's issue thread runs each query itself
        # (through run_one where given)
        inline = config.batch == 1 and config.streams == 1
        return native_or_python(run_batch, config.batch, config.streams, config.max_wait_us,
                                lambda: DynamicBatcher(run_batch, config), run_inline=inline,
                                run_one=run_one if inline else None)
