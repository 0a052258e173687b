"""QuTiBench's measured-data CSV: export our results in it, read a published file (or our export) back.

Why: people compare with the published QuTiBench results (Blott et al., ACM JETC 15(4) 2019) in the form
they were published in, so the export has exactly the columns, order and units of QuTiBench's measured
dataset, and a published file can be read into the same records and shown next to our rows.

The schema is the header of `_notebooks/data/cleaned_csv/experimental_data.csv` in
https://github.com/RCL-lab/QutibenchWeb (commit 66c3aaa), the file the site's notebooks
(`2020-04-30-Raw_Measurement.ipynb`) assemble from the per-task files `experimental_data_{mnist,cifar,
imagenet}.csv` and plot; 26 columns, with the leading space of " level" kept. Two other dialects of the
same data are read as well: `_notebooks/data/FAIR_data/experimental_data.csv` (23 columns: no
hw_peak_perf, hw_bandwidth, nn_total_operations; "level" without the space) and the contribution
template `_notebooks/data/data_template.csv` (18 columns: "Precision", "top1 [%]", "BasePWR [W]", ...).
Column meanings are those of `_notebooks/data/FAIR_data/Data-level_documentation_for_quantitive_data.txt`.

Units, checked against the published numbers (not only the labels):
* latencies in ms per query (a batch): lat-comp is batch x 1000 / fps-comp within 0.5 % for NCS2, the
  Edge TPU, the A53 and Bismo (median ratio 1.000 over the file), within a factor 2.5 for the TX2 rows;
* fps in images (samples) per second;
* tp-system / tp-comp in GOP/s = fps x GOPS / batch in every row (963 of 963 rows with both); the
  Raw-Measurement notebook relabels them "[TOP/sec]", but e.g. TX2-maxq GoogLeNetv1 at batch 128
  (fps-comp 187.846, GOPS 400.64) has tp-comp 587.96, which a 0.87 TOP/s TX2 can only reach in GOP/s;
* GOPS: GOPs per query = 2 x MACs per image x batch (the dictionary calls it "Giga operations per
  second"; MLP 12.5 % is 0.000669 at batch 1 and 0.001338 at batch 2); nn_total_operations: GOPs per
  image; hw_peak_perf TOP/s; hw_bandwidth GB/s (`_notebooks/scripts/script_add_columns.py`);
* top1, top5 in %; PruningFactor in % of the channels kept (100, 50, 25, 12.5); power in W.
Derived columns are rebuilt from the others exactly as the published rows have them (checked on all
974 rows): norm-lat-comp = lat-comp / the largest lat-comp of the same NN_Topology in the file;
datatype_model = Datatype_HWType (sic); tag = HWType_Datatype_NN_Topology_PruningFactor;
hw_datatype_prun_net = HWType_Datatype_<pruning>%_NN_Topology (12.50 %, 25 %: two decimals when not whole).

`MAPPING` says, per column, what our export writes there; the JSON sidecar written next to an export
repeats it and adds per row what the schema has no column for (run id, scenario, backend, device,
threads, streams, executed precision, LoadGen settings, host, versions).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlperf_ext.errors import ConfigError, MlperfExtError
from mlperf_ext.files import write_atomic
from mlperf_ext.result import PointResult
from tiers.pareto import (
    SIMULATED_SKIP,
    Candidate,
    cached_analyser,
    finite,
    is_simulated,
    level0_estimate,
    write_csv_atomic,
)

SCHEMA_SOURCE = ("https://github.com/RCL-lab/QutibenchWeb/blob/66c3aaa/_notebooks/data/cleaned_csv/"
                 "experimental_data.csv")
FORMAT = "mlperf-ext qutibench export"
FORMAT_VERSION = 1
#: where `qutibench import` keeps files inside a workdir (the report reads them from there)
IMPORT_DIR = "qutibench"


@dataclass(frozen=True)
class Column:
    """One column of QuTiBench's measured data: header (verbatim), record field, type, unit, meaning."""

    name: str
    attr: str
    kind: type  # str, int or float
    unit: str
    meaning: str  # QuTiBench's data dictionary (or what their numbers show)


