"""The Server target, found the way submitters find it: short LoadGen runs bisecting `target_qps`.

A Server run's throughput is the target it was asked to sustain, so a target derived from the compute
rate would make the result the harness's own claim. Without a target from the user, the runner asks
short probe runs (each a child with one LoadGen Server test; performance mode; the point's deployment)
which targets are VALID:

1. the first probe runs at the compute throughput it measures itself (nothing sustains more, since
   compute is timed at the largest batch over all streams at once); VALID there ends the search;
2. an INVALID probe that completed fewer samples/s than it was offered was overloaded: what it
   completed is about what the system sustains, so no target above `OVERLOAD_MARGIN` times that can be
   VALID, and the upper bound drops to it;
3. below the upper bound the search tries 80 % of it, then halves until a probe is VALID, then bisects
   between the highest accepted and the lowest rejected target until they are within `TOLERANCE` of each
   other; the highest accepted target is then probed once more, and when it does not hold the bracket
   closes below it and the search goes on; after `MAX_PROBES` probes the note names the bracket it ended
   in.

A probe counts for the search when LoadGen says VALID *and* its tail latency leaves `LATENCY_HEADROOM` of
the bound (for a run timed per token, LoadGen's bounds: the p99 time to first token and time per output token): near saturation latency climbs steeply, and a probe that only just passed is often INVALID
when repeated (on 2 cores, two runs at the same target near the edge disagree about as often as they
agree), so the headroom costs a few percent of target, and the repeat of the chosen target buys a run
that holds. The point then
runs at the highest accepted target. Every probe (target, LoadGen's verdict, reasons, p99, whether the
search accepted it) is kept in the row (`search_trace`) and its logs under `runs/<id>/search/`. A probe after the
first that runs `PROBE_TIMEOUT_FACTOR` times as long as the first (at least `PROBE_TIMEOUT_FLOOR_S`) is hung: it is
stopped there, with its threads' stacks in its row, and counts as a rejected target.

A slow device can fail a probe for a reason no lower target mends: it met the latency bound but issued fewer
queries than LoadGen's minimum in the profile's duration (`too_few_queries`). Lowering the target only issues
fewer, so before any probe is accepted such a probe ends the search without a target, and the point fails with
the fix (a longer min_duration_ms), instead of bisecting towards 0 QPS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from mlperf_ext.result import PointResult, ServerSearch
from tiers.runner.child import ChildTask, user_set
from tiers.runner.launch import launch
from tiers.runner.validate import Plan

MAX_PROBES = 12
TOLERANCE = 0.03  # stop when (upper bound - highest accepted) / upper bound is at most this
OVERLOAD_MARGIN = 1.1  # an overloaded probe's completed rate, plus noise, bounds every VALID target
OVERLOADED = 0.95  # a probe that completed less than this share of its target could not keep up
LATENCY_HEADROOM = 0.8  # an accepted probe's target-percentile latency is at most this share of the bound
#: a probe after the first is a hung one once it runs this many times as long as the first took (which ran at the
#: compute rate, the most load the search offers), and never less than PROBE_TIMEOUT_FLOOR_S: a hung probe then
#: costs a minute of the search, not the point's whole timeout (a demo run once lost 10 minutes to one)
PROBE_TIMEOUT_FACTOR = 5.0
PROBE_TIMEOUT_FLOOR_S = 60.0


def needs_search(plan: Plan) -> bool:
    point = plan.point
    return (point.scenario == "Server" and point.mode in ("performance", "submission")
            and not user_set(point, "server_target_qps"))


def _trace_entry(result: PointResult, asked: float | None) -> dict:
    system, requested = result.system, (result.settings.requested if result.settings else {})
    bound_ns = requested.get("server_target_latency_ns")
    p99 = None if system is None else system.lat_p99_ms
    tokens = result.tokens
    if requested.get("use_token_latencies") and tokens is not None:
        # LoadGen bounds a token run's TTFT and TPOT, not a sample's whole latency (loadgen/results.cc)
        tails = ((tokens.ttft_p99_ms, requested.get("ttft_latency")), (tokens.tpot_p99_ms, requested.get("tpot_latency")))
    else:
        tails = ((p99, bound_ns),)
    accepted = bool(system and system.valid and all(
        have is not None and bound and have <= LATENCY_HEADROOM * bound / 1e6 for have, bound in tails))
    return {"target_qps": requested.get("server_target_qps", asked), "status": result.status,
            "valid": None if system is None else system.valid, "accepted": accepted,
            "reasons": [] if system is None else list(system.invalid_reasons) or ([result.error] if result.error else []),
            "p99_ms": p99, "bound_ms": None if not bound_ns else bound_ns / 1e6,
            "completed_qps": None if system is None else system.throughput, "run_dir": result.run_dir,
            "elapsed_s": result.elapsed_s,
            **({"ttft_p99_ms": tokens.ttft_p99_ms, "tpot_p99_ms": tokens.tpot_p99_ms} if tokens is not None else {})}


#: LoadGen's reasons (logs.py's wording) that a run issued too few queries in its duration: a lower target only
#: issues fewer
_TOO_FEW = ("minimum query/sample count not met", "The test exited early")


def too_few_queries(entry: dict) -> bool:
    """The probe fell short of LoadGen's minimum query count within the bound: the duration, not the target, failed."""
    bound, p99 = entry.get("bound_ms"), entry.get("p99_ms")
    return (any(why in reason for reason in entry["reasons"] for why in _TOO_FEW)
            and bound is not None and p99 is not None and p99 <= bound)


