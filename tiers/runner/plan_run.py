"""Running one checked point: its Server search, its child, and at most one corrected rerun.

This is everything a point needs except the store, so the same code runs in the driver (the local
executor) and on a remote worker (the Ray executor): each result is handed to `keep` as soon as it
exists, and the caller decides where it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlperf_ext.result import PointResult
from tiers.runner import layout
from tiers.runner.child import ChildTask
from tiers.runner.launch import complete, launch, refused, run_child
from tiers.runner.server_search import needs_search, search_target
from tiers.runner.validate import Plan

#: a Server rerun after the searched target missed the bound asks for this share of it
SERVER_RETRY_FACTOR = 0.75

#: what an executor hands each result to (the driver stores it), and where progress lines go
Keep = Callable[[PointResult], None]
Say = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    force_limits: bool = False  # the user lifted the resource and settings sanity limits
    retry_invalid: bool = True  # rerun once when the harness's own hint made a run INVALID


def corrected_hints(result: PointResult) -> tuple[dict, str] | None:
    """New hints when an INVALID run's cause is a hint the harness set itself, with the reason; else None."""
    if result.status != "invalid" or result.system is None or result.settings is None or result.point is None:
        return None
    auto, system, cond = result.settings.auto, result.system, result.system.conditions
    too_short = cond.get("min_duration_met") is False or cond.get("min_queries_met") is False
    early = cond.get("early_stopping_met") is False
    scenario = result.point.scenario
    if scenario == "Offline" and "offline_expected_qps" in auto and too_short:
        old = auto["offline_expected_qps"]
        new = 2 * max(old, system.throughput or 0.0)
        return {"offline_expected_qps": new}, f"offline_expected_qps {old:,.0f} made one query too small; now {new:,.0f}"
    key = {"SingleStream": "single_stream_expected_latency_ns", "MultiStream": "multi_stream_expected_latency_ns"}.get(
        scenario)
    if key and key in auto and (too_short or early):
        old = auto[key]
        new = max(old / 2, 1000.0)
        return {key: new}, f"{key} {old:,.0f} made LoadGen generate too few queries; now {new:,.0f}"
    if scenario == "Server" and "server_target_qps" in auto and (early or cond.get("perf_constraints_met") is False):
        old = auto["server_target_qps"]
        new = SERVER_RETRY_FACTOR * old
        return {"server_target_qps": new}, f"server_target_qps {old:,.0f} missed the latency bound; now {new:,.0f}"
    return None


def run_once(plan: Plan, runs: Path, task: ChildTask, options: RunOptions, say: Say,
             search=None) -> PointResult:
    """One child for the plan (after the Server search when it needs one) in a new run dir under `runs`."""
    if search is None and needs_search(plan):
        run_id, run_dir = layout.new_run_dir(runs, plan.key)
        search = search_target(plan, run_dir / layout.SEARCH_DIR, options.force_limits, say)
        if search.target_qps is None:  # no probe ran LoadGen: a target from the compute rate would be circular
            result = complete(plan, run_id, run_dir, PointResult(
                status="failed", error=f"the Server target search found no target ({search.note}); fix: see the "
                                       "probes' logs under the run's search/ directory, or give server_target_qps"),
                "", 0)
        else:
            task.hints.setdefault("server_target_qps", search.target_qps)
            child_result, status, rc = run_child(plan.point, run_dir, task)
            result = complete(plan, run_id, run_dir, child_result, status, rc)
    else:
        result = launch(plan, runs, task)
    result.search = search
    return result


def run_plan(plan: Plan, runs: Path, options: RunOptions, keep: Keep, say: Say) -> list[PointResult]:
    """Run one plan; `keep` gets each result as soon as it exists (the first before any rerun starts)."""
    for warning in plan.warnings:
        say(f"    warning: {warning}")
    if plan.refusal:
        result = refused(plan, plan.refusal)
        result.notes += plan.warnings
        keep(result)
        return [result]
    first = run_once(plan, runs, ChildTask(force_limits=options.force_limits, mode=dict(plan.mode_actions)), options,
                     say)
    first.notes += plan.warnings
    keep(first)
    fix = corrected_hints(first) if options.retry_invalid else None
    if not fix:
        return [first]
    hints, why = fix
    say(f"    INVALID because of the harness's own hint: {why}; running it once more")
    task = ChildTask(hints={**(first.settings.auto if first.settings else {}), **hints},
                     force_limits=options.force_limits, mode=dict(plan.mode_actions))
    again = run_once(plan, runs, task, options, say, search=first.search)
    again.retry_of = first.run_id
    again.notes += [*plan.warnings, f"rerun of {first.run_id}, INVALID with the harness's automatic hint ({why})"]
    keep(again)
    return [first, again]
