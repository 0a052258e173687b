"""Dispatch policies in isolation: every issued sample reaches the backend exactly once, in batches of
the allowed size, never empty, from every stream; for the native dispatcher and for its Python fallback."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from scenarios import DispatchConfig, get_scenario, native


class Recorder:
    def __init__(self, delay_s: float = 0.0):
        self.lock = threading.Lock()
        self.batches: list[tuple[list[int], int]] = []
        self.delay_s = delay_s
        self.ran = threading.Event()

    def __call__(self, ids, indices, stream):
        assert list(ids) == [i + 1000 for i in indices]  # ids and indices stay paired
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.batches.append((list(ids), stream))
        self.ran.set()

    def samples(self) -> int:
        with self.lock:
            return sum(len(b) for b, _ in self.batches)


@pytest.fixture(params=["native", "python"])
def impl(request, monkeypatch):
    """Each test runs on the native dispatcher and on the Python fallback (forced as on a host without
    the extension)."""
    if request.param == "python":
        monkeypatch.setattr(native, "unavailable", lambda: "forced by the test")
    return request.param


def test_the_native_dispatcher_is_built():
    # `pip install` builds scenarios._native; if it could not, every scenario silently runs the Python fallback
    assert native.unavailable() is None, native.unavailable()


def _wait_for(rec: Recorder, n: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while rec.samples() < n and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("scenario,batch,streams", [
    ("Server", 4, 2), ("Server", 8, 3), ("Server", 1, 2), ("Server", 1, 1), ("Offline", 16, 2), ("Offline", 16, 1),
    ("MultiStream", 2, 2), ("MultiStream", 8, 1), ("SingleStream", 1, 1)])
def test_every_sample_runs_once(impl, scenario, batch, streams):
    rec = Recorder(delay_s=0.0002)
    config = DispatchConfig(batch=batch, streams=streams, samples_per_query=8, max_wait_us=300)
    dispatcher = get_scenario(scenario).make_dispatcher(rec, config)
    inline = scenario == "SingleStream" or (scenario == "MultiStream" and streams == 1)
    assert dispatcher.impl == ("python" if inline else impl)
    assert (dispatcher.sut_handle is not None) == (dispatcher.impl == "native")
    if impl == "python" and not inline:
        assert dispatcher.impl_note == "forced by the test"  # the row says why the fallback ran
    per_query = {"Offline": 500, "MultiStream": 8, "SingleStream": 1}.get(scenario, 1)
    issued = []
    for q in range(400 // per_query if per_query > 1 else 400):
        indices = list(range(q * per_query, (q + 1) * per_query))
        issued += indices
        dispatcher.issue([i + 1000 for i in indices], indices)
        if scenario == "Server" and q % 7 == 0:
            time.sleep(0.0003)  # bursts and gaps, so partial batches time out
    _wait_for(rec, len(issued))
    dispatcher.close()
    counts = Counter(i for b, _ in rec.batches for i in b)
    assert counts == Counter(i + 1000 for i in issued)
    assert all(0 < len(b) <= max(batch, 1) for b, _ in rec.batches)
    assert {s for _, s in rec.batches} <= set(range(streams))


def test_server_batches_fill_when_samples_queue_up(impl):
    # a backend slower than the arrivals: while one batch runs, the next fills to the largest batch
    rec = Recorder(delay_s=0.02)
    dispatcher = get_scenario("Server").make_dispatcher(rec, DispatchConfig(batch=8, max_wait_us=100_000))
    for i in range(64):
        dispatcher.issue([i + 1000], [i])
    _wait_for(rec, 64)
    dispatcher.close()
    sizes = [len(b) for b, _ in rec.batches]
    assert sum(sizes) == 64 and max(sizes) == 8 and sizes.count(8) >= 6, sizes


def test_a_partial_server_batch_goes_when_its_wait_ends(impl):
    rec = Recorder()
    dispatcher = get_scenario("Server").make_dispatcher(rec, DispatchConfig(batch=64, max_wait_us=2000))
    dispatcher.issue([1003, 1004], [3, 4])
    assert rec.ran.wait(10), "a partial batch never ran"
    dispatcher.close()
    assert rec.batches == [([1003, 1004], 0)]


def test_flush_sends_a_partial_batch_without_waiting(impl):
    # LoadGen flushes after its last query: nothing more will fill the batch, so it must not sit out the wait
    rec = Recorder()
    dispatcher = get_scenario("Server").make_dispatcher(rec, DispatchConfig(batch=64, max_wait_us=60_000_000))
    dispatcher.issue([1001], [1])
    dispatcher.flush()
    ran = rec.ran.wait(20)
    dispatcher.close()
    assert ran and rec.batches == [([1001], 0)]


def test_close_runs_what_is_queued_first(impl):
    rec = Recorder(delay_s=0.001)
    dispatcher = get_scenario("Server").make_dispatcher(rec, DispatchConfig(batch=4, streams=2, max_wait_us=50))
    for i in range(40):
        dispatcher.issue([i + 1000], [i])
    dispatcher.close()
    assert rec.samples() == 40


def test_one_stream_of_batches_of_one_runs_on_the_issuing_thread():
    # nothing to batch: the native Server dispatcher runs each query where it is issued, with no worker
    if native.unavailable():
        pytest.skip(native.unavailable())
    threads = []
    dispatcher = get_scenario("Server").make_dispatcher(
        lambda ids, indices, stream: threads.append((threading.current_thread(), list(ids), stream)),
        DispatchConfig(batch=1, streams=1))
    assert dispatcher.inline
    dispatcher.issue([11, 12], [1, 2])
    dispatcher.close()
    me = threading.current_thread()
    assert threads == [(me, [11], 0), (me, [12], 0)]
    assert not get_scenario("Server").make_dispatcher(lambda *a: None, DispatchConfig(batch=2)).inline


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_given_run_one_the_inline_path_calls_it_with_the_id_and_index():
    # the adapter's cheaper batch of one: two integers, on the issuing thread, and run_batch is not called
    if native.unavailable():
        pytest.skip(native.unavailable())
    batches, ones = [], []

    def run_one(sample_id, index):
        ones.append((threading.current_thread(), sample_id, index))
        if sample_id == 12:
            raise RuntimeError("boom")  # counted like a raising run_batch, and the next sample still runs

    dispatcher = get_scenario("Server").make_dispatcher(lambda *a: batches.append(a), DispatchConfig(batch=1),
                                                        run_one=run_one)
    dispatcher.issue([11, 12, 13], [1, 2, 3])
    dispatcher.close()
    me = threading.current_thread()
    assert ones == [(me, 11, 1), (me, 12, 2), (me, 13, 3)] and batches == []
    assert dispatcher.failed_batches == 1
    # where batches form, run_one is not used
    dispatcher = get_scenario("Server").make_dispatcher(lambda *a: batches.append(a), DispatchConfig(batch=2),
                                                        run_one=run_one)
    dispatcher.issue([14], [4])
    dispatcher.flush()
    dispatcher.close()
    assert len(ones) == 3 and len(batches) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_raising_run_batch_is_counted_and_the_workers_go_on():
    if native.unavailable():
        pytest.skip(native.unavailable())
    calls = []

    def run_batch(ids, indices, stream):
        calls.append(list(ids))
        if len(calls) == 1:
            raise RuntimeError("boom")

    dispatcher = native.NativeBatcher(run_batch, 1, 1, 0)
    dispatcher.issue([1, 2, 3], [1, 2, 3])
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    dispatcher.close()
    assert calls == [[1], [2], [3]] and dispatcher.failed_batches == 1
