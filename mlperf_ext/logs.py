"""Read LoadGen's own logs (`mlperf_log_detail.txt`, `mlperf_log_summary.txt`) into one result record.

The detail log is the source of truth, as for MLCommons' submission checker
(`tools/submission/log_parser.py`): the first line must start with `:::MLLOG`, and the first
occurrence of each key wins. Every error and warning line is kept as well, because one error
(e.g. "Multiple conf files are used") is enough to make a run unfit for submission even when
LoadGen printed VALID. Key names and formats: LoadGen's loadgen/results.cc and logging.cc
(github.com/mlcommons/inference), checked against logs written by mlcommons-loadgen 6.0.17.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlperf_ext.errors import MlperfExtError

MLLOG_MARKER = ":::MLLOG"

DETAIL_NAME = "mlperf_log_detail.txt"
TRACE_NAME = "mlperf_log_trace.json"
SUMMARY_NAME = "mlperf_log_summary.txt"

#: the metric each scenario is ranked by (RESULT_FIELD_NEW in MLCommons' submission checker, tools/submission)
METRIC_KEYS = {
    "SingleStream": "early_stopping_latency_ss",  # ns, 90th-percentile early-stopping estimate
    "MultiStream": "early_stopping_latency_ms",  # ns, 99th-percentile early-stopping estimate
    "Server": "result_completed_samples_per_sec",
    "Offline": "result_samples_per_second",
}
#: metrics LoadGen writes as 0 when it had too few queries to estimate them (seen in 6.0.17 logs)
_ZERO_MEANS_MISSING = {"early_stopping_latency_ss", "early_stopping_latency_ms"}

#: detail-log key -> name in LoadGenResult.conditions
CONDITION_KEYS = {
    "result_min_duration_met": "min_duration_met",
    "result_min_queries_met": "min_queries_met",
    "early_stopping_met": "early_stopping_met",
    "result_perf_constraints_met": "perf_constraints_met",  # Server only
}
_CONDITION_TEXT = {
    "min_duration_met": "minimum duration not met",
    "min_queries_met": "minimum query/sample count not met",
    "early_stopping_met": "early-stopping condition not met",
    "perf_constraints_met": "latency constraint not met (target-percentile latency above the bound)",
}

_PERCENTILES = ("50.00", "90.00", "95.00", "97.00", "99.00", "99.90")


def _percentile_name(p: str) -> str:
    # "50.00" -> "p50", "99.90" -> "p99.9"
    return "p" + p.rstrip("0").rstrip(".")


class LogParseError(MlperfExtError):
    """A LoadGen log that is missing, empty, garbled, or inconsistent with its companion file."""


@dataclass
class LoadGenResult:
    """One LoadGen run as its logs report it. Latencies are in ns, throughputs in samples/s."""

    scenario: str
    mode: str
    loadgen_version: str
    #: LoadGen's verdict; None when the run produced no performance result (AccuracyOnly)
    valid: bool | None
    #: min_duration_met, min_queries_met, early_stopping_met, perf_constraints_met (Server only)
    conditions: dict[str, bool] = field(default_factory=dict)
    #: failed conditions in words, then LoadGen's own recommendation text (empty when valid)
    invalid_reasons: list[str] = field(default_factory=list)
    #: the scenario's ranking metric: SingleStream early_stopping_latency_ss (ns), MultiStream
    #: early_stopping_latency_ms (ns), Server result_completed_samples_per_sec, Offline
    #: result_samples_per_second
    metric_name: str = ""
    metric_value: float | None = None
    #: per-sample latency: min, max, mean, p50, p90, p95, p97, p99, p99.9
    latency_ns: dict[str, float] = field(default_factory=dict)
    #: MultiStream only: the same statistics per query (all samples of a query done)
    per_query_latency_ns: dict[str, float] = field(default_factory=dict)
    #: samples/s, one comparable number for every scenario (see `throughput_of`)
    throughput: float | None = None
    server_target_latency_ns: float | None = None
    server_target_qps: float | None = None
    samples_per_query: int | None = None
    #: every `effective_*` setting, without the prefix
    effective: dict[str, Any] = field(default_factory=dict)
    query_count: int | None = None
    #: query_count x samples_per_query (None without a performance result)
    sample_count: int | None = None
    #: `key: message` of each line LoadGen flagged is_error / is_warning, in log order
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: wall-clock start/end of the timed part, LoadGen's "MM-DD-YYYY HH:MM:SS.mmm" (power tier uses them)
    power_begin: str | None = None
    power_end: str | None = None
    #: parsed summary lines when the result came from parse_run_dir
    summary: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _read_text(path: Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise LogParseError(f"LoadGen {what} '{path}' does not exist; fix: point at the run directory "
                            "LoadGen wrote (create it before StartTest) or re-run the test")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LogParseError(f"cannot read LoadGen {what} '{path}' ({exc}); fix: re-run the test "
                            "to regenerate it") from exc
    if not text.strip():
        raise LogParseError(f"LoadGen {what} '{path}' is empty; fix: the run did not finish "
                            "(crash or timeout) - re-run it and check its stderr")
    return text


def read_detail_entries(path: Path) -> list[dict[str, Any]]:
    """All `:::MLLOG` entries of a detail log, in order (each the decoded JSON object)."""
    text = _read_text(path, "detail log")
    lines = text.splitlines()
    if not lines[0].startswith(MLLOG_MARKER):
        raise LogParseError(f"'{path}' is not a LoadGen detail log (first line does not start with "
                            f"'{MLLOG_MARKER}'); fix: pass mlperf_log_detail.txt as LoadGen wrote it")
    entries = []
    for no, line in enumerate(lines, start=1):
        if not line.startswith(MLLOG_MARKER):
            continue  # like MLCommons' parser: foreign lines are not LoadGen's
        try:
            entry = json.loads(line[len(MLLOG_MARKER):])
        except json.JSONDecodeError as exc:
            raise LogParseError(f"'{path}' line {no} is not valid :::MLLOG JSON ({exc.msg}); fix: the "
                                "log is truncated or edited - re-run the test") from exc
        if not isinstance(entry, dict) or "key" not in entry or "value" not in entry:
            raise LogParseError(f"'{path}' line {no} has no key/value; fix: the log is damaged - "
                                "re-run the test")
        entries.append(entry)
    return entries


def _first_values(entries: list[dict[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for e in entries:
        values.setdefault(e["key"], e["value"])
    return values


def _last_value(entries: list[dict[str, Any]], key: str) -> Any:
    return next((e["value"] for e in reversed(entries) if e["key"] == key), None)


def read_detail_values(path: Path) -> dict[str, Any]:
    """Each key's first value in a detail log (settings, counts and results as LoadGen logged them)."""
    return _first_values(read_detail_entries(path))


