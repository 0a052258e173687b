"""TEST01/TEST04 of a scenario directory (tools/submission/submission_checker/checks/compliance_check.py,
messages kept): the directories and files, the verdicts, the full performance check on the compliance
logs, and, beyond upstream, upstream's verification re-run on the logs in the tree (and on the kept full
accuracy logs for TEST01), so a verify_*.txt that says TEST PASS for logs that fail is refused. Where
our reading of those logs is stricter than upstream's scripts (audit.verify), its findings are reported
under their own rules.

Upstream requires (and checks) compliance only in the closed and network divisions; here a test
directory an open submission carries is checked as well.
"""

from __future__ import annotations

import re
from pathlib import Path

from audit.checker.accuracy import test01_accuracy_problems
from audit.checker.performance import run_problems
from audit.checker.problems import Problem, problem
from audit.checker.runlogs import RunLogs, load_run
from audit.layout import ACCURACY_DIR, ScenarioPaths
from audit.rules import (
    COMPLIANCE_PERF_FILES,
    COMPLIANCE_PERF_OPTIONAL_FILES,
    TEST01_ACCURACY_FILES,
    TEST01_BASELINE_FILES,
    UNLISTED_FILES,
    BenchmarkRules,
    RoundRules,
)
from audit.verify import (
    PASS,
    Verification,
    passed_in,
    verify_test01_accuracy,
    verify_test01_performance,
    verify_test04_performance,
)
from mlperf_ext.logs import DETAIL_NAME, LogParseError


def _baseline_problems(acc_dir: Path, bench: BenchmarkRules, verify_acc: Path) -> list[Problem]:
    """TEST01's non-deterministic path (compliance_check.py accuracy_check): TEST01/accuracy holds exactly
    REQUIRED_TEST01_ACC_FILES, and the baseline and compliance accuracies are within the benchmark's delta."""
    test_dir = acc_dir.parent
    if not acc_dir.is_dir():
        return [problem(acc_dir, "compliance_accuracy_failed", f"{test_dir} has no accuracy directory")]
    present = {p.name for p in acc_dir.iterdir() if p.is_file()}
    if not present & set(TEST01_BASELINE_FILES):
        return [problem(verify_acc, "compliance_accuracy_failed",
                        f"Compliance test accuracy check (deterministic mode) in {test_dir} failed, and {acc_dir} "
                        f"holds no {' or '.join(TEST01_BASELINE_FILES)} (non-deterministic mode)")]
    diff = (present ^ set(TEST01_ACCURACY_FILES)) - set(UNLISTED_FILES)
    if diff:
        return [problem(acc_dir, "test01_baseline_files", f"{acc_dir} has file list mismatch ({sorted(diff)})")]
    found = []
    for name in TEST01_BASELINE_FILES:
        value = None
        for line in (acc_dir / name).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
            match = re.match(bench.accuracy_pattern, line)
            if match:
                value = float(match.group(1))
        found.append(value)
    baseline, compliance = found
    if baseline and compliance and abs(1 - baseline / compliance) * 100 <= bench.accuracy_delta_percent:
        return []
    return [problem(verify_acc, "compliance_accuracy_failed",
                    f"Compliance test accuracy check (deterministic mode) in {test_dir} failed, and the baseline "
                    f"({baseline}) and compliance ({compliance}) accuracies are not within "
                    f"{bench.accuracy_delta_percent}% (non-deterministic mode)")]


def _add_findings(filed: Path, redo: Verification, out: list[Problem], allowed: tuple[str, ...] = ()) -> None:
    """Our stricter readings of the logs, each rule once per test directory (the run's own checks may have
    reported it already, e.g. compliance_settings on the TEST04 run's detail log)."""
    test_dir = filed.parent
    seen = {p.rule for p in out if p.path.is_relative_to(test_dir)}
    for f in redo.findings:
        if f.rule not in seen and f.rule not in allowed:
            seen.add(f.rule)
            out.append(problem(filed, f.rule, f.message))


def _filed_pass(path: Path) -> bool:
    """verify_performance.txt as compliance_check.py reads it: a line containing "TEST PASS"."""
    return path.is_file() and any(
        PASS in line for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
    )


