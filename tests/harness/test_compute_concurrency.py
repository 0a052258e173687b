"""Compute timing runs every stream's step at once (as the system path runs them), and its throughput is
the sum of the streams' own rates: a FakeTwoStreamDevice records when each step ran."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tiers.runner.compute import measure_compute


class FakeTwoStreamDevice:
    """Stands for an accelerator with one queue per stream: a step holds its queue for 5 ms."""

    def __init__(self):
        self.intervals: dict[int, list[tuple[float, float]]] = {}
        self.lock = threading.Lock()

    def compute_step(self, batch: np.ndarray, stream: int = 0):
        def step() -> float:
            start = time.perf_counter()
            time.sleep(0.005)
            end = time.perf_counter()
            with self.lock:
                self.intervals.setdefault(stream, []).append((start, end))
            return end - start

        return step


def _overlapping(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> int:
    return sum(1 for s, e in a if any(s < e2 and s2 < e for s2, e2 in b))


@pytest.mark.parametrize("streams", [2, 3])
def test_every_stream_is_timed_at_once(streams):
    device = FakeTwoStreamDevice()
    timing = measure_compute(device, np.zeros((4, 1), np.float32), streams, seconds=0.1)
    assert sorted(device.intervals) == list(range(streams))
    first = device.intervals[0]
    for k in range(1, streams):  # run one after another, no execution of stream 0 would overlap stream k's
        assert _overlapping(first, device.intervals[k]) >= len(first) // 2
    assert timing.streams == streams
    # throughput is each stream's samples over its own time from the common start (the tail, where the
    # last stream finishes alone, is not charged to the others), summed over the streams
    assert sum(timing.stream_counts) == len(timing.latencies_s) and max(timing.stream_walls_s) <= timing.wall_s
    assert timing.throughput == pytest.approx(sum(4 * n / w for n, w in zip(timing.stream_counts,
                                                                              timing.stream_walls_s)))
    assert timing.throughput >= 4 * len(timing.latencies_s) / timing.wall_s
    assert timing.wall_s < sum(timing.latencies_s)  # pooled execution time exceeds the shared wall time
