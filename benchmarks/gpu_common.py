"""What the GPU check's parts share: its report (log + JSON), its time budget, running a command, and the
figures of a stored row (benchmarks/gpu_check.py and benchmarks/gpu_torch.py both use them)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Report:
    """Everything said goes to stdout and the log; every figure also to the JSON, rewritten after each step."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.log_path, self.json_path = out / "gpu_check.log", out / "gpu_check.json"
        self._log = self.log_path.open("w")
        self.data: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sections": {}, "skipped": []}

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self._log.write(text + "\n")
        self._log.flush()

    def put(self, section: str, key: str, value) -> None:
        self.data["sections"].setdefault(section, {})[key] = value
        self.save()

    def skip(self, what: str, why: str) -> None:
        self.say(f"skipped: {what}: {why}")
        self.data["skipped"].append({"what": what, "why": why})
        self.save()

    def save(self) -> None:
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        tmp = self.json_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.json_path)


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left() >= seconds


def run_cmd(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str]:
    """(exit, stdout + stderr as text); at the timeout the command's whole process group is killed (a point's
    own child too, so a hung run leaves nothing on the GPU) and the exit is 124 with what it had printed."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                                start_new_session=True)
    except FileNotFoundError as exc:
        return 127, str(exc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return 124, f"{out}{err}\n(killed after {timeout:.0f} s)"
    return proc.returncode, out + err


def row_figures(result) -> dict:
    """The figures of one stored result that this check reports."""
    if result is None:
        return {"status": "no row"}
    sys_f, comp, rt, pw = result.system, result.compute, result.runtime, result.power
    settings = (rt.settings if rt else {}) or {}
    return {
        "status": result.status, "error": result.error, "flags": result.flags,
        "sys_throughput": sys_f.throughput if sys_f else None, "sys_valid": sys_f.valid if sys_f else None,
        "sys_lat_mean_ms": sys_f.lat_mean_ms if sys_f else None, "sys_lat_p90_ms": sys_f.lat_p90_ms if sys_f else None,
        "sys_lat_p99_ms": sys_f.lat_p99_ms if sys_f else None,
        "compute_throughput": comp.throughput if comp else None,
        "compute_lat_mean_ms": comp.lat_mean_ms if comp else None,
        "compute_lat_p50_ms": comp.lat_p50_ms if comp else None,
        "compute_drift": comp.drift if comp else None,
        "precision": rt.precision if rt else None, "compute_dtype": rt.compute_dtype if rt else None,
        "engine_cache": settings.get("engine_cache"), "tf32_allowed": settings.get("tf32_allowed"),
        "gpu": settings.get("gpu"), "tensorrt": settings.get("tensorrt"),
        "notes": (rt.notes if rt else []) + list(result.notes or []),
        "search_target_qps": result.search.target_qps if result.search else None,
        "power_samples_per_j": pw.samples_per_j if pw else None, "power_avg_w": pw.avg_w if pw else None,
        "power_idle_w": pw.idle_w if pw else None, "power_note": pw.note if pw else None,
        "batch": result.point.batch if result.point else None,
        "streams": result.point.streams if result.point else None,
    }


def _fmt(value, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)