COLUMNS: tuple[Column, ...] = (
    Column("NN_Topology", "nn_topology", str, "", "neural network topology"),
    Column("HWType", "hw_type", str, "", "hardware platform name"),
    Column("Datatype", "datatype", str, "", "datatype (FP32, FP16, INT8, INT4, INT2)"),
    Column("Op mode", "op_mode", str, "", "operation mode of the hardware platform"),
    Column("batch/thread/stream", "batch", int, "", "batch size fed to the neural network (or threads/streams)"),
    Column("lat-sys", "lat_sys_ms", float, "ms", "system latency, per query"),
    Column("lat-comp", "lat_comp_ms", float, "ms", "computing latency, per query"),
    Column("fps-system", "fps_system", float, "images/s", "frames per second of the entire system"),
    Column("fps-comp", "fps_comp", float, "images/s", "frames per second of computing"),
    Column("tp-system", "tp_system_gops", float, "GOP/s", "system throughput"),
    Column("tp-comp", "tp_comp_gops", float, "GOP/s", "computing throughput"),
    Column("top1", "top1_pct", float, "%", "top-1 accuracy"),
    Column("top5 [%]", "top5_pct", float, "%", "top-5 accuracy"),
    Column("Base_Pwr_W", "base_pwr_w", float, "W", "hardware base power consumption"),
    Column("Idle_Pwr_W", "idle_pwr_w", float, "W", "hardware idle power consumption"),
    Column("Full_Pwr_W", "full_pwr_w", float, "W", "hardware full power consumption"),
    Column("GOPS", "gops_per_query", float, "GOP/query", "operations of one query (per image x batch)"),
    Column("PruningFactor", "pruning_pct", float, "%", "pruning factor: % of the channels kept"),
    Column(" level", "level", str, "", "QuTiBench level: l0 theoretical, l1 compute only, l2 compute and data "
           "movements, l3 performance and accuracy"),
    Column("hw_peak_perf", "hw_peak_tops", float, "TOP/s", "platform peak at the datatype"),
    Column("hw_bandwidth", "hw_bandwidth_gbs", float, "GB/s", "platform memory bandwidth"),
    Column("nn_total_operations", "nn_gops", float, "GOP/image", "operations of one inference"),
    Column("hw_datatype_prun_net", "hw_datatype_prun_net", str, "", "HWType_Datatype_pruning%_NN_Topology"),
    Column("norm-lat-comp", "norm_lat_comp", float, "", "lat-comp / the largest lat-comp of the NN_Topology"),
    Column("datatype_model", "datatype_model", str, "", "Datatype_HWType"),
    Column("tag", "tag", str, "", "HWType_Datatype_NN_Topology_PruningFactor"),
)
HEADER: tuple[str, ...] = tuple(c.name for c in COLUMNS)
_BY_ATTR = {c.attr: c for c in COLUMNS}

#: the dialects read: header name -> record field (the cleaned dataset's header is the export's)
DIALECTS: dict[str, dict[str, str]] = {
    "cleaned": {c.name: c.attr for c in COLUMNS},
    "fair": {("level" if c.name == " level" else c.name): c.attr for c in COLUMNS
             if c.attr not in ("hw_peak_tops", "hw_bandwidth_gbs", "nn_gops")},
    "template": {"NN_Topology": "nn_topology", "HWType": "hw_type", "Precision": "datatype", "Op mode": "op_mode",
                 "batch/thread/stream": "batch", "lat-comp": "lat_comp_ms", "fps-system": "fps_system",
                 "fps-comp": "fps_comp", "tp-system": "tp_system_gops", "tp-comp": "tp_comp_gops",
                 "top1 [%]": "top1_pct", "top5 [%]": "top5_pct", "BasePWR [W]": "base_pwr_w",
                 "IdlePWR [W]": "idle_pwr_w", "FullPwr [W]": "full_pwr_w", "GOPS": "gops_per_query",
                 "PruningFactor": "pruning_pct", "level": "level"},
}
DIALECT_SOURCES = {
    "cleaned": SCHEMA_SOURCE,
    "fair": "https://github.com/RCL-lab/QutibenchWeb/blob/66c3aaa/_notebooks/data/FAIR_data/experimental_data.csv",
    "template": "https://github.com/RCL-lab/QutibenchWeb/blob/66c3aaa/_notebooks/data/data_template.csv",
}

