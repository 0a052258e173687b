"""Compute timing at the point's deployment: every stream's compute step runs at once, as the system
path runs them, so compute and system figures describe the same deployment.

Each stream's thread repeats its step until the time budget is spent (and at least `MIN_EXECUTIONS`
ran, at most `MAX_EXECUTIONS`); the streams start together at a barrier. Throughput is all executed
samples per second summed over the streams, each stream's samples over its own time from the barrier to
its last execution's end (so the tail, when the first streams have stopped and the last one finishes its
execution alone, is not charged to all of them; with one stream: over the sum of the executions' own
durations, so the timing loop is not counted); latencies are each execution's own
duration as the backend timed it (a host clock around the call, or device events). Python's garbage
collector is off while timing, as timeit keeps it off: a collection is no part of an execution.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass

import numpy as np

#: seconds of compute timing per measurement, by profile
COMPUTE_SECONDS = {"quick": 0.5, "submission": 5.0}
MIN_EXECUTIONS, MAX_EXECUTIONS = 10, 20000
WARMUP_EXECUTIONS = 3
WARMUP_FRACTION = 0.2


@dataclass
class ComputeTiming:
    """One measurement: every execution's seconds (all streams pooled) and the wall time they took."""

    batch: int
    streams: int
    latencies_s: list[float]
    wall_s: float
    stream_counts: list[int] | None = None  # executions per stream (None: one stream)
    stream_walls_s: list[float] | None = None  # each stream's time from the barrier to its last end

    @property
    def throughput(self) -> float:
        """Samples per second over all streams: the sum of each stream's own rate."""
        if self.stream_counts and self.stream_walls_s:
            return sum(self.batch * n / w for n, w in zip(self.stream_counts, self.stream_walls_s))
        return self.batch * len(self.latencies_s) / self.wall_s

    @property
    def mean_latency_s(self) -> float:
        return float(np.mean(self.latencies_s))


def _loop(step, seconds: float, minimum: int, out: list[float]) -> None:
    clock = time.perf_counter
    deadline = clock() + seconds
    while len(out) < MAX_EXECUTIONS and (clock() < deadline or len(out) < minimum):
        out.append(step())


def _run_streams(steps: list, seconds: float, minimum: int) -> tuple[list[list[float]], float, list[float]]:
    """Every step repeated for about `seconds`, all streams at once: (seconds per execution per stream, wall,
    each stream's own time from the start to its end)."""
    per_stream: list[list[float]] = [[] for _ in steps]
    if len(steps) == 1:
        _loop(steps[0], seconds, minimum, per_stream[0])
        total = float(np.sum(per_stream[0]))
        return per_stream, total, [total]
    barrier = threading.Barrier(len(steps) + 1)
    ends = [0.0] * len(steps)

    def work(k: int) -> None:
        barrier.wait()
        _loop(steps[k], seconds, minimum, per_stream[k])
        ends[k] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(k,), name=f"compute-{k}") for k in range(len(steps))]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return per_stream, time.perf_counter() - start, [end - start for end in ends]


def measure_compute(backend, batch: np.ndarray, streams: int, seconds: float) -> ComputeTiming:
    """Warm every stream up (a fifth of the budget, all at once: thread pools, caches and clocks settle
    as they will during the run), then time them concurrently for about `seconds`."""
    steps = [backend.compute_step(batch, k) for k in range(streams)]
    _run_streams(steps, WARMUP_FRACTION * seconds, WARMUP_EXECUTIONS)
    enabled = gc.isenabled()
    gc.disable()
    try:
        per_stream, wall, walls = _run_streams(steps, seconds, MIN_EXECUTIONS)
    finally:
        if enabled:
            gc.enable()
    latencies = [s for part in per_stream for s in part]
    multi = streams > 1
    return ComputeTiming(batch=len(batch), streams=streams, latencies_s=latencies, wall_s=wall,
                         stream_counts=[len(part) for part in per_stream] if multi else None,
                         stream_walls_s=walls if multi else None)


def latency_stats_ms(seconds: list[float]) -> dict:
    """Latency statistics with percentiles taken as LoadGen takes them (sorted[int(n * p)], results.cc),
    so compute and system percentiles mean the same thing."""
    arr = np.sort(np.asarray(seconds)) * 1e3

    def pct(p: float) -> float:
        return float(arr[min(int(arr.size * p), arr.size - 1)])

    return {"mean": float(arr.mean()), "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
            "min": float(arr[0]), "max": float(arr[-1]), "n": int(arr.size)}
