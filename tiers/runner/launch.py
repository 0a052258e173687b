"""Runs a point in a child process with a watchdog and turns whatever happened into one result row.

One child per point because LoadGen runs one test per process; the watchdog because a sample that is
never completed blocks LoadGen forever. A crash or a hang becomes a row carrying the tail of the
child's stderr, and the caller goes on with the next point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from mlperf_ext.config import RunPoint, file_sha256
from mlperf_ext.host import host_metadata
from mlperf_ext.loadgen import LOADGEN_VERSION

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STDERR_TAIL_CHARS = 2000


def _tail(path: Path, chars: int = STDERR_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:].strip()


def new_run_dir(workdir: Path, point_key: str) -> tuple[str, Path]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    run_id = f"{stamp}-{point_key[:10]}"
    run_dir = (workdir / "runs" / run_id).resolve()  # the child runs in it, so no relative path
    run_dir.mkdir(parents=True)
    return run_id, run_dir


def run_child(point: RunPoint, run_dir: Path) -> tuple[dict | None, str, int | None]:
    """Start `python -m tiers.runner.child RUN_DIR`; returns (result or None, status if no result, rc)."""
    (run_dir / "point.json").write_text(json.dumps(point.to_dict(), indent=1, default=str))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    with open(run_dir / "stdout.txt", "wb") as out, open(run_dir / "stderr.txt", "wb") as err:
        child = subprocess.Popen([sys.executable, "-m", "tiers.runner.child", str(run_dir)], stdout=out,
                                 stderr=err, cwd=run_dir, env=env, start_new_session=True)
        try:
            rc = child.wait(timeout=point.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return None, "timeout", None
        except BaseException:  # Ctrl-C reaches only this process (the child has its own session)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
    result_path = run_dir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text()), "", rc
    return None, "crashed", rc


def describe_exit(rc: int | None) -> str:
    if rc is None:
        return "no exit code"
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def build_row(point: RunPoint, point_key: str, run_id: str, run_dir: Path, result: dict | None,
              status: str, rc: int | None, variant: dict | None) -> dict:
    """One results-store row from the child's result (or from how the child died)."""
    variant = variant or {}
    model = Path(point.model)
    row = {
        "point_key": point_key, "run_id": run_id, "run_dir": str(run_dir),
        "model_name": point.model_name, "model_path": str(model),
        "model_sha256": file_sha256(model) if model.is_file() else None,
        "family": variant.get("family"), "precision": variant.get("precision"),
        "pruning": variant.get("pruning"),
        "dataset": point.dataset, "backend": point.backend, "device": point.device,
        "platform": point.platform, "scenario": point.scenario, "mode": point.mode,
        "profile": point.profile, "batch": point.batch, "threads": point.threads,
        "streams": point.streams, "operating_mode": point.operating_mode,
        "loadgen_version": LOADGEN_VERSION, "host_json": host_metadata(),
        "config_json": point.to_dict(), "compliant": 0,
    }
    if result is None:
        what = "did not finish within its timeout" if status == "timeout" else "crashed"
        tail = _tail(run_dir / "stderr.txt")
        row.update(status=status, error=f"child {what} ({describe_exit(rc)})" + (f": {tail}" if tail else ""),
                   finished_at=datetime.now(timezone.utc).isoformat())
        return row
    row.update(status=result["status"], error=result.get("error"),
               started_at=result.get("started_at"), finished_at=result.get("finished_at"))
    if result["status"] == "failed" and rc not in (0, None) and "loadgen" not in result:
        tail = _tail(run_dir / "stderr.txt")
        row["error"] = f"{result.get('error')}" + (f"\n{tail}" if tail else "")
    lg = result.get("loadgen")
    if lg:
        lat = lg.get("latency_ns", {})
        row.update(
            valid=None if lg.get("valid") is None else int(lg["valid"]),
            metric_name=lg.get("metric_name"), metric_value=lg.get("metric_value"),
            sys_throughput=lg.get("throughput"),
            sys_lat_mean_ms=_ms(lat.get("mean")), sys_lat_p50_ms=_ms(lat.get("p50")),
            sys_lat_p90_ms=_ms(lat.get("p90")), sys_lat_p99_ms=_ms(lat.get("p99")),
            settings_json={"effective": lg.get("effective"), "requested": result.get("settings"),
                           "auto": result.get("auto_settings")},
        )
        row["compliant"] = int(is_compliant(point, lg, result))
    compute = result.get("compute")
    if compute:
        lat = compute["latency_ms"]
        row.update(compute_batch=compute["batch"], compute_lat_mean_ms=lat["mean"],
                   compute_lat_p50_ms=lat["p50"], compute_lat_p90_ms=lat["p90"],
                   compute_lat_p99_ms=lat["p99"], compute_throughput=compute["throughput"])
    acc = result.get("accuracy")
    if acc:
        row.update(accuracy=acc["accuracy"], accuracy_good=acc["good"], accuracy_total=acc["total"])
    if result.get("runtime"):
        row["runtime_json"] = result["runtime"]
    row["callback_errors"] = result.get("callback_errors")
    return row


def is_compliant(point: RunPoint, lg: dict, result: dict) -> bool:
    """Only a VALID, error-free run of a real backend under LoadGen's official settings: the submission
    profile with no TestSettings overrides (a user.conf may still set what mlperf.conf leaves to it)."""
    return (point.profile == "submission" and not point.settings and point.backend != "null"
            and bool(lg.get("valid")) and not lg.get("errors") and result["status"] == "ok")


def _ms(ns) -> float | None:
    return None if ns is None else float(ns) / 1e6


def launch(point: RunPoint, workdir: Path, point_key: str, variant: dict | None = None) -> dict:
    run_id, run_dir = new_run_dir(workdir, point_key)
    result, status, rc = run_child(point, run_dir)
    return build_row(point, point_key, run_id, run_dir, result, status, rc, variant)


def refused_row(point: RunPoint, workdir: Path, point_key: str, reason: str, variant: dict | None) -> dict:
    """A row for a point refused before any child ran (e.g. a variant the backend cannot run)."""
    run_id, run_dir = new_run_dir(workdir, point_key)
    (run_dir / "point.json").write_text(json.dumps(point.to_dict(), indent=1, default=str))
    row = build_row(point, point_key, run_id, run_dir, {"status": "refused", "error": reason}, "", 0, variant)
    row["finished_at"] = datetime.now(timezone.utc).isoformat()
    return row
