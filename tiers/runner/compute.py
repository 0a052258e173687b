"""Compute timing at the point's deployment: every stream's compute step runs at once, as the system
path runs them, so compute and system figures describe the same deployment.

A measurement is `WINDOWS` consecutive windows after a warm-up. In each window every stream's thread
repeats its step (at least `MIN_WINDOW_EXECUTIONS` times, and for at least its share of the time budget);
the streams start together at a barrier. A window's throughput is its samples per second summed over the
streams, each stream's samples over its own time from the barrier to its last execution's end (so the
tail, when the first streams have stopped and the last one finishes its execution alone, is not charged
to all of them; with one stream: over the sum of the executions' own durations, so the timing loop is not
counted). The measurement's throughput is the median of its windows, and the windows' range over that
median is its spread: one slow window (a page fault, a timer tick, another process) moves neither, and
the spread says how far two figures of this host may differ by chance. Latencies are each execution's
own duration as the backend timed it (a host clock around the call, or device events). Python's garbage
collector is off while timing, as timeit keeps it off: a collection is no part of an execution.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from sut.model_file import batch_rows

#: seconds of compute timing per measurement (all windows), by profile; a slow step runs longer, since
#: every window runs each stream at least MIN_WINDOW_EXECUTIONS times
COMPUTE_SECONDS = {"quick": 0.5, "submission": 5.0}
WINDOWS = 5
MIN_WINDOW_EXECUTIONS = 4
MAX_EXECUTIONS = 20000  # per stream and window
#: the warm-up before the first window: a share of the budget, and at least this many executions per
#: stream (the first executions of a freshly loaded model pay for lazy initialisation and cold caches)
WARMUP_EXECUTIONS = 5
WARMUP_FRACTION = 0.2


@dataclass
class Window:
    """One timed window: each stream's execution seconds, and its time from the common start."""

    batch: int
    latencies_s: list[list[float]]  # per stream
    walls_s: list[float]  # per stream: from the barrier to its last execution's end (one stream: their sum)

    @property
    def throughput(self) -> float:
        return sum(self.batch * len(lat) / wall for lat, wall in zip(self.latencies_s, self.walls_s) if wall > 0)


@dataclass
class ComputeTiming:
    """One measurement: its windows, every stream running at once in each."""

    batch: int
    streams: int
    windows: list[Window] = field(default_factory=list)

    @property
    def latencies_s(self) -> list[float]:
        """Every execution's seconds, all windows and streams pooled."""
        return [s for w in self.windows for lat in w.latencies_s for s in lat]

    @property
    def window_throughputs(self) -> list[float]:
        return [w.throughput for w in self.windows]

    @property
    def throughput(self) -> float:
        """Samples per second over all streams: the median of the windows."""
        return float(statistics.median(self.window_throughputs))

    @property
    def spread(self) -> float:
        """(fastest window - slowest window) / the median window: how far this host's figures wander."""
        return spread_of(self.window_throughputs)

    @property
    def mean_latency_s(self) -> float:
        return float(np.mean(self.latencies_s))


def spread_of(rates: list[float]) -> float:
    """The range of `rates` over their median (0 for fewer than two)."""
    if len(rates) < 2:
        return 0.0
    middle = statistics.median(rates)
    return (max(rates) - min(rates)) / middle if middle > 0 else 0.0


def _loop(step, seconds: float, minimum: int, out: list[float]) -> None:
    clock = time.perf_counter
    deadline = clock() + seconds
    while len(out) < MAX_EXECUTIONS and (clock() < deadline or len(out) < minimum):
        out.append(step())


def run_window(steps: list, batch: int, seconds: float, minimum: int) -> Window:
    """Every step repeated for about `seconds` (and at least `minimum` times), all streams at once."""
    per_stream: list[list[float]] = [[] for _ in steps]
    if len(steps) == 1:
        _loop(steps[0], seconds, minimum, per_stream[0])
        return Window(batch, per_stream, [float(np.sum(per_stream[0]))])
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
    return Window(batch, per_stream, [end - start for end in ends])


def measure_compute(backend, batch: np.ndarray | dict, streams: int, seconds: float,
                    windows: int = WINDOWS) -> ComputeTiming:
    """Warm every stream up (a fifth of the budget and WARMUP_EXECUTIONS, all at once: thread pools, caches
    and clocks settle as they will during the run), then time `windows` windows of about `seconds / windows`."""
    steps = [backend.compute_step(batch, k) for k in range(streams)]
    n = batch_rows(batch)
    run_window(steps, n, WARMUP_FRACTION * seconds, WARMUP_EXECUTIONS)
    timing = ComputeTiming(batch=n, streams=streams)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(windows):
            timing.windows.append(run_window(steps, n, seconds / windows, MIN_WINDOW_EXECUTIONS))
    finally:
        if enabled:
            gc.enable()
    return timing


def latency_stats_ms(seconds: list[float]) -> dict:
    """Latency statistics with percentiles taken as LoadGen takes them (sorted[int(n * p)], results.cc),
    so compute and system percentiles mean the same thing."""
    arr = np.sort(np.asarray(seconds)) * 1e3

    def pct(p: float) -> float:
        return float(arr[min(int(arr.size * p), arr.size - 1)])

    return {"mean": float(arr.mean()), "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
            "min": float(arr[0]), "max": float(arr[-1]), "n": int(arr.size)}
