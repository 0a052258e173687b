"""The Server target search on canned probes (no LoadGen): bisection, overload bounds, headroom, and a
search that finds no target failing the point instead of falling back to a target from compute."""

from __future__ import annotations

import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.result import LoadGenSettings, PointResult, SystemFigures
from tiers.runner import plan_run, server_search
from tiers.runner.plan_run import RunOptions, run_once
from tiers.runner.server_search import search_target
from tiers.runner.validate import PointValidator

BOUND_NS = 10_000_000  # 10 ms
COMPUTE_QPS = 10_000.0  # what the first probe (no hint) is offered: the compute rate it measures
CAPACITY_QPS = 6_000.0  # the canned system sustains this much


def canned_launch(asked: list):
    """A `launch` whose probes are VALID with p99 2 ms up to the capacity and overloaded above it."""

    def launch(plan, search_dir, task):
        target = task.hints.get("server_target_qps", COMPUTE_QPS)
        asked.append(target)
        ok = target <= CAPACITY_QPS
        system = SystemFigures(valid=ok, throughput=min(target, CAPACITY_QPS), lat_p99_ms=2.0 if ok else 50.0,
                               invalid_reasons=[] if ok else ["latency constraint not met"])
        settings = LoadGenSettings(requested={"server_target_qps": target, "server_target_latency_ns": BOUND_NS})
        return PointResult(status="ok" if ok else "invalid", system=system, settings=settings,
                           run_dir=str(search_dir / f"probe{len(asked)}"))

    return launch


@pytest.fixture()
def plan():
    return PointValidator().plan(RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Server",
                                          batch=1, timeout_s=60))


def test_search_bisects_to_the_highest_accepted_target(plan, tmp_path, monkeypatch):
    asked: list = []
    monkeypatch.setattr(server_search, "launch", canned_launch(asked))
    found = search_target(plan, tmp_path)
    # probe 1 at 10,000 completes 6,000: overloaded, so the bound drops to 6,600; 80 % of it (5,280) is
    # accepted; then bisection between 5,280 and 6,600 until within 3 %
    assert asked[0] == COMPUTE_QPS and asked[1] == pytest.approx(0.8 * 1.1 * CAPACITY_QPS)
    assert found.target_qps == max(t for t in asked if t <= CAPACITY_QPS)
    assert CAPACITY_QPS * (1 - server_search.TOLERANCE) <= found.target_qps <= CAPACITY_QPS
    assert [p["accepted"] for p in found.trace] == [t <= CAPACITY_QPS for t in asked]
    assert len(found.trace) <= server_search.MAX_PROBES
    assert "converged: within" in found.note and "held when probed again" in found.note
    assert asked[-1] == found.target_qps and asked.count(found.target_qps) == 2 and found.trace[-1]["repeat"]


def test_a_target_that_does_not_hold_when_repeated_is_not_used(plan, tmp_path, monkeypatch):
    asked: list = []
    launch = canned_launch(asked)

    def flaky(plan, search_dir, task):  # the capacity's edge: every target above 5,800 passes only the first time
        r = launch(plan, search_dir, task)
        target = asked[-1]
        if target > 5_800 and asked.count(target) > 1:
            r.status, r.system.valid, r.system.lat_p99_ms = "invalid", False, 50.0
        return r

    monkeypatch.setattr(server_search, "launch", flaky)
    found = search_target(plan, tmp_path)
    assert found.target_qps <= 5_800
    assert [p["target_qps"] for p in found.trace if p.get("repeat") and not p["accepted"]]  # one did not hold


def test_a_search_cut_off_by_the_probe_limit_names_its_bracket(plan, tmp_path, monkeypatch):
    asked: list = []
    monkeypatch.setattr(server_search, "launch", canned_launch(asked))
    monkeypatch.setattr(server_search, "MAX_PROBES", 3)
    found = search_target(plan, tmp_path)
    assert len(found.trace) == 3
    low = max(t for t in asked if t <= CAPACITY_QPS)
    high = server_search.OVERLOAD_MARGIN * CAPACITY_QPS  # what the first, overloaded probe completed, plus noise
    assert found.target_qps == low and asked[1:] == [0.8 * high, low]
    assert "the target was not probed again" in found.note
    assert f"not converged: stopped at the 3-probe limit in the bracket {low:,.0f}..{high:,.0f} QPS" in found.note


