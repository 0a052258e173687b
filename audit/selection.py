"""Which stored rows form one submission result: a performance run, the accuracy run of the same
deployment, and the compliance reruns of that performance run.

MLPerf asks that a result's accuracy and performance logs come from the same system and software
(tools/submission/submission_structure.md). Here "the same deployment" is the stored point with the
mode, the compliance audit.config, the watchdog, LoadGen's trace switch and the power meter set aside,
plus the model's and the dataset's bytes and the versions the rows were measured with.

A `--mode submission` row is one LoadGen SubmissionRun: loadgen.cc StartTest runs the accuracy phase,
then the performance phase, in one test with one set of logs (the accuracy log holds the accuracy
phase's samples, the summary and the result_* keys the performance phase's). So the row serves as its
result's performance run and as its accuracy run, and MLCommons' checker reads those logs in both
directories (it checks no test mode). Each role takes the newest finished row that can fill it, so a
separate performance or accuracy row of the same deployment, finished later, wins its role.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field

from audit.rules import COMPLIANCE_TESTS, RoundRules, audit_config_text
from mlperf_ext.errors import ConfigError
from mlperf_ext.result import PointResult

#: the point modes whose logs hold each role's run (`submission`: LoadGen's SubmissionRun, both in one test)
PERFORMANCE_MODES = ("performance", "submission")
ACCURACY_MODES = ("accuracy", "submission")

#: point fields that do not change what runs (the watchdog, LoadGen's own trace, a meter beside the SUT)
#: or that tell the runs of one result apart (the mode, a compliance test's audit.config)
NOT_DEPLOYMENT = ("mode", "audit_config", "timeout_s", "loadgen_trace", "power")


def deployment_key(result: PointResult) -> str:
    point = {k: v for k, v in result.point.to_dict().items() if k not in NOT_DEPLOYMENT}
    model_sha = result.variant.model_sha256 if result.variant else None
    return json.dumps({"point": point, "model_sha256": model_sha, "dataset_sha256": result.dataset_sha256,
                       "versions": result.versions}, sort_keys=True, default=str)


def compliance_test_of(result: PointResult, benchmark: str, version: str) -> str | None:
    """TEST01/TEST04 when the row's audit.config is that test's text for `benchmark`, else None."""
    text = result.point.audit_config
    if not text:
        return None
    for test in COMPLIANCE_TESTS:
        try:
            if text == audit_config_text(test, benchmark, version):
                return test
        except ConfigError:  # the benchmark does not take this test
            continue
    return None


@dataclass
class ResultRuns:
    """One results/<system>/<benchmark>/<scenario>/ directory's runs."""

    official: str  # the official benchmark name (resnet ...)
    performance: PointResult
    accuracy: PointResult | None = None
    compliance: dict[str, PointResult] = field(default_factory=dict)

    @property
    def scenario(self) -> str:
        return self.performance.point.scenario

    @property
    def model_name(self) -> str:
        return self.performance.point.model_name

    @property
    def one_run(self) -> bool:
        """True when one SubmissionRun row is both the performance and the accuracy run."""
        return self.accuracy is not None and self.accuracy.run_id == self.performance.run_id


def official_benchmark(result: PointResult, rules: RoundRules, mapping: dict[str, str]) -> str:
    """The official benchmark a row stands for: the user's mapping of its model name, else its LoadGen
    model name when the round knows it (resnet50 -> resnet). The row's task must be the benchmark's: a
    detector's mAP line is no top-1, and a raw run has no score at all."""
    name = result.point.model_name
    given = mapping.get(name) or mapping.get("*")
    if given is not None:
        found = rules.find_benchmark(given)
        if found is None:
            raise ConfigError(f"--benchmark {name}={given}: {given} is not a {rules.version} benchmark; fix: use "
                              f"one of {', '.join(sorted(rules.benchmarks))}")
    else:
        found = rules.find_benchmark(result.point.mlperf_model)
        if found is None:
            raise ConfigError(f"model {name} (LoadGen model name {result.point.mlperf_model}) stands for no "
                              f"{rules.version} benchmark; fix: --benchmark {name}=resnet (an open-division submission "
                              "maps it in model_mapping.json)")
    task = result.point.task
    if task != found.task:
        fitting = sorted(b.name for b in rules.benchmarks.values() if b.task == task)
        raise ConfigError(f"model {name} ran task {task}, but {rules.version} benchmark {found.name} scores "
                          f"{found.task}; fix: " + (f"--benchmark {name}={fitting[0]} (a {task} benchmark)" if fitting
                                                   else f"no {rules.version} benchmark scores task {task}: rerun with "
                                                        "the task of the benchmark you submit to"))
    return found.name


def runs_no_model(result: PointResult) -> str | None:
    """Why a row cannot stand for a submission because its backend runs no model (the null backend, by name or
    as module:Class), else None. Its logs look like any other run's, so the checker of a tree cannot tell."""
    from mlperf_ext.errors import MlperfExtError
    from sut.registry import backend_class

    try:
        cls = backend_class(result.point.backend)
    except MlperfExtError:  # a backend no longer installed: its logs are all there is to judge
        return None
    if getattr(cls, "runs_model", True):
        return None
    return f"backend {result.point.backend} runs no model (it answers without inferring)"


def _is_ok_run(r: PointResult) -> bool:
    return r.status == "ok" and r.point is not None and r.run_dir is not None


def serves(result: PointResult, modes: tuple[str, ...]) -> bool:
    """True when the row's mode gives it a role's logs (a compliance rerun fills no main role)."""
    return result.point.mode in modes and not result.point.audit_config


def _newest(rows: list[PointResult]) -> PointResult | None:
    return max(rows, key=lambda r: r.finished_at or "") if rows else None


def select_results(rows: list[PointResult], rules: RoundRules, mapping: dict[str, str],
                   performance_ids: Collection[str] | None = None) -> list[ResultRuns]:
    """Group stored rows into results: every ok performance (or submission-mode) row, with its accuracy
    and compliance runs. `performance_ids` (--run) limits which rows may be a performance run; any row
    may still be an accuracy or compliance run.

    Two performance rows of one model, backend and scenario cannot both be packaged (a directory holds
    one result): that is refused, naming the runs, so the user picks one with --run."""
    rows = [r for r in rows if _is_ok_run(r)]
    by_deployment: dict[str, list[PointResult]] = {}
    for r in rows:
        by_deployment.setdefault(deployment_key(r), []).append(r)
    out: list[ResultRuns] = []
    for group in by_deployment.values():
        perf = [r for r in group if serves(r, PERFORMANCE_MODES)
                and (performance_ids is None or r.run_id in performance_ids)]
        if not perf:
            continue
        official = official_benchmark(perf[0], rules, mapping)
        entry = ResultRuns(official=official, performance=_newest(perf),
                           accuracy=_newest([r for r in group if serves(r, ACCURACY_MODES)]))
        for r in group:
            test = compliance_test_of(r, official, rules.version)
            if test and (test not in entry.compliance
                         or (r.finished_at or "") > (entry.compliance[test].finished_at or "")):
                entry.compliance[test] = r
        out.append(entry)
    seen: dict[tuple[str, str, str], ResultRuns] = {}
    for entry in out:
        place = (entry.model_name, entry.performance.point.backend, entry.scenario)
        if place in seen:
            raise ConfigError(f"two deployments of {' '.join(place)} would share one results directory (runs "
                              f"{seen[place].performance.run_id} and {entry.performance.run_id}); fix: choose "
                              "one with --run RUN_ID")
        seen[place] = entry
    return sorted(out, key=lambda e: (e.model_name, e.performance.point.backend, e.scenario))
