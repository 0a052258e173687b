"""Pareto frontiers: the variants and deployments that no other one beats on accuracy and a cost at once.

Why: QuTiBench's conclusions are trade-offs (Blott et al., ACM JETC 15(4) 2019, arXiv 1909.05009): which
variant keeps the most accuracy for a throughput, a latency, a power budget or an energy per inference.
Its published code takes a running maximum per group (RCL-lab/QutibenchWeb,
`_notebooks/scripts/overlapped_pareto.py`, `get_pareto_df`, whose docstring admits it "doesn't correctly
correspond x to y datapoints"); here the frontier is the exact non-dominated set.

Definitions (each is tested in tests/tiers/test_pareto.py):

* **Dominated**: point p is dominated when another point q of the same frontier is at least as good on
  both axes and strictly better on one. Accuracy is maximised; throughput is maximised; p90/p99 latency,
  power (W) and energy per inference (mJ per sample) are minimised.
* **Ties**: points equal on both axes do not dominate each other, so every one of them stays on the
  frontier: they are different deployments that reach the same trade-off, and keeping one would hide
  the others. Equality is exact (no tolerance).
* **Missing values**: a row without accuracy, or without the objective's figure (absent, NaN or
  infinite), is left out of that frontier and counted with the reason; it is never read as 0. Power and
  energy of a row measured without a meter count as "no power".
* **Groups**: one frontier per scenario, platform and dataset: a LoadGen scenario's figures mean
  different things (Offline samples/s vs SingleStream's 1/latency), the platform is the hardware one
  deploys on, and accuracies on different datasets do not compare. Backends, precisions,
  batch/threads/streams and operating modes are the choices one frontier compares (the question is
  "which deployment on this hardware"); `by_backend` splits per backend as well.
* **Rows**: the rows given (the store's latest row per point) with status `ok`; other statuses are
  counted, never placed. An accuracy may be taken from another ok row of the same variant (same model
  bytes, backend, device, execution precision, runtime options and dataset) only when asked
  (`borrow_accuracy`), and only when those rows agree on it; such points say where it came from.
* **Level-0 overlay** (QuTiBench's "overlapped Pareto"): for every measured candidate with an accuracy,
  the roofline's predicted inputs/s (`tiers.level0.roofline.predict`) on the row's platform at the
  datatype that executed (`runtime.compute_dtype`, else the variant's label), the weights streamed as
  stored, at the row's compute batch, paired with the measured accuracy; it has its own frontier and is
  shown with the throughput objectives.
* **Energy per inference** = 1000 / samples per joule (mJ per sample), from the row's power section:
  Offline/Server divide throughput by the average W; SingleStream/MultiStream derive samples per joule
  from mJ per query (`mlperf_ext.power.metrics`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlperf_ext.errors import ConfigError, MlperfExtError
from mlperf_ext.files import write_atomic
from mlperf_ext.result import PointResult

MEASURED = "measured"
LEVEL0 = "level0"
#: the status word of a point in a frontier's CSV
FRONTIER, DOMINATED, EXCLUDED = "frontier", "dominated", "excluded"
NO_ACCURACY = "no accuracy"
NO_POWER = "no power"


@dataclass(frozen=True)
class Objective:
    """The cost axis of a frontier (accuracy is always the other axis)."""

    name: str
    title: str
    unit: str
    maximise: bool
    fmt: str  # format spec of its values in tables

    @property
    def direction(self) -> str:
        return "higher is better" if self.maximise else "lower is better"


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("throughput", "system throughput", "samples/s", True, ",.0f"),
    Objective("compute_throughput", "compute throughput", "samples/s", True, ",.0f"),
    Objective("p90", "p90 system latency", "ms", False, ".3f"),
    Objective("p99", "p99 system latency", "ms", False, ".3f"),
    Objective("power", "average power", "W", False, ".2f"),
    Objective("energy", "energy per inference", "mJ/sample", False, ".4g"),
)}
#: what `mlperf-ext pareto` shows unless told otherwise
DEFAULT_OBJECTIVES = ("throughput", "p90", "p99", "power", "energy")
#: objectives the level-0 overlay (predicted inputs/s) is drawn against
THROUGHPUT_OBJECTIVES = ("throughput", "compute_throughput")


def finite(value) -> float | None:
    """The value as a float when it is a real finite number; None otherwise (missing is never 0)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- reading a result -----------------------------------------------------------------------------
