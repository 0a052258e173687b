"""Read one LoadGen run's logs for the checker, turning every way they can be unusable into a problem.

The parsing itself is mlperf_ext.logs (the project's one LoadGen log parser); this module adds what
a checker must not take on trust: a detail log cut off mid-line or before LoadGen's last entry, a
summary that reports other figures than its detail log, and a detail log whose figures contradict
each other (LoadGen derives several of them from the same latencies: loadgen/results.cc).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.checker.problems import Problem, problem
from mlperf_ext.logs import (
    DETAIL_NAME,
    MLLOG_MARKER,
    SUMMARY_NAME,
    LoadGenResult,
    LogParseError,
    parse_detail_log,
    parse_summary,
    read_detail_entries,
)

#: the entry LoadGen writes last (results.cc for a performance result; loadgen.cc's power_end interval
#: for an accuracy-only run), checked against mlcommons-loadgen 6.0.17 logs
_LAST_KEY = {"AccuracyOnly": "power_end"}
_LAST_KEY_DEFAULT = "num_errors"


@dataclass
class RunLogs:
    """One run's detail log (first value of each key, the parsed result) and its summary."""

    detail_path: Path
    summary_path: Path
    values: dict[str, Any]
    result: LoadGenResult
    summary: dict[str, str] | None = None
    error_lines: list[str] = field(default_factory=list)


def _broken_line(text: str) -> int | None:
    """1-based number of the first :::MLLOG line that is not a JSON object, or None."""
    for no, line in enumerate(text.splitlines(), start=1):
        if line.startswith(MLLOG_MARKER):
            try:
                entry = json.loads(line[len(MLLOG_MARKER) :])
            except json.JSONDecodeError:
                return no
            if not isinstance(entry, dict) or "key" not in entry or "value" not in entry:
                return no
    return None


def load_run(run_dir: Path) -> tuple[RunLogs | None, list[Problem]]:
    """The run's logs, or None with the problems that make them unusable; summary problems are
    returned alongside usable detail logs."""
    run_dir = Path(run_dir)
    detail = run_dir / DETAIL_NAME
    summary_path = run_dir / SUMMARY_NAME
    try:
        entries = read_detail_entries(detail)
    except LogParseError as exc:
        text = detail.read_text(encoding="utf-8", errors="replace") if detail.is_file() else ""
        bad = _broken_line(text) if text.startswith(MLLOG_MARKER) else None
        if bad is not None and bad == len(text.splitlines()) and not text.endswith("\n"):
            return None, [
                problem(
                    detail,
                    "detail_log_truncated",
                    f"the detail log is cut off in line {bad} (not valid :::MLLOG JSON, no newline)",
                )
            ]
        return None, [problem(detail, "detail_log_corrupt", str(exc))]
    values: dict[str, Any] = {}
    for e in entries:
        values.setdefault(e["key"], e["value"])
    mode = str(values.get("effective_test_mode", ""))
    last = _LAST_KEY.get(mode, _LAST_KEY_DEFAULT)
    if not mode or last not in values:
        what = f"'{last}'" if mode else "'effective_test_mode'"
        return None, [
            problem(
                detail,
                "detail_log_truncated",
                f"the detail log ends after {len(entries)} entries without {what}, which LoadGen "
                "writes at the end of a run",
            )
        ]
    try:
        result = parse_detail_log(detail)
    except LogParseError as exc:
        return None, [problem(detail, "detail_log_corrupt", str(exc))]
    errors = [
        f"{e['key']}: {e['value']}"
        for e in entries
        if isinstance(e.get("metadata"), dict) and e["metadata"].get("is_error")
    ]
    logs = RunLogs(detail, summary_path, values, result, error_lines=errors)
    problems: list[Problem] = []
    try:
        logs.summary = parse_summary(summary_path)
    except LogParseError as exc:
        problems.append(problem(summary_path, "summary_corrupt", str(exc)))
    return logs, problems


# ---------------------------------------------------------------- summary against detail

