"""What each section of the report needs, collected from a workdir as typed records.

Why this module: the page must say what the terminal commands say, so every number comes from the
function that owns it, never recomputed here: level 0's `predict` (the `predict` heatmap), `roofline_point`
and `row_efficiencies` (the `efficiency` command), `tiers.pareto` (the `pareto` command),
`tiers.qutibench` (imported QuTiBench files), `tiers.micro.analysis` (the `micro` breakdown) and the
results table's own cells (`mlperf_ext.tables`). Rows are read through `ResultsStore` as typed
`PointResult`s (the latest row per point, as `mlperf-ext results` shows them). Only rows with status
`ok` are measurements; the others are listed in the table with their reason.

Level 3 sections (level 0, roofline, curves, latencies, Pareto) read the rows that are not micro rows;
micro rows (`micro.level` 1 or 2: a layer or a stack cut from a model) have a section of their own.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mlperf_ext.errors import ConfigError, MlperfExtError
from mlperf_ext.result import PointResult

#: the level-0 predictor of the heatmaps (`mlperf-ext predict`'s default)
HEATMAP_PREDICTOR = "roofline"


@dataclass(frozen=True)
class ReportOptions:
    """What the report reads besides the store: level 0's catalog and how rows are read against it."""

    platforms_files: tuple[Path, ...] = ()  # extra platform YAML files (as --platforms-file elsewhere)
    platform_mode: str | None = None  # platform mode for rows that name none (as --platform-mode)
    heatmap_batch: int = 1  # batch of the level-0 heatmaps (as `predict --batch`)
    borrow_accuracy: bool = False  # as `pareto --borrow-accuracy`


# -- rows ------------------------------------------------------------------------------------------
def is_micro(result: PointResult) -> bool:
    """A level-1/2 row: a layer or a stack cut from a parent model (tiers/micro)."""
    return result.micro is not None and result.micro.level in (1, 2)


def table_cell(header: str, result: PointResult) -> str:
    """One cell of the terminal's results table (`mlperf_ext.tables.RESULT_COLUMNS`) by its header."""
    from mlperf_ext.tables import RESULT_COLUMNS

    for name, cell, _justify, _priority in RESULT_COLUMNS:
        if name == header:
            return cell(result)
    raise KeyError(header)


def row_label(result: PointResult) -> str:
    """model · backend · scenario · b/t/s, as the results table names a row."""
    p = result.point
    if p is None:
        return result.run_id or "?"
    return f"{p.model_name} · {p.backend} · {p.scenario} · b/t/s {table_cell('b/t/s', result)}"


# -- level 0 heatmaps ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeatCell:
    inputs_per_s: float | None  # None: the platform mode has no peak that can run the precision
    bound: str  # compute | memory ("" without a prediction)
    carrier: str  # the datatype whose peak was used


@dataclass
class Heatmap:
    """One platform kind's block of `mlperf-ext predict`'s heatmap: (model, precision) x platform/mode."""

    kind: str
    columns: list[str]
    rows: list[tuple[str, str]]
    cells: list[list[HeatCell]]  # rows x columns


@dataclass
class Level0Section:
    batch: int
    predictor: str
    heatmaps: list[Heatmap]
    notes: list[str] = field(default_factory=list)  # models that could not be predicted, and why


def _unique_labels(items: list[tuple[str, str]]) -> dict[str, str]:
    """key -> display name, made unique by appending the key (the model's path) where names collide."""
    count: dict[str, int] = {}
    for _key, name in items:
        count[name] = count.get(name, 0) + 1
    return {key: name if count[name] == 1 else f"{name} ({key})" for key, name in items}