#: what our export writes in each column (the mapping decisions; the sidecar repeats this)
MAPPING: dict[str, str] = {
    "NN_Topology": "variant.family (the zoo family, e.g. mlp; QuTiBench names the topology apart from its "
                   "precision and pruning), else point.model_name",
    "HWType": "point.platform-point.backend[-point.device unless cpu][-point.operating_mode]: QuTiBench's "
              "HWType names the board, the stack on it and the mode (ZCU104-FINN, ZCU104-DPU, TX2-maxn); our "
              "backend is that stack, so two backends on one platform stay apart",
    "Datatype": "variant.precision upper-cased (what the variant was quantised to, the key of QuTiBench's "
                "accuracy table), else runtime.compute_dtype; the datatype that executed is in the sidecar "
                "and sets hw_peak_perf",
    "Op mode": "point.operating_mode (empty when none)",
    "batch/thread/stream": "compute.batch, else point.batch (threads and streams are in the sidecar)",
    "lat-sys": "system.lat_mean_ms, LoadGen's mean query latency, for SingleStream, MultiStream and Server; "
               "empty for Offline, whose one query's latency is not a per-batch latency",
    "lat-comp": "compute.lat_mean_ms: one execution of the batch on one stream, inputs resident",
    "fps-system": "system.throughput (LoadGen, samples/s)",
    "fps-comp": "compute.throughput (samples/s over all streams)",
    "tp-system": "fps-system x nn_total_operations (GOP/s)",
    "tp-comp": "fps-comp x nn_total_operations (GOP/s)",
    "top1": "100 x accuracy.value",
    "top5 [%]": "empty: mlperf-ext scores top-1 only",
    "Base_Pwr_W": "empty: no base (accelerator unloaded) power is measured",
    "Idle_Pwr_W": "power.idle_w (the idle baseline before the point)",
    "Full_Pwr_W": "power.avg_w (average over LoadGen's power window)",
    "GOPS": "nn_total_operations x batch (GOP per query)",
    "PruningFactor": "100 x variant.pruning (the kept fraction of the widest model); empty when unknown",
    " level": "l3, or l1/l2 for a row that names its level (the micro tiers)",
    "hw_peak_perf": "platform catalog: peak TOP/s of the platform mode at the datatype that executed (its carrier)",
    "hw_bandwidth": "platform catalog: memory bandwidth of the platform mode, GB/s",
    "nn_total_operations": "level 0: 2 x MACs of Conv/Gemm/MatMul per sample / 1e9 (QuTiBench's convention; MLP "
                           "3x256 gives 0.000669 in both)",
    "hw_datatype_prun_net": "derived as in the published rows",
    "norm-lat-comp": "derived as in the published rows (over the exported file)",
    "datatype_model": "derived as in the published rows",
    "tag": "derived as in the published rows",
}


