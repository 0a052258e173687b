"""Compute timing runs every stream's step at once (as the system path runs them), and its throughput is
the sum of the streams' own rates: a FakeTwoStreamDevice records when each step ran."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tiers.runner.compute import MIN_WINDOW_EXECUTIONS, WINDOWS, measure_compute


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
    assert timing.streams == streams and len(timing.windows) == WINDOWS
    for window in timing.windows:
        # a window's throughput is each stream's samples over its own time from the common start (the tail,
        # where the last stream finishes alone, is not charged to the others), summed over the streams
        assert len(window.latencies_s) == streams
        assert all(len(lat) >= MIN_WINDOW_EXECUTIONS for lat in window.latencies_s)
        assert window.throughput == pytest.approx(sum(4 * len(lat) / w for lat, w in zip(window.latencies_s,
                                                                                      window.walls_s)))
        assert max(window.walls_s) < sum(sum(lat) for lat in window.latencies_s)  # the streams overlapped
    # the measurement is the median window, and the spread is the windows' range over it
    rates = sorted(timing.window_throughputs)
    assert timing.throughput == rates[len(rates) // 2]
    assert timing.spread == pytest.approx((rates[-1] - rates[0]) / rates[len(rates) // 2])


def test_one_slow_window_moves_neither_the_figure_nor_much_else():
    # a device that is slow for a spell (another process took the core): the median window ignores it,
    # the spread shows it
    class Stalling(FakeTwoStreamDevice):
        def compute_step(self, batch, stream=0):
            calls = []

            def step() -> float:
                calls.append(1)
                seconds = 0.012 if 10 <= len(calls) < 13 else 0.004  # three slow calls: at most two windows
                time.sleep(seconds)
                return seconds

            return step

    timing = measure_compute(Stalling(), np.zeros((4, 1), np.float32), 1, seconds=0.1, windows=5)
    assert timing.throughput == pytest.approx(4 / 0.004)
    assert timing.spread > 0.3