def level0_section(results: Sequence[PointResult], catalog, batch: int, analyse: Callable) -> Level0Section:
    """Predicted inputs/s of every stored model at its stored precision on every platform mode of the
    catalog, exactly as `mlperf-ext predict --model FILE` computes its heatmap."""
    from tiers.level0.roofline import predict

    notes: list[str] = []
    seen: set[str] = set()
    names: list[tuple[str, str]] = []
    costs: dict[str, object] = {}
    for r in results:
        if r.point is None or str(r.point.model) in seen:
            continue
        path = str(r.point.model)
        seen.add(path)
        if not Path(path).is_file():
            notes.append(f"{r.point.model_name}: model file {path} not found, not predicted")
            continue
        try:
            costs[path] = analyse(path)
        except MlperfExtError as exc:
            notes.append(f"{r.point.model_name}: level 0 cannot analyse {path}: {str(exc).split('; fix:')[0]}")
            continue
        names.append((path, str(r.point.model_name)))
    labels = _unique_labels(names)
    points = [pt for p in catalog for pt in p.points()]
    kinds: dict[str, list] = {}
    for pt in points:
        kinds.setdefault(pt.kind, []).append(pt)
    heatmaps = []
    for kind, pts in kinds.items():
        rows, cells = [], []
        for path, cost in costs.items():
            prec = cost.stored_precision
            line = []
            for pt in pts:
                pr = predict(cost, pt, prec, batch, HEATMAP_PREDICTOR, name=labels[path])
                line.append(HeatCell(None, "", "") if pr is None else HeatCell(pr.inputs_per_s, pr.bound, pr.carrier))
            rows.append((labels[path], prec))
            cells.append(line)
        if rows:
            heatmaps.append(Heatmap(kind, [pt.label for pt in pts], rows, cells))
    return Level0Section(batch, HEATMAP_PREDICTOR, heatmaps, notes)


# -- roofline --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _WeightsAsStored:
    """A model cost whose weights stream as stored whatever datatype executes them: how the compute
    efficiency reads a row (`row_efficiencies` predicts with `weight_precision=stored`)."""

    cost: object

    @property
    def ops(self) -> float:
        return self.cost.ops

    def weight_bytes_at(self, precision: str | None = None) -> float:
        return self.cost.weight_bytes_at(None)


@dataclass(frozen=True)
class RooflineMark:
    """One measured row on its platform's roofline: compute throughput as attained TOP/s."""

    run_id: str
    label: str
    platform: str  # platform/mode label
    carrier: str  # the datatype whose peak is the ceiling
    precision: str  # the datatype that executed (what was predicted)
    batch: int  # the compute batch
    operational_intensity: float  # batch x ops / weight bytes as stored (ops/byte)
    measured_tops: float  # compute throughput x level-0 ops per input
    attainable_tops: float  # the roofline at this OI: min(peak, bandwidth x OI)
    peak_tops: float
    bandwidth_gbs: float
    bound: str
    efficiency: float  # measured / roofline
    note: str = ""


@dataclass
class RooflineSection:
    marks: list[RooflineMark]
    skipped: list[tuple[str, str, str]]  # (run id, row label, why it has no place on a roofline)


def roofline_section(results: Sequence[PointResult], catalog, default_mode: str | None,
                     analyse: Callable) -> RooflineSection:
    """Every ok row that `mlperf-ext efficiency` can place, with its point from `roofline_point`."""
    from tiers.level0.efficiency import row_efficiencies
    from tiers.level0.roofline import roofline_point

    marks, skipped = [], []
    for r in results:
        effs, skips = row_efficiencies([r.to_row()], catalog, default_mode=default_mode, analyse=analyse)
        if not effs:
            skipped.append((r.run_id or "", row_label(r), skips[0].reason if skips else "not placed"))
            continue
        e = effs[0]
        cost = analyse(str(r.point.model))
        pt = catalog.get(e.platform).point(e.mode or None)
        rp = roofline_point(_WeightsAsStored(cost), pt, e.precision, e.batch, name=e.model)
        if rp is None:  # row_efficiencies predicted it, so this cannot happen unless the two disagree
            skipped.append((r.run_id or "", row_label(r), f"no roofline point for {e.precision} on {pt.label}"))
            continue
        if not math.isfinite(rp.operational_intensity):
            skipped.append((r.run_id or "", row_label(r), "the model stores no weights: its operational intensity "
                                                         "is infinite (compute-bound at any batch)"))
            continue
        marks.append(RooflineMark(
            run_id=r.run_id or "", label=row_label(r), platform=pt.label, carrier=rp.carrier, precision=e.precision,
            batch=e.batch, operational_intensity=rp.operational_intensity,
            measured_tops=e.measured_fps * float(cost.ops) / 1e12, attainable_tops=rp.attainable_tops,
            peak_tops=rp.peak_tops, bandwidth_gbs=rp.memory_bandwidth_gbs, bound=rp.bound, efficiency=e.efficiency,
            note=e.note))
    return RooflineSection(marks, skipped)