@dataclass(frozen=True)
class QutibenchRecord:
    """One row of QuTiBench's measured data, typed; None where the CSV cell is empty.

    Equality compares the schema's fields only: where a record came from (`source`, `line`) and our own
    identity of an exported row (`origin`, from the sidecar) are kept beside them."""

    nn_topology: str | None = None
    hw_type: str | None = None
    datatype: str | None = None
    op_mode: str | None = None
    batch: int | None = None
    lat_sys_ms: float | None = None
    lat_comp_ms: float | None = None
    fps_system: float | None = None
    fps_comp: float | None = None
    tp_system_gops: float | None = None
    tp_comp_gops: float | None = None
    top1_pct: float | None = None
    top5_pct: float | None = None
    base_pwr_w: float | None = None
    idle_pwr_w: float | None = None
    full_pwr_w: float | None = None
    gops_per_query: float | None = None
    pruning_pct: float | None = None
    level: str | None = None
    hw_peak_tops: float | None = None
    hw_bandwidth_gbs: float | None = None
    nn_gops: float | None = None
    hw_datatype_prun_net: str | None = None
    norm_lat_comp: float | None = None
    datatype_model: str | None = None
    tag: str | None = None
    source: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)
    origin: dict = field(default_factory=dict, compare=False, hash=False)

    def schema_values(self) -> dict[str, Any]:
        return {c.attr: getattr(self, c.attr) for c in COLUMNS}


# -- derived columns --------------------------------------------------------------------------------
def pruning_text(pct: float | None) -> str:
    """The pruning as hw_datatype_prun_net writes it: 100%, 25%, 12.50% (two decimals when not whole)."""
    if pct is None:
        return ""
    return f"{int(pct)}%" if float(pct).is_integer() else f"{pct:.2f}%"


def _text(value) -> str:
    return "" if value is None else str(value)


def with_derived(records: list[QutibenchRecord]) -> list[QutibenchRecord]:
    """The four derived columns rebuilt from the others, as QuTiBench's published rows have them."""
    longest: dict[str | None, float] = {}
    for r in records:
        if r.lat_comp_ms is not None:
            longest[r.nn_topology] = max(longest.get(r.nn_topology, 0.0), r.lat_comp_ms)
    out = []
    for r in records:
        top = longest.get(r.nn_topology)
        norm = r.lat_comp_ms / top if r.lat_comp_ms is not None and top else None
        hw, dt, net = _text(r.hw_type), _text(r.datatype), _text(r.nn_topology)
        out.append(replace(
            r, norm_lat_comp=norm, datatype_model=f"{dt}_{hw}",
            hw_datatype_prun_net=f"{hw}_{dt}_{pruning_text(r.pruning_pct)}_{net}",
            tag=f"{hw}_{dt}_{net}_{'' if r.pruning_pct is None else float(r.pruning_pct)}"))
    return out


# -- export ----------------------------------------------------------------------------------------
@dataclass
class Export:
    """The records of an export, what each row is in our terms (the sidecar's rows), and what was left out."""

    records: list[QutibenchRecord]
    rows: list[dict]
    skipped: list[dict]
    hosts: dict[str, dict]
    platforms: dict[str, dict]


def hw_type(result: PointResult) -> str:
    p = result.point
    parts = [p.platform or "host", p.backend]
    if p.device and p.device != "cpu":
        parts.append(p.device)
    if p.operating_mode:
        parts.append(p.operating_mode)
    return "-".join(parts) + (" (simulated)" if is_simulated(result) else "")


def _level(result: PointResult) -> str:
    level = getattr(result, "level", None)  # the micro tiers' column, where a result has it
    return f"l{level}" if level in (0, 1, 2, 3) else "l3"


def _times(a: float | None, b: float | None) -> float | None:
    return a * b if a is not None and b is not None else None


def _host_id(host: dict, hosts: dict[str, dict]) -> str | None:
    if not host:
        return None
    text = json.dumps(host, sort_keys=True, default=str)
    for key, known in hosts.items():
        if json.dumps(known, sort_keys=True, default=str) == text:
            return key
    key = f"host{len(hosts) + 1}"
    hosts[key] = host
    return key


