"""A child that crashes or hangs becomes a failure row and the sweep goes on; a raising backend
still completes its samples and the row says so."""

from __future__ import annotations

from mlperf_ext.config import RunPoint
from mlperf_ext.store import ResultsStore
from tests.harness.conftest import SHORT
from tiers.sweep import run_points, store_path

FAULTY = "tests.harness.faulty_backends"


def point(backend: str, timeout_s: float = 120) -> RunPoint:
    return RunPoint(model="none.onnx", model_name=backend.rsplit(":", 1)[-1], dataset="mnist", backend=backend,
                    scenario="Offline", batch=8, settings=dict(SHORT), timeout_s=timeout_s)


def test_crash_and_hang_become_rows_and_the_spec_goes_on(tmp_path):
    points = [point(f"{FAULTY}:AbortingBackend"), point(f"{FAULTY}:HangingBackend", timeout_s=20),
              point(f"{FAULTY}:RaisingBackend"), point("null")]
    rows = run_points(points, tmp_path)
    crashed, hung, raised, ok = rows
    assert crashed["status"] == "crashed"
    assert "SIGABRT" in crashed["error"] and "simulated native crash" in crashed["error"]
    assert hung["status"] == "timeout"
    assert "timeout" in hung["error"]
    assert raised["status"] == "failed"
    assert raised["callback_errors"] > 0 and "simulated inference failure" in raised["error"]
    assert raised["valid"] in (0, 1)  # LoadGen still finished: every sample was completed
    assert ok["status"] == "ok" and ok["valid"] in (0, 1) and ok["callback_errors"] == 0
    stored = ResultsStore(store_path(tmp_path)).rows()
    assert [r["status"] for r in stored] == ["crashed", "timeout", "failed", "ok"]


def test_failed_points_are_retried_but_ok_ones_skipped(tmp_path):
    points = [point(f"{FAULTY}:RaisingBackend"), point("null")]
    run_points(points, tmp_path)
    again = run_points(points, tmp_path)
    assert [r["status"] for r in again] == ["failed"]  # only the failed point ran again
    forced = run_points(points, tmp_path, force=True)
    assert [r["status"] for r in forced] == ["failed", "ok"]
    store = ResultsStore(store_path(tmp_path))
    assert len(store.rows(latest_only=False)) == 5 and len(store.rows()) == 2


def test_failure_in_accuracy_mode_is_failed_not_refused(tmp_path):
    p = RunPoint(**{**point(f"{FAULTY}:RaisingBackend").to_dict(), "mode": "accuracy"})
    [row] = run_points([p], tmp_path)
    assert row["status"] == "failed"
    assert row["callback_errors"] > 0 and "simulated inference failure" in row["error"]
    assert row.get("accuracy") is None  # not scored from empty answers


def test_compliant_needs_official_settings_and_a_real_backend():
    from tiers.runner.launch import is_compliant

    lg, ok = {"valid": True, "errors": []}, {"status": "ok"}
    base = RunPoint(model="m.onnx", dataset="mnist", backend="onnxruntime", scenario="Offline", profile="submission")
    assert is_compliant(base, lg, ok)
    assert not is_compliant(RunPoint(**{**base.to_dict(), "profile": "quick"}), lg, ok)
    assert not is_compliant(RunPoint(**{**base.to_dict(), "settings": {"min_duration_ms": 200}}), lg, ok)
    assert not is_compliant(RunPoint(**{**base.to_dict(), "backend": "null"}), lg, ok)
    assert not is_compliant(base, {"valid": False, "errors": []}, ok)
    assert not is_compliant(base, {"valid": True, "errors": ["error_runtime: Max test duration reached"]}, ok)
    assert not is_compliant(base, lg, {"status": "failed"})