def _section_value(result: PointResult, section: str, name: str, what: str) -> tuple[float | None, str]:
    value = finite(getattr(getattr(result, section, None), name, None))
    return (value, "") if value is not None else (None, f"no {what}")


def _power_value(result: PointResult, objective: str) -> tuple[float | None, str]:
    """Average W or mJ per sample from the row's power section (read with getattr: rows stored before the
    section existed have none), or why there is none."""
    power = getattr(result, "power", None)
    meter = getattr(power, "meter", None) if power is not None else None
    if power is None or not meter or meter == "none":
        return None, NO_POWER
    if objective == "power":
        value = finite(getattr(power, "avg_w", None))
    else:
        per_j = finite(getattr(power, "samples_per_j", None))
        value = 1000.0 / per_j if per_j and per_j > 0 else None
    if value is not None:
        return value, ""
    note = str(getattr(power, "note", "") or "").split(";")[-1].strip()
    return None, f"no power figure (meter {meter}{': ' + note if note else ''})"


def objective_value(result: PointResult, objective: str) -> tuple[float | None, str]:
    """One objective's figure of a stored result and, when it has none, why."""
    if objective == "throughput":
        return _section_value(result, "system", "throughput", "system throughput")
    if objective == "compute_throughput":
        return _section_value(result, "compute", "throughput", "compute throughput")
    if objective in ("p90", "p99"):
        return _section_value(result, "system", f"lat_{objective}_ms", f"{objective} latency")
    if objective in ("power", "energy"):
        return _power_value(result, objective)
    raise ConfigError(f"unknown objective '{objective}'; fix: use one of {', '.join(OBJECTIVES)}")


def accuracy_of(result: PointResult) -> float | None:
    """Top-1 as a fraction (0..1), or None when the row was not scored."""
    return finite(getattr(result.accuracy, "value", None)) if result.accuracy is not None else None


def precision_text(result: PointResult) -> str:
    """The variant's label, and the datatype that executed when that differs (as the results table)."""
    label = (result.variant.precision if result.variant else None) or ""
    ran = (result.runtime.compute_dtype if result.runtime else None) or ""
    return f"{label}->{ran}" if ran and label and ran != label else label or ran


def _deployment(result: PointResult) -> str:
    p = result.point
    if p is None:
        return ""
    text = f"{p.batch}/{p.threads or 'auto'}/{p.streams}"
    text += f" exec {p.exec_precision}" if p.exec_precision != "model" else ""
    return text + (" [simulated]" if is_simulated(result) else "")


#: why a simulated row is not placed, and how to place it
SIMULATED_SKIP = "simulated timing (--include-simulated places it)"


def is_simulated(result: PointResult) -> bool:
    """Its timings come from a stand-in for hardware (FakePynqBoard), not from a device."""
    return bool(result.runtime and result.runtime.simulated)


# -- level 0 ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Level0Estimate:
    """Level 0's predicted inputs/s for one stored row, or why there is none."""

    inputs_per_s: float | None
    datatype: str | None  # what was predicted: the datatype that executed, else the label
    carrier: str | None  # the platform datatype whose peak ran it
    peak_tops: float | None
    bandwidth_gbs: float | None
    mode: str  # the platform mode predicted against ("" = its base numbers)
    bound: str | None
    ops_per_sample: float | None  # level-0 ops per input (2 per MAC plus elementwise)
    mac_ops_per_sample: float | None  # 2 per multiply-accumulate of Conv/Gemm/MatMul only
    note: str  # why there is no prediction, or how the row was read