def record_of(result: PointResult, catalog=None, default_mode: str | None = None,
              analyse=None) -> tuple[QutibenchRecord, dict]:
    """One stored ok result as a QuTiBench row (derived columns not yet filled) and its sidecar entry."""
    p, v = result.point, result.variant
    system, compute, power = result.system, result.compute, getattr(result, "power", None)
    analyse = analyse or cached_analyser()
    est = level0_estimate(result, catalog, default_mode, analyse) if catalog is not None else None
    try:
        gops = float(analyse(p.model).mac_ops) / 1e9 if Path(p.model).is_file() else None
    except MlperfExtError:
        gops = None
    batch = int((compute.batch if compute else None) or p.batch)
    label = (v.precision if v else None) or (result.runtime.compute_dtype if result.runtime else None)
    fps_sys = finite(system.throughput) if system else None
    fps_comp = finite(compute.throughput) if compute else None
    # QuTiBench's column is top-1: a detector's mAP is left out of it
    acc = finite(result.accuracy.value) if result.accuracy and result.accuracy.metric in (None, "top1") else None
    pruning = finite(v.pruning) if v else None
    record = QutibenchRecord(
        nn_topology=(v.family if v and v.family else None) or p.model_name,
        hw_type=hw_type(result), datatype=label.upper() if label else None, op_mode=p.operating_mode or None,
        batch=batch,
        lat_sys_ms=finite(system.lat_mean_ms) if system and p.scenario != "Offline" else None,
        lat_comp_ms=finite(compute.lat_mean_ms) if compute else None,
        fps_system=fps_sys, fps_comp=fps_comp,
        tp_system_gops=_times(fps_sys, gops), tp_comp_gops=_times(fps_comp, gops),
        top1_pct=100.0 * acc if acc is not None else None,
        idle_pwr_w=finite(getattr(power, "idle_w", None)), full_pwr_w=finite(getattr(power, "avg_w", None)),
        gops_per_query=_times(gops, float(batch)), pruning_pct=100.0 * pruning if pruning is not None else None,
        level=_level(result), hw_peak_tops=est.peak_tops if est else None,
        hw_bandwidth_gbs=est.bandwidth_gbs if est else None, nn_gops=gops)
    runtime = result.runtime
    entry = {
        "run_id": result.run_id, "point_key": result.point_key, "status": result.status, "scenario": p.scenario,
        "mode": p.mode, "profile": p.profile, "model": p.model, "model_name": p.model_name,
        "model_sha256": v.model_sha256 if v else None, "dataset": p.dataset, "dataset_sha256": result.dataset_sha256,
        "backend": p.backend, "device": p.device, "platform": p.platform, "operating_mode": p.operating_mode,
        "batch": p.batch, "compute_batch": compute.batch if compute else None, "threads": p.threads,
        "streams": p.streams, "exec_precision": p.exec_precision, "runtime_options": p.runtime_options,
        "variant_precision": v.precision if v else None,
        "executed_precision": runtime.precision if runtime else None,
        "compute_dtype": runtime.compute_dtype if runtime else None,
        "runtime": ({"name": runtime.name, "version": runtime.version, "providers": runtime.providers}
                    if runtime else None),
        "loadgen_valid": system.valid if system else None,
        "loadgen_settings": result.settings.effective if result.settings else {},
        "power_meter": getattr(power, "meter", None), "power_note": getattr(power, "note", None),
        "accuracy_line": result.accuracy.line if result.accuracy else None,
        "level0": {"mode": est.mode, "carrier": est.carrier, "note": est.note} if est else None,
        "versions": result.versions, "started_at": result.started_at, "flags": result.flags,
        "simulated": is_simulated(result),
    }
    return record, entry