def upper_bound(high: float, entry: dict) -> float:
    """The upper bound after an INVALID probe: its target, or less when it was overloaded."""
    completed = entry.get("completed_qps")
    if completed and entry["target_qps"] and completed < OVERLOADED * entry["target_qps"]:
        return min(high, OVERLOAD_MARGIN * completed)
    return high


def bounded_probe_plan(plan: Plan, first_elapsed_s: float | None) -> Plan:
    """The plan the later probes run: the point's timeout, bounded by the first probe's duration."""
    if not first_elapsed_s:
        return plan
    bound = max(PROBE_TIMEOUT_FLOOR_S, PROBE_TIMEOUT_FACTOR * first_elapsed_s)
    if bound >= plan.point.timeout_s:
        return plan
    return dataclasses.replace(plan, point=dataclasses.replace(plan.point, timeout_s=bound))


def search_target(plan: Plan, search_dir: Path, force_limits: bool = False,
                  say: Callable[[str], None] | None = None) -> ServerSearch:
    """Probe targets under `search_dir` and return the highest VALID one with the trace."""
    say = say or (lambda _msg: None)
    trace: list[dict] = []

    def probe(target: float | None, probe_plan: Plan) -> dict:
        hints = {} if target is None else {"server_target_qps": target}
        result = launch(probe_plan, search_dir, ChildTask(role="probe", hints=hints, force_limits=force_limits,
                                                          mode=dict(plan.mode_actions)))
        entry = _trace_entry(result, target)
        trace.append(entry)
        verdict = {True: "VALID", False: "INVALID", None: result.status}[entry["valid"]]
        if entry["valid"] and not entry["accepted"]:
            tail = (f"TTFT p99 {entry['ttft_p99_ms']:.2f} ms, TPOT p99 {entry['tpot_p99_ms']:.2f} ms leave"
                    if "ttft_p99_ms" in entry else f"p99 {entry['p99_ms']:.2f} ms leaves")
            verdict += f" ({tail} less than {100 - 100 * LATENCY_HEADROOM:.0f} % of the bound)"
        shown = "-" if entry["target_qps"] is None else f"{entry['target_qps']:,.0f}"
        say(f"  server target search: probe {len(trace)} at {shown} QPS -> {verdict}")
        return entry

    first = probe(None, plan)
    if first["target_qps"] is None:  # the probe failed before LoadGen ran: nothing to search with
        return ServerSearch(target_qps=None, trace=trace,
                            note=f"the first probe {first['status']}: {'; '.join(first['reasons']) or 'no result'}")
    if first["accepted"]:
        return ServerSearch(target_qps=first["target_qps"], trace=trace,
                            note="VALID at the compute throughput, the most a Server run can sustain")
    probe_plan = bounded_probe_plan(plan, first["elapsed_s"])  # the later probes: a hang costs a minute, not all
    low, high = 0.0, upper_bound(float(first["target_qps"]), first)
    repeated = False  # whether `low` held when probed again
    edge_near = False  # a target failed its repeat: the edge lies just below it, not half-way down
    while len(trace) < MAX_PROBES:
        if low > 0.0 and (high - low) / high <= TOLERANCE:
            # converged; near the edge a target passes by chance, so the one the run will use is probed again
            entry = probe(low, probe_plan)
            entry["repeat"] = True
            if entry["accepted"]:
                repeated = True
                break
            high = low  # it did not hold: the bracket closes below it
            low = max((float(e["target_qps"]) for e in trace if e["accepted"] and e["target_qps"] < high), default=0.0)
            edge_near = True
            continue
        if low > 0.0:
            target = (low + high) / 2
        else:
            target = 0.9 * high if edge_near else 0.8 * high if len(trace) == 1 else high / 2
        entry = probe(target, probe_plan)
        if entry["accepted"]:
            low = float(entry["target_qps"])
        elif low == 0.0 and too_few_queries(entry):
            return ServerSearch(target_qps=None, trace=trace,
                                note=f"at {target:,.0f} QPS the probe met the latency bound but issued fewer queries "
                                     "than LoadGen's minimum in its duration, and a lower target issues fewer still; "
                                     "raise min_duration_ms (or use the submission profile)")
        else:
            high = upper_bound(min(high, float(entry["target_qps"])), entry)
    if low == 0.0:
        return ServerSearch(target_qps=high, trace=trace,
                            note=f"no probe was accepted down to {high:,.0f} QPS; the run uses that target")
    gap = (high - low) / high
    where = (f"converged: within {100 * gap:.1f} % of the lowest rejected target {high:,.0f}, and it held when "
             f"probed again" if repeated else
             f"not converged: stopped at the {MAX_PROBES}-probe limit in the bracket {low:,.0f}..{high:,.0f} QPS "
             f"({100 * gap:.1f} % wide{'' if gap <= TOLERANCE else f', more than the {100 * TOLERANCE:.0f} % asked'}; "
             "the target was not probed again)")
    return ServerSearch(target_qps=low, trace=trace,
                        note=f"highest accepted target (VALID with p99 within {100 * LATENCY_HEADROOM:.0f} % of the "
                             f"bound) after {len(trace)} probes, {where}")