def platform_point(catalog, result: PointResult, default_mode: str | None = None):
    """The catalog's numbers for a row's platform and operating mode, and a note on how the mode was read.

    A row naming a mode the platform lacks (e.g. an OpenVINO performance hint, a runtime setting) is
    predicted against `default_mode` or the base numbers, as `tiers.level0.efficiency` does, and says so.
    Raises ConfigError for a platform the catalog lacks."""
    point = result.point
    platform = catalog.get(point.platform or "host")
    mode = point.operating_mode or ""
    note = ""
    if mode and mode not in platform.modes:
        used = default_mode if platform.modes and default_mode else ""
        note = (f"operating_mode {mode!r} is not a mode of platform {platform.name}; predicted against "
                f"{used or 'its base numbers'}")
        mode = used
    elif not mode and platform.modes and default_mode:
        mode = default_mode
    return platform.point(mode or None), note


def level0_estimate(result: PointResult, catalog, default_mode: str | None = None,
                    analyse: Callable | None = None) -> Level0Estimate:
    """Roofline inputs/s of a stored row at the datatype that executed, the weights as stored."""
    from tiers.level0.efficiency import normalise_precision
    from tiers.level0.graph import analyze
    from tiers.level0.roofline import predict

    def none(note: str, **known) -> Level0Estimate:
        base = dict(inputs_per_s=None, datatype=None, carrier=None, peak_tops=None, bandwidth_gbs=None, mode="",
                    bound=None, ops_per_sample=None, mac_ops_per_sample=None, note=note)
        return Level0Estimate(**{**base, **known})

    point = result.point
    if point is None:
        return none("no point stored")
    if is_simulated(result):
        return none("simulated timing (a stand-in for hardware): no device to predict for")
    try:  # the platform first: a row of a platform the catalog lacks needs no graph analysis
        pt, mode_note = platform_point(catalog, result, default_mode)
    except MlperfExtError as exc:
        return none(str(exc).split("; fix:")[0])
    where = dict(mode=pt.mode, bandwidth_gbs=pt.memory_bandwidth_gbs)
    path = Path(point.model)
    if not path.is_file():
        return none(f"model file {point.model} not found", **where)
    try:
        cost = (analyse or analyze)(str(path))
    except MlperfExtError as exc:
        return none(f"level 0 cannot analyse {path.name}: {exc}", **where)
    ops = {"ops_per_sample": float(cost.ops), "mac_ops_per_sample": float(getattr(cost, "mac_ops", cost.ops))}
    executed = result.runtime.compute_dtype if result.runtime else None
    label = executed or (result.variant.precision if result.variant else None)
    dtype = normalise_precision(label) if label else cost.stored_precision
    if dtype is None:
        return none(f"precision {label!r} is not a datatype level 0 knows", **where, **ops)
    notes = [] if executed else [f"no executed datatype stored; predicted at the label {label or dtype!r}"]
    notes += [mode_note] if mode_note else []
    batch = int((result.compute.batch if result.compute else None) or point.batch or 1)
    try:
        pred = predict(cost, pt, dtype, batch, "roofline", name=path.stem, weight_precision=cost.stored_precision)
    except MlperfExtError as exc:
        return none(str(exc).split("; fix:")[0], datatype=dtype, **where, **ops)
    if pred is None:
        return none(f"platform {pt.label} has no peak that can run {dtype}", datatype=dtype, **where, **ops)
    return Level0Estimate(inputs_per_s=pred.inputs_per_s, datatype=dtype, carrier=pred.carrier,
                          peak_tops=pt.peak_tops[pred.carrier], bandwidth_gbs=pt.memory_bandwidth_gbs, mode=pt.mode,
                          bound=pred.bound, note="; ".join(notes), **ops)


def cached_analyser() -> Callable:
    """`tiers.level0.graph.analyze` remembered per file (a sweep stores many rows of one model)."""
    from tiers.level0.graph import analyze

    seen: dict[str, object] = {}

    def analyse(path: str):
        if path not in seen:
            seen[path] = analyze(path)
        return seen[path]

    return analyse