#: summary "key : value" lines -> the detail key LoadGen printed them from (loadgen/results.cc)
_SUMMARY_TO_DETAIL = {
    "Scenario": "effective_scenario",
    "Mode": "effective_test_mode",
    "Result is": "result_validity",
    "SUT name": "sut_name",
    "Min duration satisfied": "result_min_duration_met",
    "Min queries satisfied": "result_min_queries_met",
    "Early stopping satisfied": "early_stopping_met",
    "Performance constraints satisfied": "result_perf_constraints_met",
    "Completed samples per second": "result_completed_samples_per_sec",
    "Scheduled samples per second": "result_scheduled_samples_per_sec",
    "Samples per second": "result_samples_per_second",
    "QPS w/ loadgen overhead": "result_qps_with_loadgen_overhead",
    "QPS w/o loadgen overhead": "result_qps_without_loadgen_overhead",
    "Early stopping 90.0th percentile estimate": "early_stopping_latency_ss",
    "Early stopping 99.0th percentile estimate": "early_stopping_latency_ms",
    "samples_per_query": "effective_samples_per_query",
    "target_qps": "effective_target_qps",
    "target_latency (ns)": "effective_target_latency_ns",
    "max_async_queries": "effective_max_async_queries",
    "min_duration (ms)": "effective_min_duration_ms",
    "max_duration (ms)": "effective_max_duration_ms",
    "min_query_count": "effective_min_query_count",
    "max_query_count": "effective_max_query_count",
    "qsl_rng_seed": "effective_qsl_rng_seed",
    "sample_index_rng_seed": "effective_sample_index_rng_seed",
    "schedule_rng_seed": "effective_schedule_rng_seed",
    "accuracy_log_rng_seed": "effective_accuracy_log_rng_seed",
    "accuracy_log_probability": "effective_accuracy_log_probability",
    "accuracy_log_sampling_target": "effective_accuracy_log_sampling_target",
    "print_timestamps": "effective_print_timestamps",
    "performance_issue_unique": "effective_performance_issue_unique",
    "performance_issue_same": "effective_performance_issue_same",
    "performance_issue_same_index": "effective_performance_issue_same_index",
    "performance_sample_count": "effective_performance_sample_count",
    "accuracy_sample_count": "effective_accuracy_sample_count",
}
_STAT_NAMES = {"Min": "min", "Max": "max", "Mean": "mean"}
_TARGET_PCT = re.compile(r"^(\d+(?:\.\d+)?)th percentile latency \(ns\)$")
_STAT_PCT = re.compile(r"^(\d+\.\d+) percentile latency \(ns\)$")
_PROCESSED = re.compile(r"Processed at least \d+ queries \((\d+)\)")
_COUNT_LINE = re.compile(r"^(No|\d+) (warning|error)", re.IGNORECASE)


def _stat_key(summary_key: str, scenario: str) -> str | None:
    """Detail key of a summary latency line ("Mean latency (ns)", "90.0th percentile latency (ns)")."""
    per_query = scenario == "MultiStream"  # its summary prints per-query statistics
    for word, name in _STAT_NAMES.items():
        if summary_key == f"{word} latency (ns)":
            return f"result_{name}_query_latency_ns" if per_query else f"result_{name}_latency_ns"
    match = _STAT_PCT.match(summary_key) or _TARGET_PCT.match(summary_key)
    if match:
        pct = f"{float(match.group(1)):.2f}"
        return (
            f"result_{pct}_percentile_per_query_latency_ns"
            if per_query
            else f"result_{pct}_percentile_latency_ns"
        )
    return None


def _same(text: str, value: Any) -> bool:
    """A summary value against the detail value it was printed from (print rounding allowed)."""
    text = text.strip()
    if isinstance(value, bool):
        return text in (str(int(value)), str(value).lower(), "Yes" if value else "NO")
    if isinstance(value, int) and re.fullmatch(r"-?\d+", text):
        return int(text) == value
    if isinstance(value, (int, float)):
        try:
            number = float(text)
        except ValueError:
            return False
        return math.isclose(number, float(value), rel_tol=1e-4, abs_tol=0.01)
    return text == str(value).strip()


def _count_of(line: str) -> int | None:
    match = _COUNT_LINE.match(line)
    if not match:
        return None
    return 0 if match.group(1) == "No" else int(match.group(1))


def summary_problems(logs: RunLogs) -> list[Problem]:
    """Every summary figure must be the detail log's (LoadGen prints both from the same values)."""
    if logs.summary is None:
        return []
    summary, values, scenario = logs.summary, logs.values, logs.result.scenario
    out = []

    def differs(what: str, shown: str, logged: Any) -> None:
        out.append(
            problem(
                logs.summary_path,
                "summary_disagrees",
                f"summary says {what} = {shown!r} but {logs.detail_path.name} says {logged!r}",
            )
        )

    for key, shown in summary.items():
        detail_key = _SUMMARY_TO_DETAIL.get(key) or _stat_key(key, scenario)
        if detail_key is None or detail_key not in values:
            continue
        if not _same(shown, values[detail_key]):
            differs(key, shown, values[detail_key])
    if logs.result.mode != "AccuracyOnly":
        for key in ("Scenario", "Mode", "Result is"):
            if key not in summary:
                out.append(
                    problem(
                        logs.summary_path,
                        "summary_disagrees",
                        f"summary has no '{key}' line, which LoadGen always prints for a performance run",
                    )
                )
        processed = _PROCESSED.search(summary.get("Early Stopping Result", ""))
        if (
            processed
            and "result_query_count" in values
            and int(processed.group(1)) != values["result_query_count"]
        ):
            differs("queries processed", processed.group(1), values["result_query_count"])
    for key, count in (("errors", len(logs.error_lines)), ("warnings", len(logs.result.warnings))):
        line = summary.get(key)
        shown = _count_of(line) if line else None
        if line is not None and shown != count:
            differs(f"the number of {key}", line, count)
    return out


