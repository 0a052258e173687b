"""Power figures of one point: pure functions of a trace, a window, an idle baseline and LoadGen's counts.

Energy in a window [t0, t1]: an energy domain's cumulative joules interpolated linearly at both edges
and subtracted (the counter's own integration, exact between readings); a power domain's readings
integrated with the trapezoid rule, the power at each edge interpolated from the readings either side.
Average W = energy / (t1 - t0). The trace must cover the window (a reading at or before t0 and one at
or after t1); otherwise there is no figure, and the note says why.

Efficiency follows MLPerf Power's definitions (github.com/mlcommons/inference,
`inference_policies/power_measurement.adoc`; the submission checker's power check averages the watts
inside LoadGen's power_begin..power_end):

* Offline / Server: the power metric is the average W; efficiency = throughput (samples/s) / W, i.e.
  samples per joule.
* SingleStream / MultiStream: the power metric is energy per query in mJ = average W x duration_s x 1000
  / query_count; efficiency = samples_per_query x 1000 / mJ, again samples per joule.
* GOP/J (QuTiBench's energy efficiency, Xu et al.) = level-0 ops per sample / 1e9 x samples per joule.

These use the average (gross) power, as MLPerf does; net W (average minus idle) is stored beside it.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlperf_ext.power.base import ENERGY, PowerMeter, PowerTrace

THROUGHPUT_SCENARIOS = ("Offline", "Server")
STREAM_SCENARIOS = ("SingleStream", "MultiStream")
NO_POWER = "no power"


@dataclass
class PowerFigures:
    """A point's power and energy, flat so that the results store can make columns of it."""

    meter: str = "none"  # the meter's name, e.g. "rapl", "nvml:0 (NVIDIA H100)", "external:/path/log.csv"
    compliant: bool = False  # MLPerf-Power-compliant: only a PTDaemon measurement would be
    note: str = NO_POWER  # "not MLPerf-Power-compliant (meter rapl)" or "no power (why)", plus problems
    method: str = ""  # how the meter measures: energy counter, sampled power, external log
    window_source: str = ""  # "loadgen" (power_begin..power_end) or "run" (the harness's own timestamps)
    idle_w: float | None = None
    avg_w: float | None = None  # average over the window (the meter's total domains)
    net_w: float | None = None  # avg_w - idle_w
    energy_j: float | None = None  # in the window
    duration_s: float | None = None  # of the window
    samples_per_j: float | None = None  # every scenario (Offline/Server: throughput / W)
    mj_per_query: float | None = None  # SingleStream / MultiStream only
    gop_per_j: float | None = None  # level-0 GOP per sample x samples_per_j
    reading_count: int | None = None  # meter readings inside the window
    domains: dict = field(default_factory=dict)  # domain -> average W in the window (all domains)
    errors: list[str] = field(default_factory=list)  # the meter's read errors (first few) and counts


def compliance_note(meter: str, compliant: bool) -> str:
    return "MLPerf-Power measurement (PTDaemon)" if compliant else f"not MLPerf-Power-compliant (meter {meter})"


def no_power(reason: str = "") -> PowerFigures:
    """The figures of a row without a meter: 'no power', with why (the refusal line) when there is one."""
    return PowerFigures(note=f"{NO_POWER} ({reason})" if reason else NO_POWER)


# -- integration ----------------------------------------------------------------------------------
def _value_at(t: list[float], v: list[float], x: float) -> float:
    """v linearly interpolated at x; t is sorted and t[0] <= x <= t[-1]."""
    i = bisect.bisect_left(t, x)
    if t[i] == x:
        return v[i]
    t_a, t_b = t[i - 1], t[i]
    return v[i - 1] + (v[i] - v[i - 1]) * (x - t_a) / (t_b - t_a)


def covers(trace: PowerTrace, t0: float, t1: float) -> bool:
    return len(trace.t) >= 2 and trace.t[0] <= t0 and trace.t[-1] >= t1


def window_energy_j(trace: PowerTrace, domain: str, t0: float, t1: float) -> float | None:
    """Joules of one domain in [t0, t1]; None when the readings do not cover the window."""
    if not covers(trace, t0, t1) or t1 < t0:
        return None
    t, v = trace.t, trace.values[domain]
    if trace.domain(domain).kind == ENERGY:
        return _value_at(t, v, t1) - _value_at(t, v, t0)
    lo, hi = bisect.bisect_right(t, t0), bisect.bisect_left(t, t1)  # readings strictly inside
    points = [(t0, _value_at(t, v, t0)), *zip(t[lo:hi], v[lo:hi]), (t1, _value_at(t, v, t1))]
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(points, points[1:]))