def records_from_results(results, catalog=None, default_mode: str | None = None, analyse=None,
                         scenarios: tuple[str, ...] = (), include_simulated: bool = False) -> Export:
    """Every ok row (of the given scenarios) as a QuTiBench record; the others are listed as skipped, and so are
    simulated rows unless `include_simulated` (their HWType then says so)."""
    analyse = analyse or cached_analyser()
    records, rows, skipped, hosts, platforms = [], [], [], {}, {}
    for r in results:
        if scenarios and r.point is not None and r.point.scenario not in scenarios:
            continue
        if r.point is None or r.status != "ok":
            why = (r.error or "").splitlines()[0] if r.error else ""
            skipped.append({"run_id": r.run_id, "status": r.status,
                            "reason": (f"status {r.status}" + (f": {why}" if why else "")) if r.point is not None
                            else "no point stored"})
            continue
        if is_simulated(r) and not include_simulated:
            skipped.append({"run_id": r.run_id, "status": r.status, "reason": SIMULATED_SKIP})
            continue
        record, entry = record_of(r, catalog, default_mode, analyse)
        entry["host_id"] = _host_id(r.host, hosts)
        records.append(record)
        rows.append(entry)
        if catalog is not None and r.point.platform in catalog.names():
            pf = catalog.get(r.point.platform)
            platforms[pf.name] = {"kind": pf.kind, "peak_tops": pf.peak_tops, "memory_bandwidth_gbs":
                                  pf.memory_bandwidth_gbs, "modes": sorted(pf.modes), "source": pf.source}
    return Export(with_derived(records), rows, skipped, hosts, platforms)


def _cell(value, kind: type) -> str:
    """CSV text of a value: empty for None (and non-finite numbers); floats with repr (exact round trip)."""
    if value is None:
        return ""
    if kind is float:
        number = float(value)
        return repr(number) if math.isfinite(number) else ""
    return str(value)


def csv_rows(records: list[QutibenchRecord]) -> list[dict[str, str]]:
    return [{c.name: _cell(getattr(r, c.attr), c.kind) for c in COLUMNS} for r in records]


def sidecar_path(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(".json")


def _atomic_text(path: Path, text: str) -> None:
    write_atomic(path, text)


def sidecar(export: Export, settings: dict) -> dict:
    """The JSON metadata of an export: the schema's source, the mapping, the exporting host and software,
    the settings of the export, and per CSV row what the schema has no column for."""
    from mlperf_ext import __version__
    from mlperf_ext.host import host_metadata

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "schema": {"source": SCHEMA_SOURCE, "columns": list(HEADER),
                   "dictionary": "https://github.com/RCL-lab/QutibenchWeb/blob/66c3aaa/_notebooks/data/FAIR_data/"
                                 "Data-level_documentation_for_quantitive_data.txt"},
        "columns": {c.name: {"unit": c.unit, "meaning": c.meaning, "from": MAPPING[c.name]} for c in COLUMNS},
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "exporter": {"mlperf_ext": __version__, "host": host_metadata()},
        "settings": settings,
        "platforms": export.platforms,
        "hosts": export.hosts,
        "rows": export.rows,
        "skipped": export.skipped,
    }


def write_export(export: Export, path: Path, settings: dict | None = None) -> Path:
    """Write the CSV (QuTiBench's header, then the rows) and its JSON sidecar, each atomically; returns the
    sidecar's path."""
    path = Path(path)
    write_csv_atomic(path, HEADER, csv_rows(export.records))
    meta = sidecar_path(path)
    _atomic_text(meta, json.dumps(sidecar(export, settings or {}), indent=1, default=str) + "\n")
    return meta


# -- import ----------------------------------------------------------------------------------------
@dataclass
class ImportedTable:
    path: Path
    dialect: str
    records: list[QutibenchRecord]
    sidecar: dict | None  # our export's metadata, when the file is one of ours
    notes: list[str] = field(default_factory=list)


_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")


def _parse(text: str, column: Column, where: str):
    """A cell as the column's type; '' and NaN are None. A published file writes some numbers with a
    thousands separator inside quotes ("1,234.82" in lat-sys), which is read as the number."""
    text = text.strip()
    if column.kind is str:
        return text or None
    if not text or text.lower() in ("nan", "na", "none"):
        return None
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"{where}: column {column.name.strip()!r} holds {text!r}, not a number; fix: correct "
                          "the cell or leave it empty") from None
    if not math.isfinite(number):
        return None
    if column.kind is int:
        if not number.is_integer():
            raise ConfigError(f"{where}: column {column.name!r} holds {text!r}, not a whole number; fix: give "
                              "the batch (or threads, streams) as an integer")
        return int(number)
    return number