# -- latency-throughput curves ---------------------------------------------------------------------
@dataclass(frozen=True)
class CurvePoint:
    batch: int
    run_id: str
    system_throughput: float | None  # LoadGen, samples/s
    system_p50_ms: float | None
    system_p90_ms: float | None
    system_p99_ms: float | None
    compute_throughput: float | None  # samples/s over all streams
    compute_mean_ms: float | None  # per execution of one batch on one stream
    compute_p90_ms: float | None


@dataclass
class Curve:
    label: str
    points: list[CurvePoint]  # by batch


@dataclass
class CurvesSection:
    curves: list[Curve]
    single_batch: int  # deployments measured at one batch only (no curve)


def _deployment_key(result: PointResult) -> str:
    """Everything that defines the point except its batch (and the watchdog, which is no setting)."""
    data = {k: v for k, v in result.point.to_dict().items() if k not in ("batch", "timeout_s")}
    return json.dumps(data, sort_keys=True, default=str)


def _curve_label(result: PointResult) -> str:
    p = result.point
    parts = [str(p.model_name), p.backend, p.scenario, f"threads {p.threads or 'auto'}", f"streams {p.streams}"]
    extras = [("device", p.device, "cpu"), ("exec", p.exec_precision, "model"), ("op mode", p.operating_mode, None),
              ("platform", p.platform, "host"), ("mode", p.mode, "performance")]
    parts += [f"{name} {value}" for name, value, default in extras if value and value != default]
    return " · ".join(parts)


def curves_section(results: Sequence[PointResult]) -> CurvesSection:
    """Ok rows of one deployment that differ only in batch, as one curve each (two batches or more)."""
    groups: dict[str, list[PointResult]] = {}
    for r in results:
        if r.point is not None:
            groups.setdefault(_deployment_key(r), []).append(r)
    curves, single, labels = [], 0, {}
    for rows in groups.values():
        if len({r.point.batch for r in rows}) < 2:
            single += 1
            continue
        label = _curve_label(rows[0])
        labels[label] = labels.get(label, 0) + 1
        if labels[label] > 1:  # the same names, other settings (user.conf, runtime options ...)
            label = f"{label} #{labels[label]}"
        pts = []
        for r in sorted(rows, key=lambda r: (r.point.batch, r.run_id or "")):
            s, c = r.system, r.compute
            pts.append(CurvePoint(
                batch=r.point.batch, run_id=r.run_id or "",
                system_throughput=s.throughput if s else None, system_p50_ms=s.lat_p50_ms if s else None,
                system_p90_ms=s.lat_p90_ms if s else None, system_p99_ms=s.lat_p99_ms if s else None,
                compute_throughput=c.throughput if c else None, compute_mean_ms=c.lat_mean_ms if c else None,
                compute_p90_ms=c.lat_p90_ms if c else None))
        curves.append(Curve(label, pts))
    return CurvesSection(curves, single)


# -- latency distributions -------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyStats:
    """A latency sample summarised for a box plot (ms); the fences are Tukey's (1.5 IQR, clamped to data)."""

    n: int
    mean_ms: float
    min_ms: float
    q1_ms: float
    median_ms: float
    q3_ms: float
    max_ms: float
    p90_ms: float
    p99_ms: float
    lower_fence_ms: float
    upper_fence_ms: float


