"""Level 3: deployment sweeps. A spec's grids expand into points (model variant x backend x scenario x
deployment knobs); the point runner checks them all, then runs each one not stored yet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from mlperf_ext.config import RunPoint
from mlperf_ext.result import PointResult
from tiers.runner.runner import PointRunner, RunnerOptions


def model_resolver(models_dir: Path, say: Callable[[str], None] | None = None):
    """`resolve(ref) -> (onnx path, display name, default dataset)`; zoo names are built (cached)."""

    def resolve(ref: str):
        path = Path(ref)
        if path.suffix == ".onnx" or path.exists() or "/" in ref:
            return str(path.resolve()) if path.exists() else ref, path.stem, None
        from mlperf_ext.zoo import registry

        info = registry.model_info(ref)  # ConfigError listing the zoo for an unknown name
        built = registry.build([ref], models_dir, progress=say)[0]
        return str(built), info.name, info.dataset

    return resolve


#: `mlperf-ext run`'s exit statuses (the README lists them); 2 is bad input, found before anything is stored
EXIT_OK = 0  # every point ended ok, or was refused, or was invalid, beside at least one ok point
EXIT_SOME_FAILED = 1  # a point failed, crashed or timed out; others ended ok
EXIT_NOTHING_MEASURED = 3  # no point of the invocation ended ok (each was refused, invalid, failed...)


def exit_status(outcomes: Sequence[str | None]) -> int:
    """The exit status of a run whose points' latest statuses are `outcomes` (see EXIT_*)."""
    if outcomes and "ok" not in outcomes:
        return EXIT_NOTHING_MEASURED
    if any(status in ("failed", "crashed", "timeout") for status in outcomes):
        return EXIT_SOME_FAILED
    return EXIT_OK


def run_points(points: Sequence[RunPoint], workdir: Path, force: bool = False, console: Console | None = None,
               force_limits: bool = False, executor=None, outcomes: list | None = None) -> list[PointResult]:
    """Run every point not already stored; returns the results stored by this call. `outcomes`, when
    given, receives each point's latest status (run now or stored before), for `exit_status`."""
    runner = PointRunner(workdir, console, RunnerOptions(force=force, force_limits=force_limits), executor)
    results = runner.run(points)
    if outcomes is not None:
        outcomes.extend(runner.outcomes)
    return results


def dry_run(points: Sequence[RunPoint], workdir: Path, console: Console | None = None,
            force: bool = False, force_limits: bool = False) -> list[tuple[RunPoint, str, str | None]]:
    """Each point with what a run would do with it (stored / to run / refused) and a refusal's reason,
    running nothing."""
    runner = PointRunner(workdir, console, RunnerOptions(force=force, force_limits=force_limits))
    plans = runner.plan(points)
    return [(plan.point, state, plan.refusal if state == "refused" else None)
            for plan, state in zip(plans, runner.states(plans))]
