"""The point runner: the one way points are run, by every tier and by the audit.

`PointRunner.run(points)` checks every point before anything runs (bad input stops everything with one
line), takes the workdir's lock (a second driver on the same workdir is refused), stores what a dead
driver's children left behind, then hands each point that is not stored yet to its executor (here, or
on a Ray cluster), which runs it in a child process of its own (`plan_run`); the driver appends one row
per run to the results store as each arrives. On the way

- the Server target is searched when the user set none (`server_search`);
- an INVALID point is rerun once with a corrected hint when the harness's own automatic hint was the
  cause, and both runs are recorded;
- a refusal (a variant the backend cannot run) is stored once: it cannot change until the key does;
- SIGTERM is treated like Ctrl-C: the running child is killed with its process group, stored rows stay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError, MlperfExtError
from mlperf_ext.result import PointResult
from mlperf_ext.store import ResultsStore
from tiers.runner import layout
from tiers.runner.executors import Executor, LocalExecutor
from tiers.runner.launch import complete, read_result
from tiers.runner.plan_run import RunOptions
from tiers.runner.progress import point_progress
from tiers.runner.validate import Plan, PointValidator

#: statuses of a latest row that make a re-run skip the point (others are retried)
SETTLED = ("ok", "refused")


@dataclass(frozen=True)
class RunnerOptions:
    force: bool = False  # re-run points whose latest row is ok or refused
    force_limits: bool = False  # lift the resource and settings sanity limits
    retry_invalid: bool = True  # rerun once when the harness's own hint made a run INVALID


def check_workdir_path(workdir: Path) -> None:
    """The part of check_workdir that writes nothing (for validation and --dry-run)."""
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file, not a directory; fix: name a directory (it is created if "
                          "missing)")


def check_workdir(workdir: Path) -> None:
    """The workdir must be a directory we can write (or one we can create)."""
    check_workdir_path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create workdir {workdir} ({exc.strerror or exc}); fix: pass a writable --workdir") from exc
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise ConfigError(f"workdir {workdir} is read-only; fix: pass a writable --workdir")


class WorkdirLock:
    """An exclusive lock on `<workdir>/.lock`, released when the holder exits (even if it is killed)."""

    def __init__(self, workdir: Path):
        self.path = Path(workdir) / layout.LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> WorkdirLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.path} ({exc.strerror or exc}); fix: pass a writable "
                              "--workdir") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"workdir {self.path.parent} is in use by another mlperf-ext run (pid {holder}); fix: "
                              "wait for it to finish, or pass another --workdir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread, so it cleans up as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class PointRunner:
    """Runs points into one workdir's store (see the module docstring)."""

    def __init__(self, workdir: Path, console: Console | None = None, options: RunnerOptions = RunnerOptions(),
                 executor: Executor | None = None):
        self.workdir = Path(workdir)
        self.console = console or Console(stderr=True)
        self.options = options
        self.executor = executor or LocalExecutor()
        self.validator = PointValidator(force_limits=options.force_limits)
        self.outcomes: list[str | None] = []

    # -- before anything runs --------------------------------------------------------------------
    def plan(self, points: Sequence[RunPoint]) -> list[Plan]:
        check_workdir_path(self.workdir)
        return [self.validator.plan(p) for p in points]

    def states(self, plans: Sequence[Plan]) -> list[str]:
        """What a run would do with each plan: 'stored' (skipped), 'refused' or 'to run'."""
        path = layout.store_path(self.workdir)
        store = ResultsStore(path) if path.exists() else None
        out = []
        for plan in plans:
            latest = store.latest_status(plan.key) if store else None
            if latest in SETTLED and not self.options.force:
                out.append(f"stored ({latest})")
            else:
                out.append("refused" if plan.refusal else "to run")
        return out

    # -- running -----------------------------------------------------------------------------------
    def run(self, points: Sequence[RunPoint]) -> list[PointResult]:
        """Run every point not already stored; returns the results stored by this call. Afterwards
        `outcomes` holds each point's latest status, run now or stored before (None: no row)."""
        plans = self.plan(points)
        check_workdir(self.workdir)
        stored: list[PointResult] = []
        with WorkdirLock(self.workdir), sigterm_as_interrupt():
            store = ResultsStore(layout.store_path(self.workdir))
            self.recover(store)
            todo = [p for p in plans if self.options.force or store.latest_status(p.key) not in SETTLED]
            for plan in plans:
                if plan not in todo:
                    self.say(f"{plan.point.label()}: stored ({store.latest_status(plan.key)}), skipped "
                             "(use --force to re-run)")

            def keep(result: PointResult) -> None:
                store.append(result)  # each result in its own transaction, as soon as it exists
                stored.append(result)
                if result.retry_of is None:  # a corrected rerun finishes the same point
                    advance()
                self.say(f"[{len(stored)}] {summary_line(result)}")
                if result.run_dir:
                    self.say(f"    run {result.run_id}: {result.run_dir}")

            run_options = RunOptions(force_limits=self.options.force_limits, retry_invalid=self.options.retry_invalid)
            with point_progress(self.console, len(todo)) as advance:
                self.executor.run(todo, layout.runs_dir(self.workdir), run_options, keep, self.say)
            self.outcomes = [store.latest_status(plan.key) for plan in plans]
        return stored

    # -- what a dead driver left ---------------------------------------------------------------
    def recover(self, store: ResultsStore) -> None:
        """Store finished results that no row holds (their driver died first); mark the rest, with why."""
        runs = layout.runs_dir(self.workdir)
        if not runs.is_dir():
            return
        known = store.run_ids()
        for run_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
            if run_dir.name in known or (run_dir / layout.DISCARDED_MARK).exists():
                continue
            reason = self._recover_one(run_dir, store)
            if reason:
                (run_dir / layout.DISCARDED_MARK).write_text(reason + "\n")
                self.say(f"run dir {run_dir} was not stored: {reason}")

    def _recover_one(self, run_dir: Path, store: ResultsStore) -> str | None:
        result = read_result(run_dir)
        if result is None:
            return "its driver stopped before the child finished, so there is no result (the point runs again)"
        try:
            point = RunPoint.from_dict(json.loads((run_dir / layout.POINT_FILE).read_text()))
            plan = self.validator.plan(point)
        except (OSError, ValueError, TypeError, MlperfExtError) as exc:
            return f"its point can no longer be checked ({exc})"
        recovered = complete(plan, run_dir.name, run_dir, result, "", None)
        recovered.notes.append("stored when the next driver started: the child finished after its driver died")
        store.append(recovered)
        self.say(f"recovered run {run_dir.name} ({recovered.status}): stored")
        return None

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, soft_wrap=True, highlight=False)