def trace_average_w(trace: PowerTrace) -> float | None:
    """Average of the meter's total from its first to its last reading (None with fewer than two)."""
    if len(trace.t) < 2 or trace.t[-1] <= trace.t[0]:
        return None
    energies = [window_energy_j(trace, name, trace.t[0], trace.t[-1]) for name in trace.total_domains]
    if not energies or any(e is None for e in energies):
        return None
    return sum(energies) / (trace.t[-1] - trace.t[0])


# -- idle baseline --------------------------------------------------------------------------------
@dataclass
class IdleBaseline:
    """The host's power at rest, measured just before a point."""

    watts: float | None  # None: the meter gave too few readings (see errors)
    seconds: float
    readings: int
    errors: list[str] = field(default_factory=list)


def measure_idle(meter: PowerMeter, seconds: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep) -> IdleBaseline:
    """Sample the meter for `seconds` while the point does nothing: what net power is measured against.

    RAPL and board rails measure the whole package or board, not the process, so the point's own share
    is the average minus this (QuTiBench records idle and full power separately for the same reason).
    """
    meter.start()
    try:
        sleep(seconds)
    finally:
        trace = meter.stop()
    errors = [f"idle: {e}" for e in trace.errors]
    if trace.error_count > len(trace.errors):
        errors.append(f"idle: {trace.error_count} read errors in all")
    return IdleBaseline(watts=trace_average_w(trace), seconds=seconds, readings=len(trace.t), errors=errors)


# -- the figures ----------------------------------------------------------------------------------
def power_figures(trace: PowerTrace, window: tuple[float, float], *, scenario: str,
                  idle: IdleBaseline | None = None, throughput: float | None = None,
                  query_count: int | None = None, samples_per_query: int = 1,
                  ops_per_sample: float | None = None, window_source: str = "loadgen") -> PowerFigures:
    """The point's figures from its trace and the LoadGen window (epoch seconds, see `window.py`).

    `throughput`: LoadGen's samples/s (Offline/Server); `query_count`: LoadGen's result_query_count
    (SingleStream/MultiStream); `samples_per_query`: 1, or MultiStream's samples per query;
    `ops_per_sample`: level 0's ops for one sample (2 per MAC), for GOP/J.
    """
    if scenario not in THROUGHPUT_SCENARIOS + STREAM_SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    notes = [compliance_note(trace.meter, trace.compliant)]
    errors = list(trace.errors)
    if trace.error_count > len(trace.errors):
        errors.append(f"{trace.error_count} read errors in all")
    if idle is not None:
        errors += idle.errors
    fig = PowerFigures(meter=trace.meter, compliant=trace.compliant, method=trace.method,
                       window_source=window_source, errors=errors,
                       idle_w=idle.watts if idle is not None else None)

    def done(*problems: str) -> PowerFigures:
        fig.note = "; ".join(notes + [p for p in problems if p])
        return fig

    t0, t1 = float(window[0]), float(window[1])
    if not t1 > t0:
        return done(f"no figures: empty window [{t0:.3f}, {t1:.3f}]")
    if any(b < a for a, b in zip(trace.t, trace.t[1:])):
        return done("no figures: the clock stepped back between readings")
    if not covers(trace, t0, t1):
        first = f"{trace.t[0]:.3f}..{trace.t[-1]:.3f}" if trace.t else "none"
        return done(f"no figures: the readings ({len(trace.t)}, {first}) do not cover the window "
                    f"[{t0:.3f}, {t1:.3f}]")
    duration = t1 - t0
    per_domain = {d.name: window_energy_j(trace, d.name, t0, t1) for d in trace.domains}
    energy = sum(per_domain[name] for name in trace.total_domains)
    fig.duration_s = duration
    fig.energy_j = energy
    fig.avg_w = energy / duration
    fig.domains = {name: e / duration for name, e in per_domain.items()}
    fig.reading_count = sum(1 for x in trace.t if t0 <= x <= t1)
    problems = []
    if idle is not None and idle.watts is not None:
        fig.net_w = fig.avg_w - idle.watts
    else:
        problems.append("no idle baseline" if idle is None else "idle baseline unavailable")

    if fig.avg_w <= 0:
        problems.append(f"average power {fig.avg_w:.3g} W is not positive: no efficiency")
    elif scenario in THROUGHPUT_SCENARIOS:
        if throughput:
            fig.samples_per_j = throughput / fig.avg_w
        else:
            problems.append("no LoadGen throughput: no samples/J")
    else:
        if query_count:
            fig.mj_per_query = fig.avg_w * duration * 1000.0 / query_count
            fig.samples_per_j = samples_per_query * 1000.0 / fig.mj_per_query
        else:
            problems.append("no LoadGen query count: no mJ/query")
    if fig.samples_per_j is not None and ops_per_sample:
        fig.gop_per_j = ops_per_sample / 1e9 * fig.samples_per_j
    return done(*problems)