def latency_stats(seconds: np.ndarray) -> LatencyStats:
    ms = np.asarray(seconds, dtype=np.float64).ravel() * 1e3
    q1, median, q3, p90, p99 = (float(v) for v in np.percentile(ms, [25, 50, 75, 90, 99]))
    iqr = q3 - q1
    inside = ms[(ms >= q1 - 1.5 * iqr) & (ms <= q3 + 1.5 * iqr)]
    return LatencyStats(n=int(ms.size), mean_ms=float(ms.mean()), min_ms=float(ms.min()), q1_ms=q1,
                        median_ms=median, q3_ms=q3, max_ms=float(ms.max()), p90_ms=p90, p99_ms=p99,
                        lower_fence_ms=float(inside.min()), upper_fence_ms=float(inside.max()))


@dataclass(frozen=True)
class LatencyBox:
    """One run's latency distributions: LoadGen's per sample (system) and the backend's per execution
    (compute); each None with the reason when the run directory holds no such file."""

    run_id: str
    label: str
    system: LatencyStats | None
    compute: LatencyStats | None
    system_note: str = ""
    compute_note: str = ""


@dataclass
class LatencySection:
    boxes: list[LatencyBox]


NO_SYSTEM_TRACE = "no per-sample system latencies: run with --loadgen-trace"


def _load_latencies(path: Path, missing: str) -> tuple[LatencyStats | None, str]:
    if not path.is_file():
        return None, missing
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        return None, f"{path.name} is not readable ({exc})"
    values = np.asarray(values, dtype=np.float64).ravel() if np.issubdtype(values.dtype, np.number) else None
    if values is None or values.size == 0 or not np.all(np.isfinite(values)):
        return None, f"{path.name} holds no finite latencies"
    return latency_stats(values), ""


def latency_section(results: Sequence[PointResult], workdir: Path) -> LatencySection:
    """The per-sample and per-execution latencies each ok row's run directory keeps (seconds on disk)."""
    from tiers.runner import layout

    boxes = []
    for r in results:
        run = layout.run_dir_of(workdir, r.run_id or "")
        system, system_note = _load_latencies(run / layout.SYSTEM_LATENCY_FILE, NO_SYSTEM_TRACE)
        compute, compute_note = _load_latencies(run / layout.COMPUTE_FILE,
                                                f"no compute latencies stored ({layout.COMPUTE_FILE} missing)")
        boxes.append(LatencyBox(r.run_id or "", row_label(r), system, compute, system_note, compute_note))
    return LatencySection(boxes)


# -- Pareto ----------------------------------------------------------------------------------------
@dataclass
class ImportedOverlay:
    """An imported QuTiBench CSV, as `mlperf-ext qutibench show` places it: its own frontiers."""

    name: str
    dialect: str
    rows: int
    report: object  # tiers.pareto.ParetoReport
    notes: list[str] = field(default_factory=list)


@dataclass
class ParetoSection:
    report: object  # tiers.pareto.ParetoReport of our rows
    imported: list[ImportedOverlay]
    notes: list[str] = field(default_factory=list)


#: the objectives an imported QuTiBench file has figures for (fps-comp, fps-system)
IMPORTED_OBJECTIVES = ("compute_throughput", "throughput")


def pareto_section(results: Sequence[PointResult], workdir: Path, catalog, options: ReportOptions,
                   analyse: Callable) -> ParetoSection:
    from tiers.pareto import DEFAULT_OBJECTIVES, pareto, pareto_of_results
    from tiers.qutibench import candidates_from_records, imported_tables

    objectives = tuple(dict.fromkeys((*DEFAULT_OBJECTIVES, "compute_throughput")))
    report = pareto_of_results(results, objectives, catalog=catalog, default_mode=options.platform_mode,
                               borrow_accuracy=options.borrow_accuracy, analyse=analyse)
    notes, imported = [], []
    try:
        tables = imported_tables(workdir)
    except MlperfExtError as exc:
        tables = []
        notes.append(f"an imported QuTiBench file is not readable: {exc}")
    for table in tables:
        overlay = pareto(candidates_from_records(table.records), IMPORTED_OBJECTIVES, level0=False)
        imported.append(ImportedOverlay(table.path.name, table.dialect, len(table.records), overlay,
                                        list(table.notes)))
    return ParetoSection(report, imported, notes)


