"""Where the runner's points run: here, one after the other (`local`), or as tasks on a Ray cluster
(`ray`, in tiers/runner/ray_executor.py). Either way each point is one child process per LoadGen test,
and only the driver writes the store: an executor hands every result to `keep` as it arrives."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from mlperf_ext.errors import ConfigError
from tiers.runner.plan_run import Keep, RunOptions, Say, run_plan
from tiers.runner.validate import Plan


class Executor(Protocol):
    name: str

    def run(self, plans: Sequence[Plan], runs: Path, options: RunOptions, keep: Keep, say: Say) -> None:
        """Run every plan; hand each result to `keep` as soon as it exists."""


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_text(started: float, durations: list[float], left: int) -> str:
    """Elapsed time and an ETA from the points measured so far."""
    elapsed = time.monotonic() - started
    if not durations:
        return f"{_clock(elapsed)} elapsed"
    return f"{_clock(elapsed)} elapsed, about {_clock(left * sum(durations) / len(durations))} left"


class LocalExecutor:
    """The points one after another on this machine: timing never shares the host with another point."""

    name = "local"

    def run(self, plans: Sequence[Plan], runs: Path, options: RunOptions, keep: Keep, say: Say) -> None:
        started, durations = time.monotonic(), []
        for number, plan in enumerate(plans, 1):
            say(f"[{number}/{len(plans)}] {plan.point.label()}: running "
                f"({progress_text(started, durations, len(plans) - number + 1)})")
            t0 = time.monotonic()
            run_plan(plan, runs, options, keep, say)
            durations.append(time.monotonic() - t0)


EXECUTORS = ("local", "ray")


def make_executor(name: str, address: str | None = None, points_per_host: int = 1) -> Executor:
    if name == "local":
        if address:
            raise ConfigError("--address is for the ray executor; fix: drop it or pass --executor ray")
        return LocalExecutor()
    if name == "ray":
        from tiers.runner.ray_executor import RayExecutor

        return RayExecutor(address, points_per_host)
    raise ConfigError(f"unknown executor '{name}'; fix: use one of {', '.join(EXECUTORS)}")
