"""A child that crashes or hangs becomes a failure row and the spec goes on; a raising backend
still completes its samples and the row says so."""

from __future__ import annotations

from pathlib import Path

from mlperf_ext.config import RunPoint
from mlperf_ext.store import ResultsStore
from tests.harness.conftest import SHORT
from tiers.runner import layout
from tiers.sweep import run_points

FAULTY = "tests.harness.faulty_backends"


def point(backend: str, timeout_s: float = 120) -> RunPoint:
    return RunPoint(model="none.onnx", model_name=backend.rsplit(":", 1)[-1], dataset="mnist", backend=backend,
                    scenario="Offline", batch=8, settings=dict(SHORT), timeout_s=timeout_s)


def test_crash_and_hang_become_rows_and_the_spec_goes_on(tmp_path):
    points = [point(f"{FAULTY}:AbortingBackend"), point(f"{FAULTY}:HangingBackend", timeout_s=20),
              point(f"{FAULTY}:RaisingBackend"), point("null")]
    results = run_points(points, tmp_path)
    crashed, hung, raised, ok = results
    assert crashed.status == "crashed"
    assert "SIGABRT" in crashed.error and "simulated native crash" in crashed.error
    assert hung.status == "timeout"
    assert "timeout" in hung.error
    # the watchdog asked the hung child for its threads' stacks before killing it: the row says where it hung
    assert "faulty_backends.py" in hung.error and "in infer" in hung.error
    assert raised.status == "failed"
    assert raised.callback_errors > 0 and "simulated inference failure" in raised.error
    # LoadGen still finished: each batch of 8 raised once, and its samples were completed all the same
    assert raised.system.sample_count > 0 and raised.callback_errors == -(-raised.system.sample_count // 8)
    assert ok.status == "ok" and ok.system.valid is True and ok.callback_errors == 0
    stored = ResultsStore(layout.store_path(tmp_path)).rows()
    assert [r["status"] for r in stored] == ["crashed", "timeout", "failed", "ok"]


def test_a_raising_backend_at_a_server_batch_of_one_completes_every_query(tmp_path):
    # the batch-of-one path (the adapter's run_one, on LoadGen's issue thread) fails as the batch path does
    p = RunPoint(**{**point(f"{FAULTY}:RaisingBackend").to_dict(), "scenario": "Server", "batch": 1,
                    "settings": {**SHORT, "server_target_qps": 2000}})
    [r] = run_points([p], tmp_path)
    assert r.status == "failed" and "simulated inference failure" in r.error
    assert r.dispatch.impl == "native"
    assert r.system.sample_count > 0 and r.callback_errors == r.system.sample_count


def test_failed_points_are_retried_but_ok_ones_skipped(tmp_path):
    points = [point(f"{FAULTY}:RaisingBackend"), point("null")]
    run_points(points, tmp_path)
    again = run_points(points, tmp_path)
    assert [r.status for r in again] == ["failed"]  # only the failed point ran again
    forced = run_points(points, tmp_path, force=True)
    assert [r.status for r in forced] == ["failed", "ok"]
    store = ResultsStore(layout.store_path(tmp_path))
    assert len(store.rows(latest_only=False)) == 5 and len(store.rows()) == 2


def test_failure_in_accuracy_mode_is_failed_not_refused(tmp_path):
    p = RunPoint(**{**point(f"{FAULTY}:RaisingBackend").to_dict(), "mode": "accuracy"})
    [r] = run_points([p], tmp_path)
    assert r.status == "failed"
    assert r.callback_errors > 0 and "simulated inference failure" in r.error
    assert r.accuracy is None  # not scored from empty answers


def test_no_code_outside_the_audit_claims_compliance():
    """A run's `compliant` is the audit checker's verdict: the runner and the child never set it (the power
    figures' own `compliant` is the meter's MLPerf-Power status, another fact)."""
    import re

    root = Path(__file__).resolve().parents[2]
    setter = re.compile(r"\b(result|again|first|recovered|r)\.compliant\s*=|PointResult\([^)]*\bcompliant=")
    setters = [str(p.relative_to(root)) for folder in ("mlperf_ext", "tiers", "sut", "scenarios")
               for p in (root / folder).rglob("*.py") if setter.search(p.read_text())]
    assert setters == []