# -- micro (levels 1-2) ----------------------------------------------------------------------------
@dataclass
class MicroSet:
    """The layers (or stacks) of one parent model measured on one backend at one Offline batch."""

    parent_model: str
    backend: str
    batch: int
    layers: list  # tiers.micro.analysis.LayerRow
    breakdown: list[tuple[str, float, float, int]]  # tiers.micro.analysis.op_type_breakdown
    notes: list[str] = field(default_factory=list)


@dataclass
class MicroSection:
    sets: list[MicroSet]
    rows: int  # micro rows in the store (any status)
    notes: list[str] = field(default_factory=list)


def _level_label(result: PointResult) -> str:
    """"1" for a layer, "2xN" for a stack of N layers (its op types are joined with '+')."""
    m = result.micro
    return "1" if m.level == 1 else f"2x{(m.op_type or '').count('+') + 1}"


def _io_bytes(path: str, batch: int) -> int:
    """Bytes of a model's graph inputs and outputs at `batch` (the cut's activations, as `Cut.activation_bytes`)."""
    import onnx
    from onnx import helper

    model = onnx.load(path, load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    total = 0
    for vi in [i for i in model.graph.input if i.name not in weights] + list(model.graph.output):
        tensor = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in tensor.shape.dim]
        if dims and not tensor.shape.dim[0].HasField("dim_value"):
            dims[0] = batch
        total += int(np.prod(dims, dtype=np.int64)) * np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).itemsize
    return total


def micro_section(results: Sequence[PointResult], catalog, default_mode: str | None,
                  analyse: Callable) -> MicroSection:
    """Per parent model, backend and batch: each layer's measured compute time at the Offline batch, its
    SingleStream p90, level 0 at the datatype that executed, and `op_type_breakdown` over them."""
    from tiers.level0.efficiency import row_efficiencies
    from tiers.micro.analysis import LayerRow, op_type_breakdown

    micro = [r for r in results if is_micro(r)]
    ok = [r for r in micro if r.status == "ok" and r.point is not None]
    single = {(r.micro.parent_model, r.point.backend, _level_label(r), r.micro.layer): r
              for r in ok if r.point.scenario == "SingleStream"}
    sets: dict[tuple[str, str, int], MicroSet] = {}
    unpredicted: dict[tuple[str, str, int], Counter] = {}
    for r in (r for r in ok if r.point.scenario == "Offline"):
        m, p = r.micro, r.point
        key = (m.parent_model or "", p.backend, p.batch)
        mset = sets.setdefault(key, MicroSet(key[0], p.backend, p.batch, [], []))
        try:
            cost = analyse(str(p.model))
            act = _io_bytes(str(p.model), p.batch)
        except (MlperfExtError, OSError, ValueError) as exc:
            mset.notes.append(f"{m.layer}: level 0 cannot read {p.model}: {str(exc).split('; fix:')[0]}")
            continue
        effs, skips = row_efficiencies([r.to_row()], catalog, default_mode=default_mode, analyse=analyse)
        measured = r.compute.lat_mean_ms if r.compute else None
        predicted = 1e3 * p.batch / effs[0].predicted_fps if effs else None
        if skips:
            unpredicted.setdefault(key, Counter())[skips[0].reason.split("; fix:")[0]] += 1
        ss = single.get((m.parent_model, p.backend, _level_label(r), m.layer))
        executed = (r.runtime.compute_dtype if r.runtime else None) or cost.stored_precision
        mset.layers.append(LayerRow(
            backend=p.backend, level=_level_label(r), name=m.layer or "", op_type=m.op_type or "",
            occurrences=int(m.occurrences or 1), ops=float(cost.ops), weight_bytes=float(cost.weight_bytes),
            activation_bytes=act, oi=p.batch * cost.ops / cost.weight_bytes if cost.weight_bytes else None,
            measured_ms=measured, system_p90_ms=ss.system.lat_p90_ms if ss and ss.system else None,
            predicted_ms=predicted, bound=effs[0].bound if effs else "",
            efficiency=predicted / measured if predicted and measured else None, executed=executed))
    for key, mset in sets.items():
        mset.breakdown = op_type_breakdown(mset.layers, mset.backend)
        for reason, n in unpredicted.get(key, Counter()).most_common():
            mset.notes.append(f"no level-0 prediction for {n} layer(s): {reason}")
    notes = []
    if ok and not sets:
        notes.append(f"{len(ok)} ok micro row(s) but none at Offline, where the per-layer compute time is measured")
    return MicroSection(list(sets.values()), len(micro), notes)


