"""TEST01/TEST04: rerun a stored performance point with the test's audit.config, then verify it.

The rerun goes through the point runner like any point (its own child process, LoadGen reading the
audit.config from the child's working directory, which the child checks in the detail log); the
row is stored with its audit.config text, so it is a point of its own. The rerun is always a
performance-mode run, also of a `--mode submission` row (the tests are performance runs with the
audit.config). Verification reads the logs: TEST01 against the accuracy run of the same deployment
(every logged sample, whole responses; a submission row's accuracy log holds its accuracy phase) and
against the performance run; TEST04 against the performance run's summary. The verify_*.txt files
land in the compliance run's directory, in upstream's format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from audit.layout import ACCURACY_JSON_NAME
from audit.rules import TEST01_BASELINE_FILES, audit_config_text
from audit.selection import ResultRuns
from audit.verify import (
    Verification,
    verify_test01_accuracy,
    verify_test01_performance,
    verify_test04_performance,
)
from mlperf_ext.accuracy import read_accuracy_log
from mlperf_ext.config import with_overrides
from mlperf_ext.datasets import open_dataset
from mlperf_ext.errors import ConfigError
from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME, LogParseError, read_detail_values
from mlperf_ext.result import PointResult
from mlperf_ext.store import ResultsStore
from tasks.registry import get_task
from tiers.runner import layout as runs_layout
from tiers.runner.runner import PointRunner, RunnerOptions

#: the setting that sizes LoadGen's generated query list, per scenario
EXPECTED_KEYS = {"SingleStream": "single_stream_expected_latency_ns", "MultiStream": "multi_stream_expected_latency_ns",
                 "Server": "server_target_qps", "Offline": "offline_expected_qps"}


@dataclass
class ComplianceOutcome:
    test: str
    entry: ResultRuns
    run: PointResult
    verifications: list[Verification] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.verifications) and all(v.passed for v in self.verifications)


def loadgen_dir(result: PointResult) -> Path:
    return Path(result.run_dir) / runs_layout.LOADGEN_DIR


def verify(test: str, entry: ResultRuns, run: PointResult) -> list[Verification]:
    """The test's verifications of `run` against the entry's reference runs (logs as stored)."""
    perf, mine = loadgen_dir(entry.performance), loadgen_dir(run)
    if test == "TEST04":
        return [verify_test04_performance(perf / SUMMARY_NAME, mine / SUMMARY_NAME)]
    if entry.accuracy is None:
        raise ConfigError(f"TEST01 of {entry.performance.point.label()} needs the accuracy run of the same "
                          "deployment; fix: run the same point with --mode accuracy (or --mode submission) first")
    return [verify_test01_accuracy(loadgen_dir(entry.accuracy) / ACCURACY_JSON_NAME, mine / ACCURACY_JSON_NAME),
            verify_test01_performance(perf / DETAIL_NAME, mine / DETAIL_NAME)]


def logged_nothing(log: Path) -> bool:
    """True for an accuracy log that is an empty JSON array (other damage is evaluate's to report)."""
    try:
        return json.loads(log.read_text(encoding="utf-8")) == []
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def unsampled_reason(run: PointResult) -> str:
    """Why a TEST01 rerun logged no sample, and the fix. LoadGen logs each query with probability
    accuracy_log_sampling_target / generated_query_count, and sizes the generated list by the expected
    latency (or QPS): a hint far below the real latency leaves the few queries issued unlogged."""
    values = read_detail_values(loadgen_dir(run) / DETAIL_NAME)
    generated, target = values.get("generated_query_count"), values.get("effective_accuracy_log_sampling_target")
    issued = run.system.query_count if run.system else None
    key = EXPECTED_KEYS.get(run.point.scenario, "the scenario's expected latency or QPS")
    return (f"the TEST01 rerun of {run.point.label()} logged no sample: LoadGen logged each of its {issued} queries "
            f"with probability {target}/{generated} (sampling target over generated queries); fix: set {key} "
            "near the measured value so LoadGen generates about as many queries as it issues, then rerun with "
            "--force")


def _score(run: PointResult, entries: list):
    """The run's task's score of these accuracy-log entries (top-1 for a classifier, mAP for a detector)."""
    task = get_task(run.point.task)
    if not task.metric:
        raise ConfigError(f"task {task.name} scores nothing, so TEST01's accuracy cannot be scored; fix: run the "
                          "task of the benchmark you submit to")
    dataset = open_dataset(run.point.dataset)
    task.check_dataset(dataset, "accuracy")
    return task.score(entries, dataset)


def write_test01_accuracy(run: PointResult) -> None:
    """MLPerf's accuracy line over the samples TEST01 logged (the tree's TEST01/accuracy/accuracy.txt)."""
    log = loadgen_dir(run) / ACCURACY_JSON_NAME
    try:
        entries = read_accuracy_log(log)
    except LogParseError:
        if logged_nothing(log):  # looked at only when the log was refused: it is read once otherwise
            raise ConfigError(unsampled_reason(run)) from None
        raise
    (Path(run.run_dir) / runs_layout.ACCURACY_FILE).write_text(_score(run, entries).line + "\n")


def write_test01_baseline(entry: ResultRuns, run: PointResult, out_dir: Path) -> None:
    """TEST01's non-deterministic path, for when the responses differ: the accuracy of the accuracy run's
    responses to the samples TEST01 logged (baseline_accuracy.txt; the baseline log is what
    compliance/TEST01/create_accuracy_baseline.sh cuts from the accuracy log) and of TEST01's own
    responses (compliance_accuracy.txt). MLCommons' checker accepts the TEST01 when they are within the
    benchmark's accuracy delta (compliance_check.py accuracy_check)."""
    test_entries = read_accuracy_log(loadgen_dir(run) / ACCURACY_JSON_NAME)
    logged = {e["qsl_idx"] for e in test_entries}
    reference_log = loadgen_dir(entry.accuracy) / ACCURACY_JSON_NAME
    baseline = [e for e in read_accuracy_log(reference_log) if e["qsl_idx"] in logged]
    scores = (_score(run, baseline), _score(run, test_entries))
    for name, score in zip(TEST01_BASELINE_FILES, scores):
        (Path(out_dir) / name).write_text(score.line + "\n", encoding="utf-8")


def run_compliance(workdir: Path, entry: ResultRuns, test: str, version: str, force: bool = False,
                   runner: PointRunner | None = None) -> ComplianceOutcome:
    """Rerun the entry's performance point in performance mode under `test` (reusing a stored rerun unless
    `force`) and verify."""
    point = with_overrides(entry.performance.point, mode="performance",
                           audit_config=audit_config_text(test, entry.official, version))
    if test == "TEST01" and entry.accuracy is None:
        verify(test, entry, entry.performance)  # refuses before anything runs
    runner = runner or PointRunner(workdir, options=RunnerOptions(force=force))
    [plan] = runner.plan([point])
    runner.run([point])
    row = ResultsStore(runs_layout.store_path(workdir)).latest(plan.key)
    run = PointResult.from_row(row) if row else None
    if run is None or run.status != "ok":
        why = run.error if run is not None else "no row was stored"
        raise ConfigError(f"{test} rerun of {point.label()} did not complete ({why}); fix: see the run's "
                          "stderr.txt, then rerun with --force")
    if test == "TEST01":
        write_test01_accuracy(run)
    outcome = ComplianceOutcome(test=test, entry=entry, run=run, verifications=verify(test, entry, run))
    for v in outcome.verifications:
        v.write(Path(run.run_dir))
    return outcome