def _reverify(filed: Path, redo: Verification, out: list[Problem]) -> None:
    _add_findings(filed, redo, out)
    if _filed_pass(filed) and not redo.passed:
        out.append(
            problem(
                filed,
                "compliance_reverify",
                f"{filed.name} says TEST PASS, but verifying the logs in "
                f"the tree gives TEST FAIL: {'; '.join(redo.reasons)}",
            )
        )


def compliance_problems(
    paths: ScenarioPaths,
    rules: RoundRules,
    bench: BenchmarkRules,
    division: str,
    system_type: str | None,
    main_logs: RunLogs | None,
    main_kept_log: Path | None,
    kept_root: Path | None,
) -> list[Problem]:
    required = division in ("closed", "network")
    out: list[Problem] = []
    for test in bench.compliance_tests:
        test_dir = paths.test_dir(test)
        if not test_dir.is_dir():
            if required:
                out.append(
                    problem(test_dir, "compliance_missing", f"Missing {test} in compliance dir {paths.dir}")
                )
            continue
        verify_perf, run_dir = paths.verify_performance(test), paths.test_performance_run(test)
        wanted = [verify_perf, run_dir / DETAIL_NAME]
        if test == "TEST01":
            wanted.insert(0, paths.verify_accuracy(test))
        for path in wanted:
            if not path.is_file():
                out.append(
                    problem(
                        path, "compliance_file_missing", f"Missing file in compliance dir. Needs file {path}"
                    )
                )
        test_logs = None
        if run_dir.is_dir():
            present = {p.name for p in run_dir.iterdir() if p.is_file()}
            diff = (present ^ set(COMPLIANCE_PERF_FILES)) - set(COMPLIANCE_PERF_OPTIONAL_FILES)
            if diff:
                out.append(
                    problem(
                        run_dir, "compliance_perf_files", f"{run_dir} has file list mismatch ({sorted(diff)})"
                    )
                )
            if (run_dir / DETAIL_NAME).is_file():
                test_logs, load_problems = load_run(run_dir)
                out.extend(load_problems)
                if test_logs is not None:
                    out.extend(
                        run_problems(
                            test_logs,
                            rules,
                            bench,
                            division,
                            mode="performance",
                            compliance_test=test,
                            system_type=system_type,
                        )
                    )
        if verify_perf.is_file() and not _filed_pass(verify_perf):
            out.append(
                problem(
                    verify_perf,
                    "compliance_performance_failed",
                    f"Compliance test performance check in {test_dir} failed",
                )
            )
        if test == "TEST01":
            verify_acc = paths.verify_accuracy(test)
            acc_dir = paths.test_accuracy_dir(test)
            # the non-deterministic path: the rules accept responses that differ, within the accuracy delta
            nondeterministic_ok = False
            if verify_acc.is_file() and not passed_in(verify_acc):
                fallback = _baseline_problems(acc_dir, bench, verify_acc)
                out.extend(fallback)
                nondeterministic_ok = not fallback
            test_kept = None
            if acc_dir.is_dir():
                findings = test01_accuracy_problems(acc_dir, paths.relative / test / ACCURACY_DIR, kept_root)
                out.extend(findings.problems)
                test_kept = findings.kept_log
            if main_kept_log is not None and test_kept is not None:
                try:
                    redo = verify_test01_accuracy(main_kept_log, test_kept)
                except LogParseError as exc:
                    out.append(problem(test_kept, "accuracy_log_corrupt", str(exc)))
                else:
                    # differing responses are what the non-deterministic path allows
                    allowed = ("test01_response_mismatch",) if nondeterministic_ok else ()
                    _add_findings(verify_acc, redo, out, allowed)
                    if verify_acc.is_file() and passed_in(verify_acc) and not redo.passed:
                        out.append(
                            problem(
                                verify_acc,
                                "compliance_reverify",
                                f"{verify_acc.name} says TEST PASS, but verifying the kept full accuracy "
                                f"logs gives TEST FAIL: {'; '.join(redo.reasons)}",
                            )
                        )
        if main_logs is not None and test_logs is not None:
            if test == "TEST01":
                _reverify(
                    verify_perf, verify_test01_performance(main_logs.detail_path, test_logs.detail_path), out
                )
            elif main_logs.summary is not None and test_logs.summary is not None:  # else reported already
                _reverify(
                    verify_perf,
                    verify_test04_performance(main_logs.summary_path, test_logs.summary_path),
                    out,
                )
    return out


__all__ = ["compliance_problems"]
