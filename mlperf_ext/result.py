"""What a point produced, as typed records: the one definition of a result.

The child process writes a `PointResult` as `result.json`; the parent completes it (identity, host,
integrity flags); the results store derives its columns from these dataclasses (`columns()`), writes a
result as one flat row (`to_row`) and reads it back (`from_row`); the tables read the typed fields.
Adding a column means adding a field here (or to `RunPoint`): nothing else lists columns.

Column names: a section's fields get the section's prefix (`sys_throughput`, `compute_lat_p90_ms`);
a field may name its column itself (`accuracy`). dicts and lists are stored as JSON text.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

from mlperf_ext.config import RunPoint
from mlperf_ext.power.metrics import PowerFigures

#: what became of a point. `invalid`: LoadGen ran it and judged it INVALID (stored with the reasons,
#: retried on a re-run); `refused`: it never ran (the backend or the data cannot run it, with why).
STATUSES = ("ok", "invalid", "failed", "refused", "timeout", "crashed")
#: compute drift (|after - before| / before) above which a row is marked noisy
NOISY_DRIFT = 0.10
#: the least tolerance of the system-above-compute check, where the compute windows agree more closely
MIN_TOLERANCE = 0.01


def column(default: Any = None, *, name: str | None = None, factory=None):
    """A result field; `name` overrides the column name the section prefix would give."""
    meta = {"column": name} if name else {}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def section(prefix: str):
    """A nested record whose fields become columns named `prefix + field`."""
    return field(default=None, metadata={"prefix": prefix})


@dataclass
class Variant:
    """The zoo's facts about the model file (absent for files the zoo did not build)."""

    family: str | None = None
    precision: str | None = None  # the variant's label (fp32, int8 ...); what executed is RuntimeInfo.precision
    pruning: float | None = None
    model_sha256: str | None = None


@dataclass
class MicroInfo:
    """What a level-1/2 benchmark is: a layer or a stack cut from a parent model (tiers/micro)."""

    level: int | None = None  # 1: a layer, 2: a stack of layers
    layer: str | None = None  # the cut's name
    op_type: str | None = None  # the layer's op type, or a stack's joined with '+'
    occurrences: int | None = None  # how often this layer (or stack) occurs in the parent model
    parent_model: str | None = None


@dataclass
class SystemFigures:
    """LoadGen's figures (query issue -> QuerySamplesComplete), read from its detail log."""

    valid: bool | None = None  # None: an accuracy-only run has no performance verdict
    conditions: dict = column(factory=dict)  # min_duration_met, min_queries_met, early_stopping_met, ...
    invalid_reasons: list[str] = column(factory=list)
    metric_name: str | None = None
    metric_value: float | None = None
    throughput: float | None = None  # samples/s, comparable across scenarios (logs.throughput_of)
    lat_mean_ms: float | None = None
    lat_p50_ms: float | None = None
    lat_p90_ms: float | None = None
    lat_p99_ms: float | None = None
    query_count: int | None = None
    sample_count: int | None = None
    errors: list[str] = column(factory=list)
    warning_count: int | None = None
    loadgen_version: str | None = None


@dataclass
class LoadGenSettings:
    """The TestSettings of the run: what LoadGen logged as effective, what was asked, what the harness filled."""

    effective: dict = column(factory=dict)
    requested: dict = column(factory=dict)
    auto: dict = column(factory=dict)  # hints the harness derived because the user set none
    user_conf_notes: list[str] = column(factory=list)  # user.conf lines this run's scenario does not read


@dataclass
class ComputeFigures:
    """The backend's pure execution with inputs resident, at the point's deployment (all streams at once).

    Latencies are per execution of `batch` samples on one stream; `throughput` is samples/s over all
    streams running concurrently: the median of the timing windows of both measurements (before and
    after the LoadGen run), `spread` their range over that median, `drift` compares the two measurements'
    own medians (tiers/runner/compute.py).
    """

    batch: int | None = None
    streams: int | None = None
    lat_mean_ms: float | None = None
    lat_p50_ms: float | None = None
    lat_p90_ms: float | None = None
    lat_p99_ms: float | None = None
    lat_min_ms: float | None = None
    lat_max_ms: float | None = None
    executions: int | None = None
    throughput: float | None = None
    spread: float | None = None  # (fastest - slowest window) / throughput: the figure's own noise
    window_throughputs: list = column(factory=list)  # samples/s of every window, before then after
    before_throughput: float | None = None
    after_throughput: float | None = None
    drift: float | None = None  # |after - before| / before