# -- candidates ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One row that may sit on a frontier: its group, what it is, its accuracy and every objective's figure."""

    run_id: str
    point_key: str
    scenario: str
    platform: str
    dataset: str
    backend: str
    model: str
    precision: str
    deployment: str  # batch/threads/streams (and an execution precision other than the model's)
    operating_mode: str
    accuracy: float | None  # fraction 0..1
    accuracy_source: str  # "" (its own row) or where a borrowed accuracy came from
    values: dict[str, float | None]
    missing: dict[str, str]  # objective -> why it has no figure
    predicted: float | None = None  # level-0 inputs/s
    predicted_note: str = ""

    def group(self, by_backend: bool) -> tuple[str, str, str, str]:
        return self.scenario, self.platform, self.dataset, self.backend if by_backend else ""


def _variant_key(result: PointResult) -> tuple:
    """What an accuracy depends on: the model bytes, the runtime and how it executes, the data."""
    p = result.point
    model = (result.variant.model_sha256 if result.variant else None) or p.model
    return (model, p.backend, p.device, p.exec_precision, json.dumps(p.runtime_options, sort_keys=True, default=str),
            result.dataset_sha256 or p.dataset)


def borrowed_accuracies(results: Sequence[PointResult]) -> dict[str, tuple[float, str]]:
    """run id -> (accuracy, source) for ok rows without accuracy whose variant's scored rows agree on one."""
    scored: dict[tuple, dict[float, list[str]]] = {}
    for r in results:
        acc = accuracy_of(r)
        if r.status == "ok" and r.point is not None and acc is not None:
            scored.setdefault(_variant_key(r), {}).setdefault(acc, []).append(r.run_id or "")
    out = {}
    for r in results:
        if r.status != "ok" or r.point is None or accuracy_of(r) is not None:
            continue
        values = scored.get(_variant_key(r), {})
        if len(values) == 1:
            (acc, runs), = values.items()
            out[r.run_id or ""] = (acc, f"borrowed from run {runs[-1]} (same variant, {r.point.backend})")
    return out


def candidates_from_results(results: Iterable[PointResult], catalog=None, default_mode: str | None = None,
                            analyse: Callable | None = None, borrow_accuracy: bool = False,
                            borrowed: dict[str, tuple[float, str]] | None = None,
                            include_simulated: bool = False) -> tuple[list[Candidate], Counter]:
    """Candidates of every ok row with a point, and the count of rows left out by status (and simulated rows,
    unless `include_simulated`: they are then marked). Accuracy is borrowed from `borrowed` when given, else
    among these rows when `borrow_accuracy`."""
    results = list(results)
    if borrowed is None:
        borrowed = borrowed_accuracies(results) if borrow_accuracy else {}
    analyse = analyse or (cached_analyser() if catalog is not None else None)
    out: list[Candidate] = []
    skipped: Counter = Counter()
    for r in results:
        if r.status != "ok" or r.point is None:
            skipped[f"status {r.status}" if r.point is not None else "no point stored"] += 1
            continue
        if is_simulated(r) and not include_simulated:
            skipped[SIMULATED_SKIP] += 1
            continue
        acc, source = accuracy_of(r), ""
        if acc is None and (r.run_id or "") in borrowed:
            acc, source = borrowed[r.run_id or ""]
        values, missing = {}, {}
        for name in OBJECTIVES:
            values[name], why = objective_value(r, name)
            if why:
                missing[name] = why
        predicted, note = None, "no platform catalog given"
        if catalog is not None:
            est = level0_estimate(r, catalog, default_mode, analyse)
            predicted, note = est.inputs_per_s, est.note
        out.append(Candidate(
            run_id=r.run_id or "", point_key=r.point_key or "", scenario=r.point.scenario,
            platform=r.point.platform or "host", dataset=r.point.dataset, backend=r.point.backend,
            model=str(r.point.model_name or ""),
            precision=precision_text(r), deployment=_deployment(r), operating_mode=r.point.operating_mode or "",
            accuracy=acc, accuracy_source=source, values=values, missing=missing, predicted=predicted,
            predicted_note=note))
    return out, skipped