def _flagged(entries: list[dict[str, Any]], flag: str) -> list[str]:
    out = []
    for e in entries:
        meta = e.get("metadata")
        if isinstance(meta, dict) and meta.get(flag):
            out.append(f"{e['key']}: {e['value']}")
    return out


def _latency_stats(values: dict[str, Any], infix: str) -> dict[str, float]:
    """min/max/mean and the percentiles for `result_*_{infix}latency_ns` keys that are present."""
    stats: dict[str, float] = {}
    for name in ("min", "max", "mean"):
        v = values.get(f"result_{name}_{infix}latency_ns")
        if v is not None:
            stats[name] = float(v)
    per = "per_query_" if infix else ""
    for p in _PERCENTILES:
        v = values.get(f"result_{p}_percentile_{per}latency_ns")
        if v is not None:
            stats[_percentile_name(p)] = float(v)
    return stats


def throughput_of(scenario: str, values: dict[str, Any]) -> float | None:
    """Samples/s for any scenario, so rows of different scenarios share one column.

    SingleStream: LoadGen's `result_qps_without_loadgen_overhead` (= 1e9 / mean latency,
    results.cc), i.e. what the SUT sustains back-to-back without LoadGen's issue gap.
    MultiStream: samples_per_query x 1e9 / mean query latency (same idea per query).
    Server: `result_completed_samples_per_sec` (the checker's metric).
    Offline: `result_samples_per_second`.
    """
    if scenario == "SingleStream":
        v = values.get("result_qps_without_loadgen_overhead")
        if v is None and values.get("result_mean_latency_ns"):
            v = 1e9 / float(values["result_mean_latency_ns"])
        return None if v is None else float(v)
    if scenario == "MultiStream":
        mean = values.get("result_mean_query_latency_ns")
        spq = values.get("effective_samples_per_query")
        if not mean or spq is None:
            return None
        return float(spq) * 1e9 / float(mean)
    key = METRIC_KEYS.get(scenario)
    v = values.get(key) if key else None
    return None if v is None else float(v)