@dataclass
class AccuracyFigures:
    """The task's score of the accuracy log, as MLPerf's accuracy script for that task scores it."""

    value: float | None = column(name="accuracy")
    good: int | None = None
    total: int | None = None
    line: str | None = None  # the script's line: accuracy=XX.XXX%, good=N, total=M (top1); mAP=XX.XXX% (mAP)
    metric: str | None = None  # what value is: top1 | mAP (None: top1, rows stored before tasks existed)


@dataclass
class RuntimeInfo:
    """What really ran, read back from the runtime (a silent fallback cannot hide here)."""

    name: str | None = None
    version: str | None = None
    device: str | None = None
    providers: list[str] = column(factory=list)
    settings: dict = column(factory=dict)
    precision: str | None = None  # what executed, e.g. "int8", "fp32 (fp16 weights upcast)"
    compute_dtype: str | None = None  # the datatype level 0 predicts against (fp32, bf16, int8 ...)
    notes: list[str] = column(factory=list)
    #: timings from a stand-in for hardware (FakePynqBoard): left out of Pareto frontiers and the QuTiBench
    #: export unless asked for (--include-simulated), and marked where shown
    simulated: bool = False


@dataclass
class TokenFigures:
    """A generation run's figures (task llm). System: LoadGen's time to first token, time per output token and
    tokens per second (Offline reports tokens per second only). Compute: the two steps a decoder repeats, each
    with its inputs resident, at the point's batch and streams: a prefill of the batch's prompts and one decode
    step with the cache at the middle of generation (median ms per execution)."""

    ttft_mean_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p90_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_mean_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p90_ms: float | None = None
    tpot_p99_ms: float | None = None
    tokens_per_s: float | None = None
    prefill_ms: float | None = None
    decode_step_ms: float | None = None
    decode_tokens_per_s: float | None = None  # compute: the batch's tokens per decode step over its time, all streams
    prompt_tokens: int | None = None
    decode_context: int | None = None  # cache length the decode step was timed at


@dataclass
class DispatchFigures:
    """The batches the scenario's dispatcher actually formed."""

    batches: int | None = None
    samples: int | None = None
    batch_sizes: dict = column(factory=dict)  # size -> how many batches had it
    impl: str | None = None  # the dispatcher that ran: native (the C++ SUT) or python
    impl_note: str | None = None  # why the Python dispatcher ran where the native one would have


@dataclass
class ModeState:
    """The operating mode as applied: the catalog's actions, and the state read back after applying them."""

    actions: dict = column(factory=dict)
    applied: dict = column(factory=dict)


@dataclass
class ServerSearch:
    """How a Server target was found when the user set none: short runs bisecting target_qps."""

    target_qps: float | None = None
    trace: list[dict] = column(factory=list)  # one probe each: target_qps, valid, reasons, p99_ms, run_dir
    note: str | None = None