# ---------------------------------------------------------------- detail log against itself


def _num(values: dict[str, Any], key: str) -> float | None:
    v = values.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def consistency_problems(logs: RunLogs) -> list[Problem]:
    """Figures LoadGen derives from one another must agree (results.cc), so one edited figure shows."""
    values, r, path = logs.values, logs.result, logs.detail_path
    out: list[str] = []
    logged_errors = values.get("num_errors")
    if isinstance(logged_errors, int) and logged_errors != len(logs.error_lines):
        out.append(f"num_errors is {logged_errors} but the log has {len(logs.error_lines)} error lines")
    if r.mode == "AccuracyOnly" or r.valid is None:
        return [problem(path, "detail_inconsistent", m) for m in out]
    if r.valid and not all(r.conditions.values()):
        failed = ", ".join(k for k, v in r.conditions.items() if not v)
        out.append(f"result_validity is VALID although {failed} is false")
    stats = r.per_query_latency_ns if r.scenario == "MultiStream" else r.latency_ns
    order = [k for k in ("min", "p50", "p90", "p95", "p97", "p99", "p99.9", "max") if k in stats]
    for lo, hi in zip(order, order[1:]):
        if stats[lo] > stats[hi]:
            out.append(f"latency {lo} ({stats[lo]:.0f} ns) is above {hi} ({stats[hi]:.0f} ns)")
    if (
        "mean" in stats
        and "min" in stats
        and "max" in stats
        and not stats["min"] <= stats["mean"] <= stats["max"]
    ):
        out.append(f"mean latency {stats['mean']:.0f} ns lies outside [min, max]")
    spq = _num(values, "effective_samples_per_query")
    if r.scenario == "Offline":
        rate, longest = _num(values, "result_samples_per_second"), stats.get("max")
        if rate and longest and spq:
            expected = spq * (r.query_count or 1) / (longest * 1e-9)
            if not math.isclose(rate, expected, rel_tol=2e-3, abs_tol=0.01):
                out.append(
                    f"result_samples_per_second {rate} is not samples/longest latency = {expected:.2f}"
                )
        min_duration = _num(values, "effective_min_duration_ms")
        met = r.conditions.get("min_duration_met")
        if (
            longest
            and min_duration is not None
            and met is not None
            and met != (longest >= min_duration * 1e6)
        ):
            out.append(
                f"result_min_duration_met is {met} but the run lasted {longest * 1e-6:.1f} ms "
                f"against min_duration {min_duration:.0f} ms"
            )
    if r.scenario == "SingleStream":
        qps, mean = _num(values, "result_qps_without_loadgen_overhead"), stats.get("mean")
        if qps and mean and not math.isclose(qps, 1e9 / mean, rel_tol=2e-3, abs_tol=0.01):
            out.append(
                f"result_qps_without_loadgen_overhead {qps} is not 1e9 / mean latency = {1e9 / mean:.2f}"
            )
    if r.scenario == "Server":
        done, scheduled = (
            _num(values, "result_completed_samples_per_sec"),
            _num(values, "result_scheduled_samples_per_sec"),
        )
        if done and scheduled and done > scheduled * 1.001 + 0.01:
            out.append(
                f"result_completed_samples_per_sec {done} exceeds "
                f"result_scheduled_samples_per_sec {scheduled}"
            )
    estimates = {
        "SingleStream": [("early_stopping_latency_ss", "p90"), ("early_stopping_latency_ms", "p99")],
        "MultiStream": [("early_stopping_latency_ms", "p99")],
    }.get(r.scenario, [])
    for key, pct in estimates:
        est = _num(values, key)
        if est and pct in stats and "max" in stats and not stats[pct] <= est <= stats["max"]:
            out.append(
                f"{key} {est:.0f} ns lies outside [{pct} {stats[pct]:.0f}, max {stats['max']:.0f}] "
                "(the early-stopping estimate is a latency at or above the percentile)"
            )
    text = str(values.get("early_stopping_result", ""))
    for label, key in (("90.0th", "early_stopping_latency_ss"), ("99.0th", "early_stopping_latency_ms")):
        match = re.search(rf"Early stopping {re.escape(label)} percentile estimate: (\d+)", text)
        est = values.get(key)
        if match and isinstance(est, int) and int(match.group(1)) != est:
            out.append(
                f"early_stopping_result says the {label} estimate is {match.group(1)} but {key} is {est}"
            )
    processed = _PROCESSED.search(text)
    if processed and r.query_count is not None and int(processed.group(1)) != r.query_count:
        out.append(
            f"early_stopping_result processed {processed.group(1)} queries but result_query_count is "
            f"{r.query_count}"
        )
    return [problem(path, "detail_inconsistent", m) for m in out]


__all__ = ["RunLogs", "consistency_problems", "load_run", "summary_problems"]
