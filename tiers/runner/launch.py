"""Runs a point in a child process with a watchdog and turns whatever happened into one PointResult.

One child per point because LoadGen runs one test per process; the watchdog because a sample that is
never completed blocks LoadGen forever. A crash or a hang becomes a result carrying the tail of the
child's stderr (for a hang: every thread's stack, dumped on the watchdog's request), and the caller goes on with
the next point. The child dies with its parent: it asks
the kernel for SIGKILL when the process that started it goes away (PR_SET_PDEATHSIG), so a killed
driver never leaves an orphan timing points on the same machine.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from mlperf_ext.config import RunPoint
from mlperf_ext.host import host_metadata
from mlperf_ext.result import PointResult
from tiers.runner import layout
from tiers.runner.child import STACK_DUMP_SIGNAL, ChildTask
from tiers.runner.validate import Plan

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STDERR_TAIL_CHARS = 2000
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STACK_DUMP_WAIT_S = 1.0


def _tail(path: Path, chars: int = STDERR_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:].strip()


def _die_with_parent(parent: int):
    """preexec_fn: SIGKILL this child when the parent dies; exit at once if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return arm


def _dump_stacks(child: subprocess.Popen) -> None:
    """Ask a hung child for every thread's stack (it wrote them to stderr.txt, whose tail the row carries)."""
    try:
        os.kill(child.pid, STACK_DUMP_SIGNAL)
        child.wait(timeout=STACK_DUMP_WAIT_S)  # faulthandler writes at once; the child does not exit on it
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def run_child(point: RunPoint, run_dir: Path, task: ChildTask | None = None) -> tuple[PointResult | None, str, int | None]:
    """Start `python -m tiers.runner.child RUN_DIR`; returns (result or None, status if none, exit code)."""
    (run_dir / layout.POINT_FILE).write_text(json.dumps(point.to_dict(), indent=1, default=str))
    (task or ChildTask()).write(run_dir)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    with open(run_dir / layout.STDOUT_FILE, "wb") as out, open(run_dir / layout.STDERR_FILE, "wb") as err:
        child = subprocess.Popen([sys.executable, "-m", "tiers.runner.child", str(run_dir)], stdout=out, stderr=err,
                                 cwd=run_dir, env=env, start_new_session=True,
                                 preexec_fn=_die_with_parent(os.getpid()))
        try:
            rc = child.wait(timeout=point.timeout_s)
        except subprocess.TimeoutExpired:
            _dump_stacks(child)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return None, "timeout", None
        except BaseException:  # Ctrl-C or SIGTERM: the child has its own session, so take it down here
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
    return read_result(run_dir), "crashed", rc


def read_result(run_dir: Path) -> PointResult | None:
    path = run_dir / layout.RESULT_FILE
    if not path.exists():
        return None
    return PointResult.from_dict(json.loads(path.read_text()))


def describe_exit(rc: int | None) -> str:
    if rc is None:
        return "no exit code"
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def complete(plan: Plan, run_id: str, run_dir: Path | None, result: PointResult | None, status: str,
             rc: int | None) -> PointResult:
    """The stored record: the child's result (or how the child died) with the point's identity."""
    if result is None:
        what = "did not finish within its timeout" if status == "timeout" else "crashed"
        tail = _tail(run_dir / layout.STDERR_FILE)
        result = PointResult(status=status, error=f"child {what} ({describe_exit(rc)})" + (f": {tail}" if tail else ""))
    elif result.status == "failed" and rc not in (0, None) and result.system is None:
        tail = _tail(run_dir / layout.STDERR_FILE)
        result.error = f"{result.error}" + (f"\n{tail}" if tail else "")
    result.point, result.point_key, result.run_id = plan.point, plan.key, run_id
    result.run_dir = None if run_dir is None else str(run_dir)
    result.variant, result.dataset_sha256, result.versions = plan.variant, plan.dataset_sha256, dict(plan.versions)
    result.micro = plan.micro
    result.host = host_metadata()
    result.finished_at = result.finished_at or datetime.now(timezone.utc).isoformat()
    result.check_integrity()
    return result


def launch(plan: Plan, run_parent: Path, task: ChildTask | None = None) -> PointResult:
    """Run the plan's point in a fresh run directory under `run_parent`."""
    run_id, run_dir = layout.new_run_dir(run_parent, plan.key)
    result, status, rc = run_child(plan.point, run_dir, task)
    return complete(plan, run_id, run_dir, result, status, rc)


def refused(plan: Plan, reason: str) -> PointResult:
    """A result for a point refused before any child ran (a variant the backend cannot run): nothing ran,
    so there is no run directory; the row holds the whole story."""
    return complete(plan, layout.new_run_id(plan.key), None, PointResult(status="refused", error=reason), "", 0)