@dataclass
class PointResult:
    """One point's record: the resolved point, what it produced, and where its evidence lies."""

    point_key: str | None = None
    run_id: str | None = None
    status: str = "failed"
    error: str | None = None
    flags: dict = column(factory=dict)  # integrity problems: code -> what is wrong (see check_integrity)
    notes: list[str] = column(factory=list)  # facts about the run a reader should know (retries, caps)
    compliant: bool | None = None  # the audit checker's verdict; None until it has checked the run
    callback_errors: int | None = None
    retry_of: str | None = None  # run id of the INVALID run this one repeats with a corrected hint
    point: RunPoint | None = section("")
    variant: Variant | None = section("")
    micro: MicroInfo | None = section("")
    system: SystemFigures | None = section("sys_")
    settings: LoadGenSettings | None = section("settings_")
    compute: ComputeFigures | None = section("compute_")
    accuracy: AccuracyFigures | None = section("accuracy_")
    runtime: RuntimeInfo | None = section("runtime_")
    dispatch: DispatchFigures | None = section("dispatch_")
    tokens: TokenFigures | None = section("tokens_")
    search: ServerSearch | None = section("search_")
    mode: ModeState | None = section("mode_")
    power: PowerFigures | None = section("power_")
    dataset_sha256: str | None = None
    versions: dict = column(factory=dict)  # distributions whose versions are part of the point key
    host: dict = column(factory=dict)  # pyperf-style environment metadata
    started_at: str | None = None
    finished_at: str | None = None
    elapsed_s: float | None = None
    run_dir: str | None = None

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str)

    @classmethod
    def from_dict(cls, data: dict) -> PointResult:
        return _build(cls, data)

    def to_row(self) -> dict:
        """One flat store row: column -> value (JSON text for dicts and lists)."""
        row: dict[str, Any] = {}
        for name, (_kind, path, is_json) in _column_map().items():
            value = _get(self, path)
            if is_json and value is not None:
                value = json.dumps(value, sort_keys=True, default=str)
            elif isinstance(value, bool):
                value = int(value)
            row[name] = value
        return row

    @classmethod
    def from_row(cls, row: dict) -> PointResult:
        """The typed result of a store row (columns it lacks are left at their defaults)."""
        nested: dict[str, Any] = {}
        for name, (_kind, path, is_json) in _column_map().items():
            if name not in row or row[name] is None:
                continue
            value = row[name]
            if is_json and isinstance(value, str):
                value = json.loads(value)
            target = nested
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
        return _build(cls, nested)

    # -- derived facts ------------------------------------------------------------------------
    def check_integrity(self) -> None:
        """Flag figures that contradict each other; they are stored and shown, never dropped."""
        sys_t = self.system.throughput if self.system else None
        comp = self.compute
        if sys_t and comp and comp.throughput:
            # the compute figure shown, with the tolerance its own windows give: a system rate within the
            # compute windows' range is one the host produced by chance, not a boundary that left work out
            tolerance = max(comp.spread or 0.0, MIN_TOLERANCE)
            if sys_t > comp.throughput * (1 + tolerance):
                windows = len(comp.window_throughputs)
                self.flags["system_above_compute"] = (
                    f"system {sys_t:,.0f}/s exceeds compute {comp.throughput:,.0f}/s"
                    + (f" (median of {windows} windows)" if windows else "")
                    + f" by {100 * (sys_t / comp.throughput - 1):.0f} %, more than the compute windows' spread "
                    f"({100 * tolerance:.0f} %): the compute timing did not cover what the system ran")
        if comp and comp.drift is not None and comp.drift > NOISY_DRIFT:
            self.flags["noisy"] = (f"compute throughput moved {100 * comp.drift:.0f} % between before and after "
                                   f"the LoadGen run ({comp.before_throughput:,.0f} -> {comp.after_throughput:,.0f}/s)")


def _optional_args(hint) -> tuple:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(a for a in typing.get_args(hint) if a is not type(None))
    return (hint,)


def _base(hint):
    args = _optional_args(hint)
    return typing.get_origin(args[0]) or args[0]


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _is_record(kind) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


@cache
def _column_map() -> dict[str, tuple[str, tuple[str, ...], bool]]:
    """column -> (SQLite type, attribute path, stored as JSON); in the order of the fields."""
    out: dict[str, tuple[str, tuple[str, ...], bool]] = {}

    def walk(cls, prefix: str, path: tuple[str, ...]) -> None:
        hints = _hints(cls)
        for f in fields(cls):
            kind = _base(hints[f.name])
            if _is_record(kind):
                walk(kind, prefix + f.metadata.get("prefix", ""), (*path, f.name))
                continue
            name = f.metadata.get("column") or prefix + f.name
            if name in out:
                raise TypeError(f"result column {name!r} is defined twice")
            is_json = kind in (dict, list)
            sql = "INTEGER" if kind in (int, bool) else "REAL" if kind is float else "TEXT"
            out[name] = (sql, (*path, f.name), is_json)

    walk(PointResult, "", ())
    return out


def columns() -> dict[str, str]:
    """Store columns in table order: name -> SQLite type."""
    return {name: spec[0] for name, spec in _column_map().items()}


def json_columns() -> tuple[str, ...]:
    return tuple(name for name, spec in _column_map().items() if spec[2])


def _get(obj, path: tuple[str, ...]):
    for part in path:
        if obj is None:
            return None
        obj = getattr(obj, part)
    return obj


def _build(cls, data: dict):
    """An instance of the dataclass `cls` from nested plain data (unknown keys are ignored)."""
    hints = _hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = _base(hints[f.name])
        if _is_record(kind) and isinstance(value, dict):
            value = RunPoint.from_dict(value) if kind is RunPoint else _build(kind, value)
        elif kind is bool and value is not None:
            value = bool(value)
        kwargs[f.name] = value
    return cls(**kwargs)


__all__ = ["AccuracyFigures", "ComputeFigures", "DispatchFigures", "LoadGenSettings", "MicroInfo", "ModeState", "TokenFigures",
           "NOISY_DRIFT",
           "PointResult",
           "RuntimeInfo", "STATUSES", "ServerSearch", "SystemFigures", "Variant", "columns", "json_columns"]
