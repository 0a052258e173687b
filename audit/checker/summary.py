"""The reported metric of a scenario directory and the CSV summary (one row per system, benchmark, scenario).

Metric extraction as tools/submission/submission_checker/checks/performance_check.py
(`get_performance_metric_check`, `get_inferred_result`): the RESULT_FIELD of the run's scenario,
SingleStream/MultiStream in ms; an edge system's inferred result from another scenario's run.
The CSV keeps the first columns of upstream's summary.csv (results.py ResultExporter) and adds the
checker's verdict and the rules that refused the row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from audit.checker.problems import Problem, errors_of
from audit.checker.runlogs import RunLogs
from audit.rules import NS_PER_MS, RESULT_FIELD, RESULT_UNITS


def reported_metric(logs: RunLogs, scenario: str) -> float | None:
    """The figure a result row reports for `scenario` from this run's logs (None when LoadGen gave none)."""
    v, run = logs.values, logs.result.scenario

    def number(key: str) -> float | None:
        x = v.get(key)
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None

    if run == scenario:
        value = number(RESULT_FIELD[run])
        if value is None:
            return None
        return value / NS_PER_MS if run in ("SingleStream", "MultiStream") else value
    if (run, scenario) == ("SingleStream", "Offline"):
        return number("result_qps_without_loadgen_overhead")
    if (run, scenario) == ("MultiStream", "Offline"):
        spq, mean = number("effective_samples_per_query"), number("result_mean_query_latency_ns")
        return spq * 1000 / (mean / NS_PER_MS) if spq and mean else None
    if (run, scenario) == ("SingleStream", "MultiStream"):
        estimate = number("early_stopping_latency_ms")
        return estimate * 8 / NS_PER_MS if estimate else None  # 8 samples per query, as upstream
    return None


@dataclass
class ResultRow:
    """One results/<system>/<benchmark>/<scenario>/ directory as the summary reports it."""

    submitter: str
    division: str
    system: str
    benchmark: str
    mlperf_model: str
    scenario: str
    location: Path
    system_name: str = ""
    system_type: str = ""
    status: str = ""
    metric: float | None = None
    accuracy: float | None = None
    compliance: str = ""
    problems: list[Problem] = field(default_factory=list)
    #: a power result's metric (audit.checker.power) and its units; None without performance/power/
    power_metric: float | None = None
    power_units: str = ""

    @property
    def verdict(self) -> str:
        return "PASS" if not errors_of(self.problems) else "FAIL"  # warnings alone do not fail a result

    @property
    def units(self) -> str:
        return RESULT_UNITS.get(self.scenario, "")


CSV_COLUMNS = (
    "Organization",
    "Availability",
    "Division",
    "SystemType",
    "SystemName",
    "Platform",
    "Model",
    "MlperfModel",
    "Scenario",
    "Result",
    "Units",
    "Accuracy",
    "Compliance",
    "Verdict",
    "Problems",
    "Rules",
    "Location",
)


def write_summary_csv(rows: list[ResultRow], path: Path) -> Path:
    """Write one CSV row per result directory (two for a power result: the power metric in the second, as
    upstream's results.py does): metric, accuracy, compliance tests, verdict, refusing rules."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            cells = [
                row.submitter,
                row.status,
                row.division,
                row.system_type,
                row.system_name,
                row.system,
                row.benchmark,
                row.mlperf_model,
                row.scenario,
                "" if row.metric is None else f"{row.metric:.6g}",
                row.units,
                "" if row.accuracy is None else f"{row.accuracy:g}",
                row.compliance,
                row.verdict,
                len(row.problems),
                " ".join(sorted({p.rule for p in row.problems})),
                str(row.location),
            ]
            writer.writerow(cells)
            if row.power_metric is not None:  # results.py: a power result gets a second row, same columns
                cells[9:11] = [f"{row.power_metric:.6g}", row.power_units]
                writer.writerow(cells)
    return path


__all__ = ["CSV_COLUMNS", "ResultRow", "reported_metric", "write_summary_csv"]
