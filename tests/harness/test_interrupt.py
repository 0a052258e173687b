"""Killing a sweep mid-way loses at most the point in flight; re-running resumes where it stopped."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from mlperf_ext.store import ResultsStore
from tiers.runner.launch import PROJECT_ROOT


def stored_rows(db) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_sweep_keeps_finished_points_and_resumes(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: [none.onnx]\ndataset: mnist\nbackend: null\n"
                    "scenarios: [SingleStream, MultiStream, Server, Offline]\n"
                    "settings: {min_duration_ms: 300, server_target_qps: 20000}\n")
    work = tmp_path / "work"
    db = work / "results.sqlite"
    cmd = [sys.executable, "-m", "mlperf_ext.cli", "run", str(spec), "--workdir", str(work)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    sweep = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while stored_rows(db) < 1 and time.monotonic() < deadline and sweep.poll() is None:
        time.sleep(0.05)
    sweep.send_signal(signal.SIGKILL)  # no chance to clean up: the worst case
    sweep.wait()
    kept = stored_rows(db)
    assert 1 <= kept < 4
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert all(r["status"] == "ok" for r in ResultsStore(db).rows())

    resumed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("stored (ok), skipped") == kept
    rows = ResultsStore(db).rows()
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
