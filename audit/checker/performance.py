"""The checks that apply to one LoadGen run's logs: the per-run verdict.

Upstream's are those of tools/submission/submission_checker/checks/performance_check.py (messages
kept); on top of them a run must be VALID, free of ERROR lines, have a summary that agrees with its
detail log and a detail log that agrees with itself, use mlperf.conf's latency percentile, and
(a main run) not be a compliance run in disguise. `check_run` is the function the results store's
`compliant` column is computed with.
"""

from __future__ import annotations

from pathlib import Path

from audit.checker.problems import Problem, problem
from audit.checker.runlogs import RunLogs, consistency_problems, load_run, summary_problems
from audit.rules import (
    AUDIT_CONFIG_FOUND,
    COMPLIANCE_TESTS,
    DIVISIONS,
    EARLY_STOPPING_SCENARIOS,
    SCENARIOS,
    TEST01_ACCURACY_LOG_RNG_SEED,
    TEST04_ISSUE_SETTINGS,
    BenchmarkRules,
    RoundRules,
    round_rules,
)
from mlperf_ext.errors import ConfigError

#: LoadGen test modes whose logs hold what each kind of directory needs (SubmissionRun: accuracy, then
#: performance, in one test and one log)
MODES = {"performance": ("PerformanceOnly", "SubmissionRun"), "accuracy": ("AccuracyOnly", "SubmissionRun")}
#: results an edge system may report for a scenario it did not run (performance_check.py inferred_check)
INFERABLE = {("SingleStream", "MultiStream"), ("MultiStream", "Offline"), ("SingleStream", "Offline")}


def _first_error(logs: RunLogs) -> str:
    return logs.error_lines[0] if logs.error_lines else "num_errors > 0"


def _performance_problems(
    logs: RunLogs,
    rules: RoundRules,
    bench: BenchmarkRules,
    division: str,
    scenario: str,
    compliance_test: str | None,
    system_type: str | None,
) -> list[Problem]:
    r, v, path = logs.result, logs.values, logs.detail_path
    out: list[Problem] = []

    def add(rule: str, message: str) -> None:
        out.append(problem(path, rule, message))

    if r.scenario != scenario:
        if "edge" not in (system_type or "") and (r.scenario, scenario) in INFERABLE:
            add(
                "scenario_mismatch",
                f"Result can not be inferred for {system_type or 'this'} suite: {scenario} "
                f"from a {r.scenario} run (only edge systems may infer results)",
            )
        elif (r.scenario, scenario) not in INFERABLE:
            add("scenario_mismatch", f"Result for scenario {scenario} can not be inferred from {r.scenario}")
    if r.valid is not True:
        add("result_invalid", "result_validity is INVALID: " + "; ".join(r.invalid_reasons))
    for key, expected in rules.seeds.items():
        found = v.get(f"effective_{key}")
        if found != expected:
            add("seeds", f"{key} is wrong, expected={expected}, found={found}")
    found = v.get("effective_performance_sample_count")
    if not isinstance(found, int) or found < bench.performance_sample_count:
        add(
            "performance_sample_count",
            f"performance_sample_count, found {found}, needs to be >= {bench.performance_sample_count}",
        )
    run_scenario = r.scenario
    if run_scenario in EARLY_STOPPING_SCENARIOS:
        if not v.get("early_stopping_met"):
            message = " ".join(str(v.get("early_stopping_result", "")).split())
            add("early_stopping", f"Early stopping condition was not met, msg={message}")
        bound = bench.latency_bound_ns.get(run_scenario)
        target = v.get("effective_target_latency_ns")
        if bound is not None and (not isinstance(target, (int, float)) or target > bound):
            add(
                "latency_bound",
                f"Latency constraint with early stopping not met, expected={bound}, found={target}",
            )
        floor = rules.target_latency_percentile[run_scenario]
        pct = v.get("effective_target_latency_percentile")
        if not isinstance(pct, (int, float)) or pct < floor - 1e-9:
            add(
                "latency_percentile",
                f"effective_target_latency_percentile is {pct}, below mlperf.conf's {floor} "
                f"for {run_scenario}",
            )
    else:
        bound = bench.latency_bound_ns.get(run_scenario)
        p99 = v.get("result_99.00_percentile_latency_ns")
        if bound is not None and isinstance(p99, (int, float)) and p99 > bound:
            add("latency_bound", f"Latency constraint not met, expected={bound}, found={p99}")
        required = bench.min_queries.get(run_scenario)
        count = v.get("effective_min_query_count")
        if required and (not isinstance(count, int) or count < required):
            add(
                "min_query_count",
                f"Required minimum Query Count not met by user config, Expected={required}, Found={count}",
            )
    spq = v.get("effective_samples_per_query")
    if (
        run_scenario == "Offline"
        and division in ("closed", "network")
        and (not isinstance(spq, int) or spq < bench.offline_min_samples_per_query)
    ):
        add(
            "offline_samples_per_query",
            f"Required minimum samples per query not met by user config, "
            f"Expected={bench.offline_min_samples_per_query}, Found={spq}",
        )
    duration = v.get("effective_min_duration_ms")
    if not isinstance(duration, (int, float)) or duration < rules.min_duration_ms:
        add(
            "min_duration",
            f"Test duration less than 600s in user config. expected={rules.min_duration_ms}, "
            f"found={duration}",
        )
    audited = any(AUDIT_CONFIG_FOUND in w for w in r.warnings)
    issue = {k: v.get(f"effective_{k}") for k in TEST04_ISSUE_SETTINGS}
    if compliance_test is None:
        if audited:
            add(
                "issue_settings",
                "LoadGen applied an audit.config to this run: it is a compliance run, not the "
                "submission's performance run",
            )
        if issue["performance_issue_same"] or issue["performance_issue_unique"]:
            add(
                "issue_settings",
                f"the run used performance_issue_same={issue['performance_issue_same']}, "
                f"performance_issue_unique={issue['performance_issue_unique']} (LoadGen's "
                "default sample order is required)",
            )
    else:
        if not audited:
            add(
                "compliance_settings",
                f"the detail log does not say '{AUDIT_CONFIG_FOUND}': LoadGen did not apply "
                f"{compliance_test}'s audit.config",
            )
        if compliance_test == "TEST01":
            want = {
                "accuracy_log_rng_seed": TEST01_ACCURACY_LOG_RNG_SEED,
                "accuracy_log_sampling_target": bench.test01_sampling_target,
            }
        else:
            want = dict(TEST04_ISSUE_SETTINGS)
        for key, expected in want.items():
            found = v.get(f"effective_{key}")
            if found != expected:
                add(
                    "compliance_settings", f"{compliance_test} needs {key} = {expected}, the run used {found}"
                )
    return out


