"""Dispatch policies in isolation: every issued sample reaches the backend exactly once, in batches of
the allowed size, never empty, from every stream."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from scenarios import DispatchConfig, get_scenario


class Recorder:
    def __init__(self, delay_s: float = 0.0):
        self.lock = threading.Lock()
        self.batches: list[tuple[list[int], int]] = []
        self.delay_s = delay_s

    def __call__(self, ids, indices, stream):
        assert list(ids) == [i + 1000 for i in indices]  # ids and indices stay paired
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.batches.append((list(ids), stream))


@pytest.mark.parametrize("scenario,batch,streams", [
    ("Server", 4, 2), ("Server", 8, 3), ("Server", 1, 2), ("Offline", 16, 2), ("Offline", 16, 1),
    ("MultiStream", 2, 2), ("MultiStream", 8, 1), ("SingleStream", 1, 1)])
def test_every_sample_runs_once(scenario, batch, streams):
    rec = Recorder(delay_s=0.0002)
    config = DispatchConfig(batch=batch, streams=streams, samples_per_query=8, max_wait_us=300)
    dispatcher = get_scenario(scenario).make_dispatcher(rec, config)
    per_query = {"Offline": 500, "MultiStream": 8, "SingleStream": 1}.get(scenario, 1)
    issued = []
    for q in range(400 // per_query if per_query > 1 else 400):
        indices = list(range(q * per_query, (q + 1) * per_query))
        issued += indices
        dispatcher.issue([i + 1000 for i in indices], indices)
        if scenario == "Server" and q % 7 == 0:
            time.sleep(0.0003)  # bursts and gaps, so partial batches time out
    deadline = time.monotonic() + 10
    while sum(len(b) for b, _ in rec.batches) < len(issued) and time.monotonic() < deadline:
        time.sleep(0.01)
    dispatcher.close()
    counts = Counter(i for b, _ in rec.batches for i in b)
    assert counts == Counter(i + 1000 for i in issued)
    assert all(0 < len(b) <= max(batch, 1) for b, _ in rec.batches)
    assert {s for _, s in rec.batches} <= set(range(streams))