def dialect_of(header: list[str], path: Path) -> str:
    names = [h.lstrip("\ufeff") for h in header]
    for dialect, columns in DIALECTS.items():
        if set(names) == set(columns) and len(names) == len(columns):
            return dialect
    best = min(DIALECTS, key=lambda d: len(set(DIALECTS[d]) ^ set(names)))
    missing = [c for c in DIALECTS[best] if c not in names]
    extra = [c for c in names if c not in DIALECTS[best]]
    parts = ([f"missing {', '.join(repr(c) for c in missing)}"] if missing else []) + \
            ([f"unexpected {', '.join(repr(c) for c in extra)}"] if extra else [])
    raise ConfigError(f"{path} is not a QuTiBench measured-data CSV (closest: the {best} header; "
                      f"{'; '.join(parts)}); fix: use the header of {DIALECT_SOURCES[best]}")


def read_csv(path: Path) -> ImportedTable:
    """The records of a QuTiBench-format CSV (any of the three dialects) and, for our own export, its sidecar."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no file {path}; fix: name a QuTiBench CSV (e.g. experimental_data.csv)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise ConfigError(f"{path} is empty; fix: name a QuTiBench CSV with its header line")
            dialect = dialect_of(header, path)
            names = DIALECTS[dialect]
            records = []
            for number, cells in enumerate(reader, start=2):
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(header):
                    raise ConfigError(f"{path} line {number}: {len(cells)} cells under {len(header)} columns; fix: "
                                      "quote cells that hold commas, or repair the line")
                values = {}
                for name, text in zip(header, cells):
                    attr = names[name.lstrip("\ufeff")]
                    values[attr] = _parse(text, _BY_ATTR[attr], f"{path} line {number}")
                records.append(QutibenchRecord(**values, source=str(path), line=number))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason}); fix: save it as UTF-8 CSV") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc}); fix: check the path") from exc
    table = ImportedTable(path, dialect, records, None)
    _attach_sidecar(table)
    return table


def _attach_sidecar(table: ImportedTable) -> None:
    meta_path = sidecar_path(table.path)
    if not meta_path.is_file():
        return
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        table.notes.append(f"{meta_path.name} is not readable JSON ({exc}); read without it")
        return
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        table.notes.append(f"{meta_path.name} is not an mlperf-ext export sidecar; read without it")
        return
    rows = meta.get("rows") or []
    if len(rows) != len(table.records):
        raise ConfigError(f"{meta_path} describes {len(rows)} rows but {table.path.name} has {len(table.records)}; "
                          "fix: export again, or move the stale .json away")
    table.sidecar = meta
    table.records = [replace(r, origin=row) for r, row in zip(table.records, rows)]


def import_into(workdir: Path, path: Path, force: bool = False) -> Path:
    """Check a QuTiBench CSV and keep it (with its sidecar) under `<workdir>/qutibench/`, where the report
    reads it; an earlier import of another file by the same name is replaced only with `force`."""
    table = read_csv(path)
    target_dir = Path(workdir) / IMPORT_DIR
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {target_dir} ({exc.strerror or exc}); fix: pass a writable "
                          "--workdir") from exc
    target = target_dir / Path(path).name
    data = Path(path).read_text(encoding="utf-8-sig")
    if target.exists() and target.read_text(encoding="utf-8-sig") != data and not force:
        raise ConfigError(f"{target} already holds another file of that name; fix: rename the file or pass --force")
    _atomic_text(target, data)
    meta = sidecar_path(target)
    if table.sidecar is not None:
        _atomic_text(meta, sidecar_path(Path(path)).read_text(encoding="utf-8"))
    elif meta.exists():
        meta.unlink()  # a sidecar of an earlier file of this name does not describe this one
    return target


def imported_tables(workdir: Path) -> list[ImportedTable]:
    """Every QuTiBench CSV imported into a workdir, in name order."""
    folder = Path(workdir) / IMPORT_DIR
    return [read_csv(p) for p in sorted(folder.glob("*.csv"))] if folder.is_dir() else []


# -- next to our rows --------------------------------------------------------------------------------
NOT_IN_SCHEMA = "not in QuTiBench's schema"
#: the dataset each published topology was measured on: QuTiBench keeps one file per task
#: (`_notebooks/data/cleaned_csv/experimental_data_{mnist,cifar,imagenet}.csv` at 66c3aaa hold exactly
#: these topologies); the schema itself has no task column
PUBLISHED_TASKS = {"MLP": "MNIST", "CNV": "CIFAR-10", "GoogLeNetv1": "ImageNet", "MobileNetv1": "ImageNet",
                   "ResNet-50": "ImageNet", "ResNet-50v15": "ImageNet", "EfficientNet-S": "ImageNet",
                   "EfficientNet-M": "ImageNet", "EfficientNet-L": "ImageNet"}


def task_of(record: QutibenchRecord) -> str:
    """The dataset a row's accuracy is on: our export's sidecar says it; a published topology's task is
    known from QuTiBench's per-task files; otherwise unknown ("")."""
    return str(record.origin.get("dataset") or PUBLISHED_TASKS.get(record.nn_topology or "", ""))


