"""LoadGen's power_begin/power_end as epoch seconds, checked against a real LoadGen run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlperf_ext.logs import LoadGenResult, LogParseError, parse_run_dir
from mlperf_ext.power import loadgen_time, loadgen_window

REPO = Path(__file__).resolve().parents[2]


def test_loadgen_time_reads_utc():
    # 2026-12-01 22:02:21 UTC is 1796162541 (date -u -d '2026-12-01 22:02:21' +%s)
    assert loadgen_time("12-01-2026 22:02:21.547") == pytest.approx(1796162541.547, abs=1e-6)
    assert loadgen_time("07-20-2024 17:54:38.800") == pytest.approx(1721498078.8, abs=1e-6)


def test_loadgen_time_ignores_the_local_time_zone(monkeypatch):
    before = loadgen_time("12-01-2026 22:02:21.547")
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert loadgen_time("12-01-2026 22:02:21.547") == before
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("bad", ["2026-12-01 22:02:21.547", "12-01-2026", "", None])
def test_a_damaged_timestamp_is_a_log_error(bad):
    with pytest.raises(LogParseError, match="MM-DD-YYYY HH:MM:SS.mmm"):
        loadgen_time(bad)


def test_window_of_a_result():
    lg = LoadGenResult(scenario="Offline", mode="PerformanceOnly", loadgen_version="6.0.17", valid=True,
                       power_begin="12-01-2026 22:02:21.547", power_end="12-01-2026 22:02:22.708")
    begin, end = loadgen_window(lg)
    assert end - begin == pytest.approx(1.161, abs=1e-6)
    lg.power_end = None
    assert loadgen_window(lg) is None
    lg.power_end = "12-01-2026 22:02:20.000"
    with pytest.raises(LogParseError, match="precedes"):
        loadgen_window(lg)


CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
from tests.core.loadgen_null_run import main
t0 = time.time()
rc = main(["Offline", "performance", {out!r}, "--min-duration-ms", "300", "--sample-delay-us", "50"])
t1 = time.time()
open({stamp!r}, "w").write(json.dumps([rc, t0, t1]))
"""


def test_a_real_loadgen_run_writes_its_window_in_utc_on_the_system_clock(tmp_path):
    """One real LoadGen test in its own process, under a time zone 5:30 h off UTC."""
    out, stamp = tmp_path / "run", tmp_path / "stamp.json"
    out.mkdir()
    env = dict(os.environ, TZ="Asia/Kolkata")
    code = CHILD.format(repo=str(REPO), out=str(out), stamp=str(stamp))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(out), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rc, before, after = json.loads(stamp.read_text())
    assert rc == 0
    lg = parse_run_dir(out)
    begin, end = loadgen_window(lg)
    # LoadGen truncates to the millisecond, so begin may read up to 1 ms early
    assert before - 0.001 <= begin < end <= after
    # ...while test_datetime is local time (with a misleading "Z"): it sits 5:30 h from the window
    detail = [json.loads(line[len(":::MLLOG"):]) for line in (out / "mlperf_log_detail.txt").read_text().splitlines()]
    local = next(e["value"] for e in detail if e["key"] == "test_datetime")
    as_utc = datetime.strptime(local, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    assert abs(as_utc - begin - 5.5 * 3600) < 60