def run_problems(
    logs: RunLogs,
    rules: RoundRules,
    bench: BenchmarkRules,
    division: str,
    *,
    mode: str = "performance",
    scenario: str | None = None,
    compliance_test: str | None = None,
    system_type: str | None = None,
) -> list[Problem]:
    """Problems of runs whose logs `load_run` could read."""
    r, path = logs.result, logs.detail_path
    out = summary_problems(logs) + consistency_problems(logs)
    if r.mode not in MODES[mode]:
        wanted = " or ".join(MODES[mode])
        out.append(
            problem(path, "run_mode", f"the log is a {r.mode} run; this directory must hold a {wanted} run")
        )
        return out
    if logs.error_lines or logs.values.get("num_errors"):
        out.append(
            problem(
                path,
                "loadgen_errors",
                f"has loadgen errors, number of errors: "
                f"{max(len(logs.error_lines), logs.values.get('num_errors') or 0)} "
                f"(first: {_first_error(logs)})",
            )
        )
    if mode == "accuracy":
        count = logs.values.get(
            "effective_accuracy_sample_count", logs.values.get("qsl_reported_total_count")
        )
        if count != bench.dataset_size:
            out.append(
                problem(
                    path,
                    "dataset_coverage",
                    f"accuracy run does not cover all dataset, accuracy "
                    f"samples: {count}, dataset size: {bench.dataset_size}",
                )
            )
        return out
    return out + _performance_problems(
        logs, rules, bench, division, scenario or r.scenario, compliance_test, system_type
    )


def check_run(
    run_dir: Path,
    benchmark: str,
    division: str,
    version: str = "v6.1",
    *,
    mode: str = "performance",
    scenario: str | None = None,
    compliance_test: str | None = None,
    system_type: str | None = None,
    model_mapping: dict[str, str] | None = None,
) -> list[Problem]:
    """The per-run verdict: every problem of the LoadGen logs in `run_dir` (mlperf_log_detail.txt and
    mlperf_log_summary.txt) as a `benchmark` run of `division` in round `version`; empty = compliant.

    mode: "performance" (a submission's performance run, or a compliance run when `compliance_test`
    is TEST01/TEST04) or "accuracy" (an AccuracyOnly run: errors and dataset coverage).
    scenario: the scenario the result is claimed for (default: the run's own).
    ConfigError for arguments the checker cannot judge against (unknown round, benchmark, mode).
    """
    rules = round_rules(version)
    bench = rules.benchmark(benchmark, model_mapping)
    if division not in DIVISIONS:
        raise ConfigError(f"unknown division '{division}'; fix: use one of {', '.join(DIVISIONS)}")
    if mode not in MODES:
        raise ConfigError(f"unknown run mode '{mode}'; fix: use one of {', '.join(MODES)}")
    if scenario is not None and scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario '{scenario}'; fix: use one of {', '.join(SCENARIOS)}")
    if compliance_test is not None and compliance_test not in COMPLIANCE_TESTS:
        raise ConfigError(
            f"unknown compliance test '{compliance_test}'; fix: use one of {', '.join(COMPLIANCE_TESTS)}"
        )
    logs, problems = load_run(Path(run_dir))
    if logs is None:
        return problems
    return problems + run_problems(
        logs,
        rules,
        bench,
        division,
        mode=mode,
        scenario=scenario,
        compliance_test=compliance_test,
        system_type=system_type,
    )


__all__ = ["check_run", "run_problems"]
