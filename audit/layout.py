"""The v6.1 submission tree: the one module that names its paths.

    <root>/<division>/<submitter>/
        systems/<system>.json
        src/                                    (the code; v6.x name, "code" before)
        model_mapping.json                      (open division: custom name -> official benchmark)
        results/<system>/<benchmark>/<scenario>/
            README.md, user.conf, measurements.json
            performance/run_1/{mlperf_log_detail.txt, mlperf_log_summary.txt}
            accuracy/{accuracy.txt, mlperf_log_accuracy.json, mlperf_log_detail.txt, mlperf_log_summary.txt}
            TEST01/{verify_accuracy.txt, verify_performance.txt, accuracy/..., performance/run_1/...}
            TEST04/{verify_performance.txt, performance/run_1/...}

Source: github.com/mlcommons/inference tools/submission/submission_structure.md and the `*_PATH`
tables of tools/submission/submission_checker/constants.py ("v6.1" entries).

The full (untruncated) accuracy logs are kept outside the tree, in a directory that mirrors it
(like truncate_accuracy_log.py --backup): `kept_accuracy_log` names a kept copy, and
`default_kept_root` is where packaging puts them unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME

SYSTEMS_DIR = "systems"
SRC_DIR = "src"
RESULTS_DIR = "results"
MODEL_MAPPING_NAME = "model_mapping.json"

PERFORMANCE_DIR = "performance"
RUN_DIR = "run_1"
ACCURACY_DIR = "accuracy"
ACCURACY_JSON_NAME = "mlperf_log_accuracy.json"
ACCURACY_TXT_NAME = "accuracy.txt"
TRACE_NAME = "mlperf_log_trace.json"
MEASUREMENTS_NAME = "measurements.json"
USER_CONF_NAME = "user.conf"
README_NAME = "README.md"
VERIFY_ACCURACY_NAME = "verify_accuracy.txt"
VERIFY_PERFORMANCE_NAME = "verify_performance.txt"

#: constants.py REQUIRED_PERF_FILES / REQUIRED_ACC_FILES / REQUIRED_MEASURE_FILES
PERFORMANCE_FILES = (DETAIL_NAME, SUMMARY_NAME)
ACCURACY_FILES = (SUMMARY_NAME, DETAIL_NAME, ACCURACY_TXT_NAME, ACCURACY_JSON_NAME)
SCENARIO_FILES = (USER_CONF_NAME, README_NAME)

KEPT_SUFFIX = "-full-accuracy-logs"


def submitter_dir(root: Path, division: str, submitter: str) -> Path:
    return Path(root) / division / submitter


def system_json_path(root: Path, division: str, submitter: str, system: str) -> Path:
    return submitter_dir(root, division, submitter) / SYSTEMS_DIR / f"{system}.json"


def src_dir(root: Path, division: str, submitter: str) -> Path:
    return submitter_dir(root, division, submitter) / SRC_DIR


def model_mapping_path(root: Path, division: str, submitter: str) -> Path:
    return submitter_dir(root, division, submitter) / MODEL_MAPPING_NAME


def results_dir(root: Path, division: str, submitter: str) -> Path:
    return submitter_dir(root, division, submitter) / RESULTS_DIR


@dataclass(frozen=True)
class ScenarioPaths:
    """Every path of one results/<system>/<benchmark>/<scenario>/ directory."""

    root: Path
    division: str
    submitter: str
    system: str
    benchmark: str  # the directory name (official, or an open-division custom name)
    scenario: str  # the directory name (LoadGen's spelling, or lower case)

    @property
    def dir(self) -> Path:
        return (
            results_dir(self.root, self.division, self.submitter)
            / self.system
            / self.benchmark
            / self.scenario
        )

    @property
    def relative(self) -> Path:
        """The scenario directory relative to the tree root (the kept logs mirror it)."""
        return Path(self.division, self.submitter, RESULTS_DIR, self.system, self.benchmark, self.scenario)

    @property
    def system_json(self) -> Path:
        return system_json_path(self.root, self.division, self.submitter, self.system)

    @property
    def performance_run(self) -> Path:
        return self.dir / PERFORMANCE_DIR / RUN_DIR

    @property
    def accuracy_dir(self) -> Path:
        return self.dir / ACCURACY_DIR

    @property
    def measurements(self) -> Path:
        return self.dir / MEASUREMENTS_NAME

    @property
    def user_conf(self) -> Path:
        return self.dir / USER_CONF_NAME

    @property
    def readme(self) -> Path:
        return self.dir / README_NAME

    def test_dir(self, test: str) -> Path:
        return self.dir / test

    def test_performance_run(self, test: str) -> Path:
        return self.test_dir(test) / PERFORMANCE_DIR / RUN_DIR

    def test_accuracy_dir(self, test: str) -> Path:
        return self.test_dir(test) / ACCURACY_DIR

    def verify_accuracy(self, test: str) -> Path:
        return self.test_dir(test) / VERIFY_ACCURACY_NAME

    def verify_performance(self, test: str) -> Path:
        return self.test_dir(test) / VERIFY_PERFORMANCE_NAME


def scenario_paths(
    root: Path, division: str, submitter: str, system: str, benchmark: str, scenario: str
) -> ScenarioPaths:
    return ScenarioPaths(Path(root), division, submitter, system, benchmark, scenario)


def default_kept_root(root: Path) -> Path:
    """Where the full accuracy logs of tree `root` are kept: a sibling `<root>-full-accuracy-logs/`
    (outside the tree, which must hold the truncated logs only)."""
    root = Path(root)
    return root.parent / f"{root.name}{KEPT_SUFFIX}"


def kept_accuracy_log(kept_root: Path, accuracy_dir_relative: Path) -> Path:
    """The kept full mlperf_log_accuracy.json for an accuracy directory given relative to the tree root
    (e.g. `paths.relative / "accuracy"` or `paths.relative / "TEST01" / "accuracy"`)."""
    return Path(kept_root) / accuracy_dir_relative / ACCURACY_JSON_NAME


def _dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def iter_scenarios(root: Path, division: str, submitter: str) -> Iterator[ScenarioPaths]:
    """Every results/<system>/<benchmark>/<scenario>/ directory of one submitter, sorted."""
    for system in _dirs(results_dir(root, division, submitter)):
        for benchmark in _dirs(system):
            for scenario in _dirs(benchmark):
                yield ScenarioPaths(
                    Path(root), division, submitter, system.name, benchmark.name, scenario.name
                )


__all__ = [
    "ACCURACY_FILES",
    "PERFORMANCE_FILES",
    "SCENARIO_FILES",
    "ScenarioPaths",
    "default_kept_root",
    "iter_scenarios",
    "kept_accuracy_log",
    "model_mapping_path",
    "results_dir",
    "scenario_paths",
    "src_dir",
    "submitter_dir",
    "system_json_path",
]
