"""Walk a v6.1 submission tree and run every check on it: the entry point of the checker.

The walk follows tools/submission/submission_checker/loader.py (division / submitter / results /
system / benchmark / scenario); each concern lives in its own module of this package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from audit.checker.accuracy import accuracy_problems
from audit.checker.compliance import compliance_problems
from audit.checker.measurements import measurements_problems, src_problems
from audit.checker.performance import run_problems
from audit.checker.power import power_findings
from audit.checker.problems import Problem, errors_of, problem
from audit.checker.runlogs import load_run
from audit.checker.summary import ResultRow, reported_metric, write_summary_csv
from audit.checker.system import system_problems
from audit.checker.user_conf import user_conf_problems
from audit.layout import (
    ACCURACY_DIR,
    PERFORMANCE_FILES,
    ScenarioPaths,
    default_kept_root,
    model_mapping_path,
    results_dir,
    src_dir,
    submitter_dir,
    system_json_path,
)
from audit.rules import DIVISIONS, SCENARIO_DIR_NAMES, SYSTEM_TYPES, BenchmarkRules, RoundRules, round_rules
from audit.verify import passed_in


@dataclass
class TreeReport:
    """Everything the checker found in one tree: all problems, and one row per result directory."""

    root: Path
    version: str
    kept_root: Path | None
    problems: list[Problem] = field(default_factory=list)
    rows: list[ResultRow] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """The problems that fail the tree: all but the rule-text warnings."""
        return errors_of(self.problems)

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.is_warning]

    @property
    def ok(self) -> bool:
        return not self.errors

    def write_csv(self, path: Path) -> Path:
        return write_summary_csv(self.rows, path)


def _model_mapping(
    root: Path, division: str, submitter: str, rules: RoundRules, out: list[Problem]
) -> dict[str, str]:
    path = model_mapping_path(root, division, submitter)
    if division != "open" or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        out.append(problem(path, "model_mapping", f"is not valid JSON ({exc})"))
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        out.append(
            problem(path, "model_mapping", "must be a JSON object of custom name -> official benchmark")
        )
        return {}
    for name, target in data.items():
        if target not in rules.benchmarks:
            out.append(
                problem(
                    path,
                    "model_mapping",
                    f"maps {name} to {target}, which is not a {rules.version} "
                    f"benchmark this checker knows ({', '.join(rules.benchmarks)})",
                )
            )
    return data


def _scenario_row(
    paths: ScenarioPaths,
    scenario: str,
    rules: RoundRules,
    bench: BenchmarkRules,
    system: dict | None,
    kept_root: Path | None,
) -> ResultRow:
    system = system or {}
    system_type = system.get("system_type") if isinstance(system.get("system_type"), str) else None
    row = ResultRow(
        paths.submitter,
        paths.division,
        paths.system,
        paths.benchmark,
        bench.name,
        paths.scenario,
        paths.dir,
        system_name=str(system.get("system_name", "")),
        system_type=system_type or "",
        status=str(system.get("status", "")),
    )
    out = row.problems
    run = paths.performance_run
    missing = [name for name in PERFORMANCE_FILES if not (run / name).is_file()]
    if PERFORMANCE_FILES[0] in missing:  # with the detail log there, load_run reports a missing summary
        for name in missing:
            out.append(problem(run / name, "file_missing", f"Performance log missing at {run / name}"))
    main_logs = None
    if PERFORMANCE_FILES[0] not in missing:
        main_logs, load_problems = load_run(run)
        out.extend(load_problems)
        if main_logs is not None:
            out.extend(
                run_problems(
                    main_logs,
                    rules,
                    bench,
                    paths.division,
                    mode="performance",
                    scenario=scenario,
                    system_type=system_type,
                )
            )
            row.metric = reported_metric(main_logs, scenario)
    findings = accuracy_problems(
        paths.accuracy_dir, paths.relative / ACCURACY_DIR, rules, bench, paths.division, kept_root
    )
    out.extend(findings.problems)
    row.accuracy = findings.value
    out.extend(measurements_problems(paths)[1])
    out.extend(user_conf_problems(paths.user_conf, rules, bench, scenario))
    out.extend(
        compliance_problems(
            paths, rules, bench, paths.division, system_type, main_logs, findings.kept_log, kept_root
        )
    )
    power = power_findings(paths, scenario, system, main_logs)
    out.extend(power.problems)
    row.power_metric, row.power_units = power.metric, power.units
    done = []
    for test in bench.compliance_tests:
        if paths.test_dir(test).is_dir():
            files = [paths.verify_performance(test)] + (
                [paths.verify_accuracy(test)] if test == "TEST01" else []
            )
            done.append(f"{test}:{'pass' if all(passed_in(f) for f in files) else 'fail'}")
    row.compliance = " ".join(done)
    return row


def _benchmark_rows(
    root: Path,
    division: str,
    submitter: str,
    system_id: str,
    bench_dir: Path,
    rules: RoundRules,
    mapping: dict[str, str],
    system: dict | None,
    kept_root: Path | None,
    out: list[Problem],
) -> list[ResultRow]:
    bench = rules.find_benchmark(bench_dir.name, mapping)
    if bench is None:
        out.append(
            problem(
                bench_dir,
                "benchmark_unknown",
                f"'{bench_dir.name}' is not a {rules.version} benchmark "
                f"this checker knows ({', '.join(rules.benchmarks)}) "
                "and model_mapping.json does not map it",
            )
        )
        return []
    scenarios: dict[str, Path] = {}
    for d in sorted(p for p in bench_dir.iterdir() if p.is_dir()):
        name = SCENARIO_DIR_NAMES.get(d.name.lower())
        if name is None:
            out.append(
                problem(
                    d,
                    "scenario_unknown",
                    f"'{d.name}' is not a LoadGen scenario ({', '.join(SCENARIO_DIR_NAMES.values())})",
                )
            )
        else:
            scenarios[name] = d
    system_type = (system or {}).get("system_type")
    if division in ("closed", "network") and system_type in SYSTEM_TYPES:
        required = bench.required_scenarios.get(system_type)
        if required is None:
            out.append(
                problem(
                    bench_dir,
                    "scenarios_unknown",
                    f"{bench.name} is not part of the {rules.version} {system_type} suite",
                )
            )
        else:
            missing = [s for s in required if s not in scenarios]
            unknown = [s for s in scenarios if s not in required]
            if missing:
                out.append(
                    problem(
                        bench_dir,
                        "scenarios_missing",
                        f"{bench_dir} does not have all required scenarios, missing {missing}",
                    )
                )
            if unknown:
                out.append(
                    problem(
                        bench_dir,
                        "scenarios_unknown",
                        f"{bench_dir} has scenarios unknown for this benchmark {unknown}",
                    )
                )
    rows = []
    for name, d in scenarios.items():
        paths = ScenarioPaths(root, division, submitter, system_id, bench_dir.name, d.name)
        rows.append(_scenario_row(paths, name, rules, bench, system, kept_root))
    return rows


def check_tree_report(root: Path, version: str = "v6.1", kept_root: Path | None = None) -> TreeReport:
    """Check a submission tree; `kept_root` holds the full accuracy logs (default: the sibling
    audit.layout.default_kept_root(root) when it exists; without one the hashes of truncated logs
    cannot be verified). ConfigError for an unknown round."""
    rules = round_rules(version)
    root = Path(root)
    if kept_root is None and default_kept_root(root).is_dir():
        kept_root = default_kept_root(root)
    report = TreeReport(root, version, kept_root)
    out = report.problems
    if not root.is_dir():
        out.append(problem(root, "tree_root", f"{root} is not a directory"))
        return report
    divisions = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and entry.name in DIVISIONS:
            divisions.append(entry.name)
        else:
            out.append(
                problem(
                    entry,
                    "tree_extra_entry",
                    f"'{entry.name}' is not a division directory ({', '.join(DIVISIONS)})",
                )
            )
    if not divisions:
        out.append(problem(root, "tree_root", f"{root} holds no {', '.join(DIVISIONS)} directory"))
    for division in divisions:
        for entry in sorted((root / division).iterdir()):
            if not entry.is_dir():
                out.append(problem(entry, "tree_extra_entry", f"'{entry.name}' is not a submitter directory"))
                continue
            submitter = entry.name
            mapping = _model_mapping(root, division, submitter, rules, out)
            results = results_dir(root, division, submitter)
            if not results.is_dir():
                out.append(
                    problem(
                        results,
                        "results_missing",
                        f"{submitter_dir(root, division, submitter)} has no results directory",
                    )
                )
                continue
            out.extend(src_problems(src_dir(root, division, submitter)))
            for system_dir in sorted(p for p in results.iterdir() if p.is_dir()):
                system_json = system_json_path(root, division, submitter, system_dir.name)
                system, system_issues = system_problems(system_json, division, submitter)
                out.extend(system_issues)
                for bench_dir in sorted(p for p in system_dir.iterdir() if p.is_dir()):
                    rows = _benchmark_rows(
                        root,
                        division,
                        submitter,
                        system_dir.name,
                        bench_dir,
                        rules,
                        mapping,
                        system,
                        kept_root,
                        out,
                    )
                    for row in rows:
                        out.extend(row.problems)
                    report.rows.extend(rows)
    return report


def check_tree(root: Path, version: str = "v6.1", kept_root: Path | None = None) -> list[Problem]:
    """Every problem of a submission tree (empty = the tree passes). See check_tree_report."""
    return check_tree_report(root, version, kept_root).problems


__all__ = ["TreeReport", "check_tree", "check_tree_report"]