def candidates_from_records(records: list[QutibenchRecord]) -> list[Candidate]:
    """QuTiBench rows as Pareto candidates, one group per HWType and task (QuTiBench's own Pareto plots
    are per hardware, one page per task): throughput = fps-system, compute throughput = fps-comp,
    power = Full_Pwr_W."""
    out = []
    for r in records:
        values = {"throughput": r.fps_system, "compute_throughput": r.fps_comp, "power": r.full_pwr_w,
                  "p90": None, "p99": None, "energy": None}
        names = {"throughput": "fps-system", "compute_throughput": "fps-comp", "power": "Full_Pwr_W"}
        missing = {k: (f"no {names[k]}" if k in names else NOT_IN_SCHEMA) for k, val in values.items() if val is None}
        prun = pruning_text(r.pruning_pct)
        out.append(Candidate(
            run_id=f"{Path(r.source).name}:{r.line}" if r.source else str(r.line or ""), point_key=r.tag or "",
            scenario="", platform=r.hw_type or "", dataset=task_of(r), backend="",
            model=f"{r.nn_topology or ''} {prun}".strip(), precision=r.datatype or "",
            deployment=str(r.batch or ""), operating_mode=r.op_mode or "",
            accuracy=r.top1_pct / 100.0 if r.top1_pct is not None else None, accuracy_source="",
            values=values, missing=missing, predicted=None, predicted_note="QuTiBench rows are not predicted here"))
    return out


def summary(records: list[QutibenchRecord]) -> list[dict]:
    """Per HWType: rows, topologies, datatypes, batches."""
    by: dict[str, list[QutibenchRecord]] = {}
    for r in records:
        by.setdefault(r.hw_type or "", []).append(r)
    return [{"hw_type": hw, "rows": len(rs),
             "topologies": sorted({r.nn_topology or "" for r in rs}),
             "datatypes": sorted({r.datatype or "" for r in rs}),
             "batches": sorted({r.batch for r in rs if r.batch is not None})} for hw, rs in sorted(by.items())]


__all__ = ["COLUMNS", "DIALECTS", "Export", "HEADER", "IMPORT_DIR", "ImportedTable", "MAPPING", "QutibenchRecord",
           "SCHEMA_SOURCE", "candidates_from_records", "import_into", "imported_tables", "read_csv",
           "record_of", "records_from_results", "sidecar_path", "with_derived", "write_export"]