def test_a_valid_probe_too_close_to_the_bound_is_not_accepted(plan, tmp_path, monkeypatch):
    asked: list = []
    launch = canned_launch(asked)

    def tight(plan, search_dir, task):  # VALID everywhere, but p99 at 90 % of the bound above 3,000 QPS
        r = launch(plan, search_dir, task)
        target = asked[-1]
        r.status, r.system.valid, r.system.invalid_reasons = "ok", True, []
        r.system.lat_p99_ms = 9.0 if target > 3_000 else 2.0
        r.system.throughput = target
        return r

    monkeypatch.setattr(server_search, "launch", tight)
    found = search_target(plan, tmp_path)
    assert not found.trace[0]["accepted"] and found.trace[0]["valid"]
    assert found.target_qps <= 3_000


def test_a_device_too_slow_for_the_duration_stops_the_search_instead_of_bisecting_to_nothing(plan, tmp_path,
                                                                                           monkeypatch):
    asked: list = []

    def slow(plan, search_dir, task):  # within the bound everywhere, but too few queries below 200 QPS
        target = task.hints.get("server_target_qps", 400.0)
        asked.append(target)
        reasons = ["early-stopping condition not met"] + (["minimum query/sample count not met"] if target < 200 else [])
        system = SystemFigures(valid=False, throughput=target, lat_p99_ms=7.0, invalid_reasons=reasons)
        settings = LoadGenSettings(requested={"server_target_qps": target, "server_target_latency_ns": BOUND_NS})
        return PointResult(status="invalid", system=system, settings=settings)

    monkeypatch.setattr(server_search, "launch", slow)
    found = search_target(plan, tmp_path)
    assert found.target_qps is None and "min_duration_ms" in found.note
    assert min(asked) >= 100  # stopped at the first count shortfall, not bisected towards 0 QPS


def test_a_search_without_a_target_fails_the_point_and_runs_no_main_child(plan, tmp_path, monkeypatch):
    def broken(plan, search_dir, task):  # the probe's child died before LoadGen ran
        return PointResult(status="crashed", error="child crashed (killed by signal SIGSEGV)")

    ran: list = []
    monkeypatch.setattr(server_search, "launch", broken)
    monkeypatch.setattr(plan_run, "run_child", lambda *a, **k: ran.append(a) or (None, "crashed", -11))
    result = run_once(plan, tmp_path, plan_run.ChildTask(), RunOptions(), lambda _m: None)
    assert ran == []  # no main run at a target the harness would have made up from compute
    assert result.status == "failed"
    assert "Server target search found no target" in result.error and "fix:" in result.error
    assert result.search is not None and result.search.target_qps is None and len(result.search.trace) == 1


@pytest.mark.parametrize(("first_s", "later_timeout"), [(2.0, 60.0), (30.0, 150.0), (200.0, 600.0)])
def test_later_probes_are_timed_out_by_what_the_first_probe_took(tmp_path, monkeypatch, first_s, later_timeout):
    """A hung probe costs a minute of the search (or 5x the first probe), not the point's whole timeout; the
    first probe, with nothing to go by, has the point's."""
    plan = PointValidator().plan(RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Server",
                                          batch=1, timeout_s=600))
    asked: list = []
    timeouts: list = []
    inner = canned_launch(asked)

    def timed(probe_plan, search_dir, task):
        timeouts.append(probe_plan.point.timeout_s)
        result = inner(probe_plan, search_dir, task)
        result.elapsed_s = first_s if len(asked) == 1 else 1.0
        return result

    monkeypatch.setattr(server_search, "launch", timed)
    found = search_target(plan, tmp_path)
    assert timeouts[0] == 600 and set(timeouts[1:]) == {later_timeout} and len(timeouts) > 2
    assert found.trace[0]["elapsed_s"] == first_s
    assert plan.point.timeout_s == 600  # the point itself runs with its own timeout