def _result_from_entries(path: Path, entries: list[dict[str, Any]]) -> LoadGenResult:
    values = _first_values(entries)
    for key in ("effective_scenario", "effective_test_mode"):
        if key not in values:
            raise LogParseError(f"'{path}' has no '{key}' entry; fix: the run stopped before LoadGen "
                                "logged its settings - re-run it and check its stderr")
    scenario = str(values["effective_scenario"])
    mode = str(values["effective_test_mode"])

    validity = values.get("result_validity")
    if validity is None:
        if mode != "AccuracyOnly":
            raise LogParseError(f"'{path}' ({scenario} {mode}) has no 'result_validity'; fix: the run "
                                "did not finish (crash, timeout or a sample never completed) - re-run it")
        valid = None
    elif validity in ("VALID", "INVALID"):
        valid = validity == "VALID"
    else:
        raise LogParseError(f"'{path}' has result_validity={validity!r}, expected VALID or INVALID; "
                            "fix: use a log written by mlcommons-loadgen")

    conditions = {name: bool(values[key]) for key, name in CONDITION_KEYS.items() if key in values}
    reasons: list[str] = []
    if valid is False:
        reasons = [_CONDITION_TEXT[name] for name, met in conditions.items() if not met]
        loadgen_reason = str(values.get("result_invalid_reason") or "").strip()
        if loadgen_reason:
            reasons.append(f"LoadGen: {loadgen_reason}")
        if not reasons:
            reasons.append("LoadGen reported INVALID without naming a failed condition")

    metric_name = METRIC_KEYS.get(scenario, "")
    metric_value = values.get(metric_name) if metric_name else None
    if metric_value is not None:
        metric_value = float(metric_value)
        if metric_name in _ZERO_MEANS_MISSING and metric_value == 0:
            metric_value = None

    effective = {k[len("effective_"):]: v for k, v in values.items() if k.startswith("effective_")}
    spq = effective.get("samples_per_query")
    qcount = values.get("result_query_count")
    is_server = scenario == "Server"

    return LoadGenResult(
        scenario=scenario,
        mode=mode,
        loadgen_version=str(values.get("loadgen_version", "")),
        valid=valid,
        conditions=conditions,
        invalid_reasons=reasons,
        metric_name=metric_name,
        metric_value=metric_value,
        latency_ns=_latency_stats(values, ""),
        per_query_latency_ns=_latency_stats(values, "query_") if scenario == "MultiStream" else {},
        throughput=throughput_of(scenario, values) if valid is not None else None,
        server_target_latency_ns=float(effective["target_latency_ns"])
        if is_server and "target_latency_ns" in effective else None,
        server_target_qps=float(effective["target_qps"]) if is_server and "target_qps" in effective else None,
        samples_per_query=int(spq) if spq is not None else None,
        effective=effective,
        query_count=int(qcount) if qcount is not None else None,
        sample_count=int(qcount) * int(spq) if qcount is not None and spq is not None else None,
        errors=_flagged(entries, "is_error"),
        warnings=_flagged(entries, "is_warning"),
        # the LAST window: a SubmissionRun logs the accuracy phase's first, then the performance phase's,
        # which is what the run's throughput (and so its power figures) belong to
        power_begin=_last_value(entries, "power_begin"),
        power_end=_last_value(entries, "power_end"),
    )


def parse_detail_log(path: Path) -> LoadGenResult:
    """The result record of one `mlperf_log_detail.txt`; LogParseError if it cannot be trusted."""
    path = Path(path)
    return _result_from_entries(path, read_detail_entries(path))


