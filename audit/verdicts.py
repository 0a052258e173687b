"""`compliant` in the store: the checker's per-run verdict (audit.checker.check_run), and nothing else.

Each run of a result is judged as what it is in the submission: the performance run, the accuracy
run, and each compliance rerun as that test. The store keeps every verdict with its problems; rows
show the latest.
"""

from __future__ import annotations

from pathlib import Path

from audit.checker.performance import check_run
from audit.checker.problems import problem
from audit.compliance import loadgen_dir
from audit.selection import ResultRuns, runs_no_model
from mlperf_ext.result import PointResult
from mlperf_ext.store import ResultsStore

CHECKER = "mlperf-ext audit checker"


def runs_of(entry: ResultRuns) -> list[tuple[PointResult, str, str | None]]:
    """(run, mode as judged, compliance test) for every run of a result."""
    out = [(entry.performance, "performance", None)]
    if entry.accuracy is not None:
        out.append((entry.accuracy, "accuracy", None))
    out += [(run, "performance", test) for test, run in sorted(entry.compliance.items())]
    return out


def verdict_of(entry: ResultRuns, run: PointResult, mode: str, test: str | None, division: str,
               version: str) -> list[str]:
    problems = check_run(loadgen_dir(run), entry.official, division, version, mode=mode,
                         scenario=entry.scenario, compliance_test=test)
    no_model = runs_no_model(run)
    if no_model:
        problems.append(problem(loadgen_dir(run), "sut_runs_no_model", no_model))
    return [str(p).replace(str(Path(run.run_dir)), f"runs/{run.run_id}") for p in problems]


def record_verdicts(store: ResultsStore, entries: list[ResultRuns], division: str, version: str) -> dict[str, list[str]]:
    """Judge and store every run of `entries`; returns run id -> problems (empty = compliant). A run with
    two roles (a `--mode submission` row is the performance and the accuracy run) gets one verdict that
    holds the problems of both."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        for run, mode, test in runs_of(entry):
            found = out.setdefault(run.run_id, [])
            found += [p for p in verdict_of(entry, run, mode, test, division, version) if p not in found]
    for run_id, problems in out.items():
        store.record_verdict(run_id, not problems, problems, f"{CHECKER} {version} {division}")
    return out