def summary_line(result: PointResult) -> str:
    """One line per stored result: the point, its verdict, and its main figures."""
    from mlperf_ext.tables import verdict

    point = result.point
    head = point.label() if point else result.point_key
    if result.status not in ("ok", "invalid"):
        return f"{head}: {result.status.upper()} {(result.error or '-').splitlines()[0][:160]}"
    parts = [f"{head}: {verdict(result)}"]
    if result.accuracy and result.accuracy.value is not None:
        parts.append(f"{result.accuracy.metric or 'acc'} {100 * result.accuracy.value:.2f}%")
    system, compute = result.system, result.compute
    tokens = result.tokens
    if tokens and tokens.tokens_per_s is not None:
        ttft = "" if tokens.ttft_p99_ms is None else f"TTFT p99 {tokens.ttft_p99_ms:.2f} ms, TPOT p99 {tokens.tpot_p99_ms:.3f} ms, "
        parts.append(f"{ttft}{tokens.tokens_per_s:,.0f} tokens/s")
    if system and system.throughput is not None:
        p90 = "-" if system.lat_p90_ms is None else f"{system.lat_p90_ms:.3f}"
        parts.append(f"system {system.throughput:,.0f}/s p90 {p90} ms")
    if compute and compute.throughput is not None:
        parts.append(f"compute {compute.throughput:,.0f}/s {compute.lat_mean_ms:.3f} ms/batch")
    if result.search and result.search.target_qps:
        parts.append(f"searched target {result.search.target_qps:,.0f} QPS")
    if result.status == "invalid":
        parts.append(f"INVALID: {result.error}")
    parts.extend(f"FLAG {text}" for text in result.flags.values())
    return " | ".join(parts)