# -- the frontier ----------------------------------------------------------------------------------
def dominators(points: Sequence[tuple[float, float]]) -> list[int | None]:
    """For each (a, b) pair, both maximised: None when no other pair dominates it, else the index of one
    that does. Sorting by a then b, a pair is dominated by the best b among strictly higher a (if that b
    is at least as high) or by a strictly higher b at the same a; equal pairs never dominate each other."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1], i))
    out: list[int | None] = [None] * len(points)
    best: int | None = None  # highest b among the pairs of strictly higher a seen so far
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and points[order[end]][0] == points[order[start]][0]:
            end += 1
        top = order[start]  # the highest b at this a
        for i in order[start:end]:
            if best is not None and points[best][1] >= points[i][1]:
                out[i] = best
            elif points[top][1] > points[i][1]:
                out[i] = top
        if best is None or points[top][1] > points[best][1]:
            best = top
        start = end
    return out


@dataclass(frozen=True)
class ParetoPoint:
    """One candidate placed in one frontier."""

    kind: str  # measured | level0
    objective: str
    scenario: str
    platform: str
    dataset: str
    backend: str  # the group's backend ("" when backends share a frontier); see `point_backend`
    run_id: str
    point_key: str
    model: str
    precision: str
    point_backend: str
    deployment: str
    operating_mode: str
    accuracy: float
    value: float
    on_frontier: bool
    dominated_by: str  # run id of a point that dominates it ("" on the frontier)
    accuracy_source: str
    note: str = ""


@dataclass
class Frontier:
    """Every placed candidate of one group and objective, frontier first; the rows left out, by reason."""

    kind: str
    objective: Objective
    scenario: str
    platform: str
    dataset: str
    backend: str
    points: list[ParetoPoint] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)
    excluded_runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason)

    @property
    def frontier(self) -> list[ParetoPoint]:
        return [p for p in self.points if p.on_frontier]

    @property
    def title(self) -> str:
        what = "level-0 predicted inputs/s" if self.kind == LEVEL0 else self.objective.title
        where = " · ".join(x for x in (self.scenario, self.platform, self.dataset, self.backend) if x)
        return f"accuracy vs {what} · {where}"


def build_frontier(kind: str, objective: Objective, group: tuple[str, str, str, str],
                   candidates: Sequence[Candidate]) -> Frontier:
    """Place each candidate of one group: left out (with why) without accuracy or figure, else on the
    frontier or dominated."""
    scenario, platform, dataset, backend = group
    frontier = Frontier(kind, objective, scenario, platform, dataset, backend)
    placed: list[tuple[Candidate, float]] = []
    for c in candidates:
        if kind == LEVEL0:
            value, why = c.predicted, f"no level-0 prediction ({c.predicted_note})"
        else:
            value, why = c.values.get(objective.name), c.missing.get(objective.name, f"no {objective.name}")
        reason = NO_ACCURACY if c.accuracy is None else "" if value is not None else why
        if reason:
            frontier.excluded[reason] += 1
            frontier.excluded_runs.append((c.run_id, reason))
            continue
        placed.append((c, value))
    sign = 1.0 if objective.maximise or kind == LEVEL0 else -1.0
    doms = dominators([(c.accuracy, sign * v) for c, v in placed])
    points = []
    for (c, value), dom in zip(placed, doms):
        points.append(ParetoPoint(
            kind=kind, objective=objective.name, scenario=scenario, platform=platform, dataset=dataset,
            backend=backend,
            run_id=c.run_id, point_key=c.point_key, model=c.model, precision=c.precision, point_backend=c.backend,
            deployment=c.deployment, operating_mode=c.operating_mode, accuracy=c.accuracy, value=value,
            on_frontier=dom is None, dominated_by="" if dom is None else placed[dom][0].run_id,
            accuracy_source=c.accuracy_source, note=c.predicted_note if kind == LEVEL0 else ""))
    # the frontier first, from the most accurate point down (its value improving), then the dominated
    points.sort(key=lambda p: (not p.on_frontier, -p.accuracy, -sign * p.value))
    frontier.points = points
    return frontier


@dataclass
class ParetoReport:
    frontiers: list[Frontier]
    skipped: Counter  # rows no frontier considers, by reason (status invalid, refused ...)
    candidates: int


def _scenario_order(name: str) -> tuple[int, str]:
    from mlperf_ext.loadgen import SCENARIOS

    return (SCENARIOS.index(name) if name in SCENARIOS else len(SCENARIOS), name)


def pareto(candidates: Sequence[Candidate], objectives: Sequence[str] = DEFAULT_OBJECTIVES,
           by_backend: bool = False, level0: bool = True, skipped: Counter | None = None) -> ParetoReport:
    """Every frontier of the candidates: one per group and objective, plus the level-0 overlay next to
    the throughput objectives when `level0`."""
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown:
        raise ConfigError(f"unknown objective '{unknown[0]}'; fix: use one of {', '.join(OBJECTIVES)}")
    groups: dict[tuple[str, str, str, str], list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(c.group(by_backend), []).append(c)
    frontiers = []
    for group in sorted(groups, key=lambda g: (_scenario_order(g[0]), *g[1:])):
        for name in dict.fromkeys(objectives):
            frontiers.append(build_frontier(MEASURED, OBJECTIVES[name], group, groups[group]))
            if level0 and name in THROUGHPUT_OBJECTIVES:
                frontiers.append(build_frontier(LEVEL0, OBJECTIVES[name], group, groups[group]))
    return ParetoReport(frontiers, skipped or Counter(), len(candidates))


def pareto_of_results(results: Iterable[PointResult], objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                      by_backend: bool = False, catalog=None, default_mode: str | None = None,
                      borrow_accuracy: bool = False, analyse: Callable | None = None,
                      scenarios: Sequence[str] = (), platforms: Sequence[str] = (),
                      include_simulated: bool = False) -> ParetoReport:
    """Frontiers of stored results (of the scenarios and platforms given, all by default); the level-0
    overlay when a platform catalog is given. Accuracy is borrowed across every row, so a SingleStream
    frontier can use its variant's Offline accuracy run."""
    results = list(results)

    def wanted(r: PointResult) -> bool:
        return r.point is None or ((not scenarios or r.point.scenario in scenarios)
                                   and (not platforms or (r.point.platform or "host") in platforms))

    borrowed = borrowed_accuracies(results) if borrow_accuracy else None
    cands, skipped = candidates_from_results([r for r in results if wanted(r)], catalog, default_mode, analyse,
                                             borrowed=borrowed, include_simulated=include_simulated)
    return pareto(cands, objectives, by_backend, level0=catalog is not None, skipped=skipped)


