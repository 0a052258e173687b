"""An accuracy directory: the accuracy line and target, the hash line, truncation, and dataset coverage
(tools/submission/submission_checker/checks/accuracy_check.py, messages kept), plus what upstream cannot
do without the full log: check the hash, the truncation and the coverage against the copy kept beside
the tree (audit.layout.kept_accuracy_log).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from audit.checker.performance import run_problems
from audit.checker.problems import Problem, problem
from audit.checker.runlogs import RunLogs, load_run
from audit.layout import ACCURACY_FILES, ACCURACY_JSON_NAME, ACCURACY_TXT_NAME, kept_accuracy_log
from audit.rules import MAX_ACCURACY_LOG_SIZE, BenchmarkRules, RoundRules
from audit.truncate import is_truncated, read_hash, sha256_of, truncated
from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME


@dataclass
class AccuracyFindings:
    """What the checker read from an accuracy directory (the CSV reports the value)."""

    value: float | None = None
    logs: RunLogs | None = None
    kept_log: Path | None = None
    problems: list[Problem] = field(default_factory=list)


def accuracy_values(accuracy_txt: Path, pattern: str) -> list[float]:
    """Every accuracy the benchmark's pattern finds in accuracy.txt (re.match per line, as upstream)."""
    path = Path(accuracy_txt)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        match = re.match(pattern, line)
        if match:
            try:
                out.append(float(match.group(1)))
            except ValueError:
                continue
    return out


def _distinct_samples(path: Path) -> int | None:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        return len({e["qsl_idx"] for e in entries})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError):
        return None


def _hash_and_truncation(
    acc_dir: Path,
    relative: Path,
    kept_root: Path | None,
    findings: AccuracyFindings,
    bench: BenchmarkRules | None,
) -> None:
    """Hash line, size, and (with a kept copy) hash, truncation and coverage against the full log.
    `bench` is given for a main accuracy run, whose kept log must cover the dataset."""
    log, txt, out = acc_dir / ACCURACY_JSON_NAME, acc_dir / ACCURACY_TXT_NAME, findings.problems
    digest = read_hash(txt)
    if txt.is_file() and digest is None:
        out.append(problem(txt, "accuracy_hash_missing", "not hash value for accuracy.txt"))
    if not log.is_file():
        return
    if log.stat().st_size > MAX_ACCURACY_LOG_SIZE:
        out.append(
            problem(
                log,
                "accuracy_log_not_truncated",
                f"{log} is not truncated ({log.stat().st_size} bytes, at most {MAX_ACCURACY_LOG_SIZE})",
            )
        )
    data = log.read_bytes()
    if kept_root is None:
        if digest is not None and not is_truncated(data) and sha256_of(log) != digest:
            out.append(
                problem(
                    txt,
                    "accuracy_hash_mismatch",
                    f"hash={digest} is not the sha256 of the whole {log.name} beside it ({sha256_of(log)})",
                )
            )
        return
    kept = kept_accuracy_log(kept_root, relative)
    if not kept.is_file():
        out.append(
            problem(kept, "accuracy_kept_missing", f"the full accuracy log for {log} is not kept at {kept}")
        )
        return
    findings.kept_log = kept
    full_digest = sha256_of(kept)
    if digest is not None and full_digest != digest:
        out.append(
            problem(
                txt,
                "accuracy_hash_mismatch",
                f"hash={digest} is not the sha256 of the kept full log {kept} ({full_digest})",
            )
        )
    if truncated(kept.read_bytes()) != data:
        out.append(
            problem(
                log,
                "accuracy_truncation_mismatch",
                f"{log.name} is not the truncation of the kept full log {kept}",
            )
        )
    if bench is not None:
        distinct = _distinct_samples(kept)
        if distinct is None:
            out.append(
                problem(
                    kept,
                    "accuracy_log_corrupt",
                    f"the kept accuracy log {kept} is not LoadGen's JSON (entries with qsl_idx)",
                )
            )
        elif distinct != bench.dataset_size:
            out.append(
                problem(
                    kept,
                    "dataset_coverage",
                    f"the kept accuracy log holds {distinct} distinct samples, "
                    f"dataset size: {bench.dataset_size}",
                )
            )


def accuracy_problems(
    acc_dir: Path,
    relative: Path,
    rules: RoundRules,
    bench: BenchmarkRules,
    division: str,
    kept_root: Path | None,
) -> AccuracyFindings:
    """A scenario's accuracy/ directory. `relative`: the directory relative to the tree root."""
    findings = AccuracyFindings()
    out = findings.problems
    has_detail = (acc_dir / DETAIL_NAME).is_file()
    for name in ACCURACY_FILES:
        # with the detail log there, load_run reports a missing summary
        if not (acc_dir / name).is_file() and not (has_detail and name == SUMMARY_NAME):
            out.append(problem(acc_dir / name, "file_missing", f"{acc_dir} is missing {name}"))
    if has_detail:
        logs, load_problems = load_run(acc_dir)
        out.extend(load_problems)
        if logs is not None:
            findings.logs = logs
            out.extend(run_problems(logs, rules, bench, division, mode="accuracy"))
    txt = acc_dir / ACCURACY_TXT_NAME
    if txt.is_file():
        values = accuracy_values(txt, bench.accuracy_pattern)
        findings.value = values[-1] if values else None  # the one upstream reports: it keeps the last
        if findings.value is None:
            out.append(
                problem(
                    txt,
                    "accuracy_result",
                    f"no line matches the {bench.name} accuracy pattern "
                    f"({bench.accuracy_metric}: {bench.accuracy_pattern})",
                )
            )
        elif division != "open":
            # accuracy_check.py accuracy_result_check: every matching line must reach the target
            out.extend(
                problem(txt, "accuracy_target", f"accuracy not met: expected={bench.accuracy_target:f}, found={v}")
                for v in values
                if v < bench.accuracy_target
            )
    _hash_and_truncation(acc_dir, relative, kept_root, findings, bench)
    return findings


def test01_accuracy_problems(acc_dir: Path, relative: Path, kept_root: Path | None) -> AccuracyFindings:
    """TEST01/accuracy/: truncation processes it like the main accuracy log (truncate_accuracy_log.py
    requires its accuracy.txt), so it gets the same hash and size rules."""
    findings = AccuracyFindings()
    log, txt = acc_dir / ACCURACY_JSON_NAME, acc_dir / ACCURACY_TXT_NAME
    if log.is_file() and not txt.is_file():
        findings.problems.append(
            problem(
                txt,
                "file_missing",
                f"{acc_dir} is missing {ACCURACY_TXT_NAME} (the truncation tool appends the hash to it)",
            )
        )
    _hash_and_truncation(acc_dir, relative, kept_root, findings, None)
    return findings


__all__ = ["AccuracyFindings", "accuracy_problems", "accuracy_values", "test01_accuracy_problems"]