def parse_summary(path: Path) -> dict[str, str]:
    """`key : value` lines of `mlperf_log_summary.txt` as a dict (first occurrence wins).

    Bullet lines (` * text`) under a heading that ends in ':' ("Recommendations:", "Early
    Stopping Result:") are joined with newlines under that heading; bullets that themselves hold
    `key: value` are also stored as their own key. The closing warning/error count lines are
    stored under "warnings" and "errors".
    """
    path = Path(path)
    text = _read_text(path, "summary")
    out: dict[str, str] = {}
    section: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or set(line) == {"="}:
            section = None
            continue
        lower = line.lower()
        if lower.endswith("encountered during test.") or lower.endswith("see detailed log."):
            out.setdefault("errors" if "error" in lower else "warnings", line)
            continue
        if line.startswith("*"):
            bullet = line.lstrip("* ").strip()
            if section is not None:
                out[section] = f"{out[section]}\n{bullet}" if out[section] else bullet
            if ":" in bullet:
                k, v = bullet.split(":", 1)
                out.setdefault(k.strip(), v.strip())
            continue
        if ":" not in line:
            if section is not None and out[section]:
                out[section] += f" {line}"  # a bullet LoadGen wrapped onto the next line
            else:
                section = None
            continue
        k, v = (s.strip() for s in line.split(":", 1))
        if not v:
            section = k
            out.setdefault(k, "")
        else:
            section = None
            out.setdefault(k, v)
    if not out:
        raise LogParseError(f"'{path}' holds no LoadGen summary lines; fix: pass mlperf_log_summary.txt "
                            "as LoadGen wrote it, or re-run the test")
    return out


def parse_run_dir(run_dir: Path, prefix: str = "mlperf_log_", suffix: str = "") -> LoadGenResult:
    """Detail log of a LoadGen output directory, cross-checked against its summary.

    The summary's "Result is", "Scenario" and "Mode" must agree with the detail log; a
    disagreement means the two files come from different runs (e.g. a half-overwritten dir).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LogParseError(f"LoadGen run directory '{run_dir}' does not exist; fix: pass the "
                            "directory given to LogOutputSettings.outdir")
    detail_path = run_dir / f"{prefix}detail{suffix}.txt"
    summary_path = run_dir / f"{prefix}summary{suffix}.txt"
    result = parse_detail_log(detail_path)
    summary = parse_summary(summary_path)

    summary_validity = summary.get("Result is")
    detail_validity = None if result.valid is None else ("VALID" if result.valid else "INVALID")
    if summary_validity != detail_validity:
        raise LogParseError(f"'{summary_path}' says Result is {summary_validity!r} but '{detail_path}' "
                            f"says {detail_validity!r}; fix: the two logs come from different runs - "
                            "re-run the test into an empty directory")
    for key, have in (("Scenario", result.scenario), ("Mode", result.mode)):
        if key in summary and summary[key] != have:
            raise LogParseError(f"'{summary_path}' has {key} {summary[key]!r} but '{detail_path}' has "
                                f"{have!r}; fix: the two logs come from different runs - re-run the test "
                                "into an empty directory")
    result.summary = summary
    return result


__all__ = ["DETAIL_NAME", "LoadGenResult", "LogParseError", "METRIC_KEYS", "SUMMARY_NAME",
           "parse_detail_log", "parse_run_dir", "parse_summary", "read_detail_entries", "throughput_of"]


def trace_sample_latencies_ns(path: Path) -> list[int]:
    """Every sample's latency (ns from its query's scheduled time to completion) in LoadGen's trace log.

    LoadGen writes one "Sample" begin event per completed sample, its `complete_ns` being the latency
    its summary's percentiles are computed from (loadgen/loadgen.cc, ResponseDelegateDetailed::SampleComplete).
    The file as a whole is not valid JSON (its LogDetail events double-quote their keys: seen with
    mlcommons-loadgen 6.0.17), so the Sample events are read line by line; each is one JSON object."""
    text = _read_text(Path(path), "LoadGen trace log")
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith('{"name":"Sample"') or '"ph":"b"' not in line:
            continue
        try:
            out.append(int(json.loads(line.rstrip().rstrip(","))["args"]["complete_ns"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise LogParseError(f"'{path}' line {number} is not a LoadGen Sample event ({exc}); fix: keep the "
                                "trace log as LoadGen wrote it, or re-run with --loadgen-trace") from exc
    return out