# -- the results table -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TableRow:
    run_id: str
    status: str
    cells: tuple[str, ...]  # the terminal table's cells, in RESULT_COLUMNS order
    why: tuple[str, ...]  # `mlperf_ext.tables.row_notes`: INVALID reasons, errors, flags, notes


@dataclass
class ResultsTable:
    headers: tuple[str, ...]
    rows: list[TableRow]
    caption: str


def results_table(results: Sequence[PointResult]) -> ResultsTable:
    from mlperf_ext.tables import CAPTION, RESULT_COLUMNS, row_notes

    rows = [TableRow(r.run_id or "", r.status, tuple(cell(r) for _h, cell, _j, _p in RESULT_COLUMNS),
                     tuple(row_notes(r, width=None))) for r in results]
    return ResultsTable(tuple(h for h, *_ in RESULT_COLUMNS), rows, CAPTION)


# -- everything ------------------------------------------------------------------------------------
@dataclass
class ReportData:
    workdir: Path
    generated_at: str  # UTC, ISO 8601
    version: str  # mlperf-ext's
    counts: dict[str, int]  # rows by status (the latest row per point)
    micro_rows: int
    level0: Level0Section
    roofline: RooflineSection
    curves: CurvesSection
    latency: LatencySection
    pareto: ParetoSection
    micro: MicroSection
    table: ResultsTable

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def read_results(workdir: Path) -> list[PointResult]:
    """The latest row of each point in the workdir's store; ConfigError when there is no store."""
    from mlperf_ext.store import STORE_NAME, ResultsStore

    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file, not a directory; fix: name the workdir of a run")
    if not (workdir / STORE_NAME).is_file():
        raise ConfigError(f"no results store in {workdir}; fix: run 'mlperf-ext run' first or pass the --workdir "
                          "of a run")
    return ResultsStore(workdir / STORE_NAME, create=False).results()


def collect(workdir: Path, options: ReportOptions | None = None) -> ReportData:
    """Every section's records for the workdir's store (ConfigError for a workdir without one)."""
    from mlperf_ext import __version__
    from mlperf_ext.tables import status_counts
    from tiers.level0.platforms import load_catalog
    from tiers.pareto import cached_analyser

    options = options or ReportOptions()
    if options.heatmap_batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {options.heatmap_batch}; fix: e.g. --batch 1")
    workdir = Path(workdir)
    results = read_results(workdir)
    catalog = load_catalog(list(options.platforms_files), workdir)
    analyse = cached_analyser()
    level3 = [r for r in results if not is_micro(r)]
    measured = [r for r in level3 if r.status == "ok" and r.point is not None]
    return ReportData(
        workdir=workdir, generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        version=__version__, counts=status_counts(results), micro_rows=len(results) - len(level3),
        level0=level0_section(level3, catalog, options.heatmap_batch, analyse),
        roofline=roofline_section(measured, catalog, options.platform_mode, analyse),
        curves=curves_section(measured),
        latency=latency_section(measured, workdir),
        pareto=pareto_section(level3, workdir, catalog, options, analyse),
        micro=micro_section(results, catalog, options.platform_mode, analyse),
        table=results_table(results))


__all__ = ["Curve", "CurvePoint", "CurvesSection", "HeatCell", "Heatmap", "ImportedOverlay", "LatencyBox",
           "LatencySection", "LatencyStats", "Level0Section", "MicroSection", "MicroSet", "NO_SYSTEM_TRACE",
           "ParetoSection", "ReportData", "ReportOptions", "ResultsTable", "RooflineMark", "RooflineSection",
           "TableRow", "collect", "is_micro", "latency_stats", "read_results", "row_label", "table_cell"]
