"""A problem the checker found: one file, one rule, one line of text; and the catalogue of rules.

Each rule names where it comes from: "upstream" rules reproduce a check of MLCommons'
submission checker (github.com/mlcommons/inference tools/submission/submission_checker/checks/), with its
message where it has one; "added" rules refuse what that checker lets through; "rule-text" rules are
warnings: they say where the written MLPerf rules are stricter than what upstream's scripts do, while the
tree carries the scripts' verdict (MLCommons judges with the scripts). Warnings alone do not fail a tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: rule -> (origin, what it refuses)
RULES: dict[str, tuple[str, str]] = {
    # tree layout and file presence (loader.py, main.py; submission_structure.md)
    "tree_root": ("upstream", "the root must be a directory holding closed/, open/ or network/"),
    "tree_extra_entry": (
        "upstream",
        "nothing but division directories at the root (submission_checker_old.py)",
    ),
    "results_missing": ("upstream", "a submitter needs a results/ directory"),
    "file_missing": ("upstream", "a required file or directory of the v6.1 layout is absent"),
    "file_empty": ("upstream", "README.md and user.conf must not be empty (measurements_checks.py)"),
    "benchmark_unknown": (
        "upstream",
        "a benchmark directory must be an official name or mapped in model_mapping.json",
    ),
    "scenario_unknown": ("upstream", "a scenario directory must be a LoadGen scenario"),
    "scenarios_missing": (
        "upstream",
        "closed/network: every required scenario of the system type is present",
    ),
    "scenarios_unknown": (
        "upstream",
        "closed/network: no scenario or benchmark outside the system type's suite",
    ),
    "model_mapping": ("upstream", "model_mapping.json must be a JSON object naming known benchmarks"),
    # systems/<id>.json (system_check.py)
    "system_json_missing": ("upstream", "each results/<id> needs systems/<id>.json"),
    "system_json_corrupt": ("upstream", "systems/<id>.json must be a JSON object"),
    "system_field_missing": ("upstream", "every SYSTEM_DESC_REQUIRED_FIELDS key is present"),
    "system_field_empty": ("upstream", 'meaningful fields are truthy (0 is empty: write "0")'),
    "system_status": ("upstream", "status is available, preview or rdi"),
    "system_type": ("upstream", "system_type is datacenter, edge or both"),
    "system_submitter": ("upstream", "submitter matches the directory"),
    "system_division": ("upstream", "division matches the directory"),
    "system_network_mode": ("upstream", "is_network is true exactly in the network division"),
    # measurements (measurements_checks.py)
    "measurements_missing": ("upstream", "measurements.json is present"),
    "measurements_corrupt": ("upstream", "measurements.json is a JSON object"),
    "measurements_field_missing": ("upstream", "every SYSTEM_IMP_REQUIRED_FILES key is present"),
    "measurements_field_empty": ("upstream", "every SYSTEM_IMP_REQUIRED_FILES value is meaningful"),
    "src_missing": ("upstream", "the submitter's src/ directory exists"),
    # one LoadGen run's logs (performance_check.py, plus what it misses)
    "detail_log_corrupt": ("added", "the detail log is missing, empty, garbled or not LoadGen's"),
    "detail_log_truncated": ("added", "the detail log stops before LoadGen's last entry"),
    "summary_corrupt": ("added", "the summary log is missing or unreadable"),
    "summary_disagrees": ("added", "summary and detail log report different values (a tampered figure)"),
    "detail_inconsistent": ("added", "the detail log's figures contradict each other (a tampered figure)"),
    "run_mode": ("added", "the log's test mode is the one its directory holds"),
    "scenario_mismatch": (
        "upstream",
        "the run's scenario is its directory's, or a result edge systems may infer",
    ),
    "result_invalid": ("added", "LoadGen's result_validity is VALID (upstream never refuses INVALID)"),
    "loadgen_errors": ("upstream", "no line LoadGen flagged is_error"),
    "seeds": ("upstream", "qsl, sample-index and schedule seeds are the round's"),
    "performance_sample_count": ("upstream", "effective_performance_sample_count >= the benchmark's"),
    "early_stopping": ("upstream", "SingleStream/MultiStream/Server met the early-stopping condition"),
    "latency_bound": (
        "upstream",
        "the latency bound is the benchmark's (Server effective_target_latency_ns)",
    ),
    "latency_percentile": ("added", "the target latency percentile is not below mlperf.conf's"),
    "min_query_count": ("upstream", "non-early-stopping scenarios meet the benchmark's minimum query count"),
    "offline_samples_per_query": ("upstream", "closed Offline: samples per query >= the benchmark's minimum"),
    "min_duration": ("upstream", "effective_min_duration_ms >= 600000"),
    "issue_settings": (
        "added",
        "a main performance run issues samples as LoadGen does by default, no audit.config",
    ),
    "compliance_settings": (
        "added",
        "a compliance run found its audit.config and ran with the test's settings",
    ),
    # accuracy (accuracy_check.py, plus what it misses)
    "accuracy_result": ("upstream", "accuracy.txt holds the benchmark's accuracy line"),
    "accuracy_target": ("upstream", "closed: the accuracy reaches the target"),
    "accuracy_hash_missing": ("upstream", "accuracy.txt carries hash=<sha256 of the full accuracy log>"),
    "accuracy_hash_mismatch": ("added", "the hash is the sha256 of the accuracy log the tool kept"),
    "accuracy_kept_missing": ("added", "the full accuracy log is kept beside the tree"),
    "accuracy_truncation_mismatch": ("added", "the truncated log is the truncation of the kept log"),
    "accuracy_log_not_truncated": ("upstream", "mlperf_log_accuracy.json is at most 10 KiB"),
    "accuracy_log_corrupt": ("added", "the kept full accuracy log is LoadGen JSON"),
    "dataset_coverage": ("upstream", "the accuracy run covers the whole dataset (and the kept log shows it)"),
    # compliance (compliance_check.py, plus what it misses)
    "compliance_missing": ("upstream", "the benchmark's TEST01/TEST04 directories are present"),
    "compliance_file_missing": ("upstream", "verify_*.txt and performance/run_1 logs are present"),
    "compliance_perf_files": (
        "upstream",
        "TEST0x/performance/run_1 holds exactly the detail and summary logs",
    ),
    "compliance_accuracy_failed": (
        "upstream",
        "TEST01 verify_accuracy.txt says TEST PASS (or baseline within delta)",
    ),
    "compliance_performance_failed": ("upstream", "verify_performance.txt says TEST PASS"),
    "compliance_reverify": (
        "added",
        "re-running upstream's verification on the tree's logs gives the verdict filed",
    ),
    "compliance_tolerance_rule_text": (
        "rule-text",
        "TEST04/TEST01: within 10 % unless the reference latency is short (SS <= 200 us, MS <= 1.6 ms); "
        "upstream's TEST04 script allows 20 % for almost every run",
    ),
    "test01_response_mismatch": (
        "added",
        "TEST01: every performance-mode response equals the accuracy-mode one, whole (upstream: element [0], "
        "first occurrences)",
    ),
    "test01_unmatched_sample": (
        "added",
        "TEST01: every performance-mode qsl_idx has an accuracy-mode response (upstream only counts them)",
    ),
    "test01_accuracy_log_inconsistent": (
        "added",
        "TEST01: the accuracy log's duplicate qsl_idx carry the same response (upstream only counts them)",
    ),
    "test01_baseline_files": (
        "upstream",
        "TEST01's fallback: TEST01/accuracy holds exactly the accuracy log, accuracy.txt and the "
        "baseline/compliance accuracy files",
    ),
    # power (power_check.py, power/power_checker.py)
    "power_files": ("upstream", "a power result's power/, ranging/ and run_1/ hold just the required files"),
    "power_session_json": ("upstream", "power/client.json and server.json are JSON with every session field"),
    "power_sources": ("upstream", "client and server ran a released power-dev (sources_checksums.json)"),
    "power_ptd_messages": (
        "upstream",
        "PTDaemon version and meter supported, normal replies, initial ranges restored after the test",
    ),
    "power_uuid": ("upstream", "client.json and server.json name the same client and server uuids"),
    "power_session_name": ("upstream", "client.json and server.json name the same session"),
    "power_phases": ("upstream", "client and server phases agree within 800 ms and hold LoadGen's window"),
    "power_ranging_delta": ("upstream", "average testing power is not more than 5% below ranging power"),
    "power_messages": ("upstream", "client and server recorded the same commands, replies and version"),
    "power_results_checksum": ("upstream", "the session's recorded sha1s agree and match the files"),
    "power_ptd_log": ("upstream", "ptd_logs.txt has the ranging stage, uncertainty checking on before it"),
    "power_ptd_errors": (
        "upstream",
        "no PTDaemon ERROR outside ranging, no uncertainty above 1% during the testing run",
    ),
    "power_ptd_config": ("upstream", "every analyzer is a supported device; WT330 multichannel uses 2"),
    "power_debug": ("upstream", "the power server did not run in debug mode"),
    "power_no_samples": ("upstream", "spl.txt has positive samples inside LoadGen's power window"),
    "power_nameplate_corrupt": ("upstream", "systems/<id>_power.yaml loads as YAML (system_check.py)"),
    "power_nameplate": (
        "added",
        "a power result states its design power (upstream only warns when it is missing)",
    ),
    "power_system_fields": (
        "added",
        "the systems JSON has SYSTEM_DESC_REQUIRED_FIELDS_POWER (upstream's check is disabled)",
    ),
    "power_measure_files": (
        "added",
        "analyzer_table.* and power_settings.* present and not empty (the v6.1 checker dropped it)",
    ),
    "power_spl_corrupt": ("added", "every spl.txt Time line is PTDaemon's sample (upstream crashes)"),
    "power_spl_mark": ("added", "spl.txt samples carry this session's ranging/testing mark"),
    "power_ranging_run": ("added", "ranging/ holds LoadGen's performance run of run_1's scenario"),
    # the stored run behind a verdict (audit.verdicts; a tree's logs cannot show it)
    "sut_runs_no_model": ("added", "the run's backend ran the model (the null backend answers without one)"),
    # user.conf under the submission profile
    "user_conf_relaxed": ("added", "user.conf does not lower mlperf.conf's duration, counts or percentiles"),
    "user_conf_unparsable": ("added", "every user.conf line is 'model.scenario.key = number'"),
}


#: origins whose findings are warnings (the tree still passes MLCommons' tools)
WARNING_ORIGINS = ("rule-text",)


def errors_of(problems: list[Problem]) -> list[Problem]:
    """The findings that fail a tree or a run (everything but warnings)."""
    return [p for p in problems if not p.is_warning]


@dataclass(frozen=True)
class Problem:
    """One refusal: the file it concerns, the rule (a key of RULES) and what is wrong."""

    path: Path
    rule: str
    message: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown checker rule '{self.rule}'")

    @property
    def is_warning(self) -> bool:
        return RULES[self.rule][0] in WARNING_ORIGINS

    def __str__(self) -> str:
        kind = "warning " if self.is_warning else ""
        return f"{self.path}: {kind}[{self.rule}] {self.message}"


def problem(path: Path, rule: str, message: str) -> Problem:
    return Problem(Path(path), rule, message)


__all__ = ["Problem", "RULES", "WARNING_ORIGINS", "errors_of", "problem"]