# -- output ----------------------------------------------------------------------------------------
def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _reasons(counts: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


def _frontier_key(f: Frontier) -> tuple:
    return f.scenario, f.platform, f.dataset, f.backend, f.objective.name


def pareto_tables(report: ParetoReport, show_all: bool = False) -> list:
    """One rich table per group and objective, the level-0 overlay as two more columns, or one line when a
    frontier has no point; by default the points on either frontier, with `show_all` every placed one."""
    from rich.table import Table

    out: list = []
    level0 = {_frontier_key(f): f for f in report.frontiers if f.kind == LEVEL0}
    for f in (f for f in report.frontiers if f.kind == MEASURED):
        theory = level0.get(_frontier_key(f))
        t_points = theory.points if theory else []
        if not f.points and not t_points:
            out.append(f"{f.title}: no point ({_reasons(f.excluded) or 'no rows'})")
            continue
        m_by_run, t_by_run = {p.run_id: p for p in f.points}, {p.run_id: p for p in t_points}
        runs = list(dict.fromkeys([p.run_id for p in f.points if show_all or p.on_frontier]
                                  + [p.run_id for p in t_points if show_all or p.on_frontier]))
        names = {p.run_id: f"{p.model} {p.point_backend} {p.deployment}" for p in f.points + t_points}
        headers = ["model", "prec", "backend", "b/t/s", "op mode", "accuracy %", f.objective.unit, "measured"]
        rows = []
        for run in runs:
            m, t = m_by_run.get(run), t_by_run.get(run)
            p = m or t
            verdict = ("frontier" if m.on_frontier else f"dominated by {names.get(m.dominated_by, m.dominated_by)}"
                       ) if m else "left out"
            row = [p.model, p.precision, p.point_backend, p.deployment, p.operating_mode,
                   f"{100 * p.accuracy:.2f}" + ("†" if p.accuracy_source else ""),
                   _fmt(m.value, f.objective.fmt) if m else "", verdict]
            if theory:
                row += [_fmt(t.value, ",.0f") if t else "",
                        ("frontier" if t.on_frontier else "dominated") if t else "no prediction"]
            rows.append(row)
        if theory:
            headers += ["level-0 inputs/s", "level 0"]
        # descriptive columns empty in every row (e.g. no operating modes) are not shown
        shown = [i for i, h in enumerate(headers) if i >= 5 or any(r[i] for r in rows)]
        title = f"{f.title} ({f.objective.unit}, {f.objective.direction})"
        table = Table(title=title, min_width=len(title))  # a title is never wrapped to a narrow table
        for i in shown:
            right = headers[i] in ("accuracy %", f.objective.unit, "level-0 inputs/s")
            table.add_column(headers[i], justify="right" if right else "left", no_wrap=True)
        for row in rows:
            table.add_row(*(row[i] for i in shown))
        notes = [f"left out: {_reasons(f.excluded)}"] if f.excluded else []
        if theory and theory.excluded:
            notes.append(f"level 0 left out: {_reasons(theory.excluded)}")
        if any(p.accuracy_source for p in f.points):
            notes.append("† accuracy borrowed from another run of the same variant")
        hidden = sum(not p.on_frontier for p in f.points if p.run_id not in runs)
        if hidden:
            notes.append(f"{hidden} dominated point(s) not listed (--all lists them)")
        table.caption = "; ".join(notes)
        out.append(table)
    return out


def print_pareto(report: ParetoReport, console=None, show_all: bool = False, wide: bool = False) -> None:
    from mlperf_ext.tables import table_console

    console = console or table_console(wide)
    for item in pareto_tables(report, show_all):
        if isinstance(item, str):
            console.print(item, markup=False)
        else:
            console.print(item)
    if report.skipped:
        console.print(f"rows no frontier considers: {_reasons(report.skipped)}", markup=False)


CSV_FIELDS = ("kind", "objective", "unit", "scenario", "platform", "dataset", "backend", "run_id", "point_key", "model",
              "precision", "point_backend", "deployment", "operating_mode", "accuracy", "value", "status",
              "dominated_by", "accuracy_source", "note")


def pareto_rows(report: ParetoReport) -> list[dict]:
    """Long format: one row per placed point (frontier or dominated) and per left-out row, with the reason."""
    rows = []
    for f in report.frontiers:
        unit = "inputs/s" if f.kind == LEVEL0 else f.objective.unit
        for p in f.points:
            row = {k: getattr(p, k) for k in CSV_FIELDS if hasattr(p, k)}
            rows.append({**row, "unit": unit, "status": FRONTIER if p.on_frontier else DOMINATED})
        for run, reason in f.excluded_runs:
            rows.append({"kind": f.kind, "objective": f.objective.name, "unit": unit, "scenario": f.scenario,
                         "platform": f.platform, "dataset": f.dataset, "backend": f.backend, "run_id": run,
                         "status": EXCLUDED, "note": reason})
    return rows


def write_csv_atomic(path: Path, fieldnames: Sequence[str], rows: Iterable[dict]) -> None:
    """Header always, then the rows; written to a temp file and renamed, so a reader never sees half a file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; fix: name a .csv file")
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist; fix: create it or name another path")
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(fieldnames), extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, out.getvalue())


def write_pareto_csv(report: ParetoReport, path: Path) -> int:
    rows = pareto_rows(report)
    write_csv_atomic(path, CSV_FIELDS, rows)
    return len(rows)


__all__ = ["Candidate", "DEFAULT_OBJECTIVES", "Frontier", "Level0Estimate", "OBJECTIVES", "Objective",
           "ParetoPoint", "ParetoReport", "build_frontier", "candidates_from_results", "dominators",
           "level0_estimate", "pareto", "pareto_of_results", "print_pareto", "write_csv_atomic",
           "write_pareto_csv"]
