"""Build a v6.1 submission tree around real LoadGen logs, the way a submitter's tooling would.

The logs are copied unchanged; accuracy.txt is MLPerf's accuracy line computed from the log
(mlperf_ext.accuracy), the verify_*.txt files come from audit.verify on the full logs, and the
accuracy logs are then truncated with audit.truncate, which keeps the full ones beside the tree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from audit import layout
from audit.rules import SYSTEM_REQUIRED_FIELDS
from audit.truncate import truncate_accuracy_dir
from audit.verify import verify_test01_accuracy, verify_test01_performance, verify_test04_performance
from mlperf_ext.accuracy import evaluate
from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME

SUBMITTER = "MyOrg"
SYSTEM = "cpu2c-null"
BENCHMARK = "resnet"
SCENARIO = "Offline"
LABELS = np.arange(50000) % 10  # the null SUT answers qsl_index % 10


def system_description(division: str, system_type: str) -> dict:
    values = {key: f"{key} of the test host" for key in SYSTEM_REQUIRED_FIELDS}
    values.update(
        {
            "division": division,
            "submitter": SUBMITTER,
            "status": "available",
            "system_type": system_type,
            "system_name": "Null SUT test host",
            "number_of_nodes": "1",
            "host_processors_per_node": "1",
            "host_processor_core_count": "2",
            "accelerators_per_node": "0",
            "accelerator_model_name": "N/A",
            "accelerator_memory_capacity": "N/A",
            "host_network_card_count": "1",
            "framework": "mlperf-ext null",
        }
    )
    return values


MEASUREMENTS = {
    "input_data_types": "int32",
    "retraining": "No",
    "starting_weights_filename": "none (null SUT)",
    "weight_data_types": "none",
    "weight_transformations": "none",
}


def _copy_logs(src: Path, dst: Path, *names: str) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)


def build_tree(
    dest: Path, runs: dict[str, Path], division: str = "closed", system_type: str = "edge"
) -> tuple[Path, Path]:
    """A tree for one resnet Offline result with TEST01 and TEST04; returns (root, kept root)."""
    root = Path(dest) / "submission"
    kept = layout.default_kept_root(root)
    paths = layout.scenario_paths(root, division, SUBMITTER, SYSTEM, BENCHMARK, SCENARIO)
    system_json = paths.system_json
    system_json.parent.mkdir(parents=True, exist_ok=True)
    system_json.write_text(json.dumps(system_description(division, system_type), indent=2))
    src = layout.src_dir(root, division, SUBMITTER)
    src.mkdir(parents=True, exist_ok=True)
    (src / "README.md").write_text("mlperf-ext test harness\n")

    _copy_logs(runs["performance"], paths.performance_run, DETAIL_NAME, SUMMARY_NAME)
    _copy_logs(runs["accuracy"], paths.accuracy_dir, DETAIL_NAME, SUMMARY_NAME, layout.ACCURACY_JSON_NAME)
    (paths.accuracy_dir / layout.ACCURACY_TXT_NAME).write_text(
        evaluate(paths.accuracy_dir / layout.ACCURACY_JSON_NAME, LABELS).line + "\n"
    )

    t01 = "TEST01"
    _copy_logs(runs[t01], paths.test_performance_run(t01), DETAIL_NAME, SUMMARY_NAME)
    _copy_logs(runs[t01], paths.test_accuracy_dir(t01), layout.ACCURACY_JSON_NAME)
    (paths.test_accuracy_dir(t01) / layout.ACCURACY_TXT_NAME).write_text(
        evaluate(paths.test_accuracy_dir(t01) / layout.ACCURACY_JSON_NAME, LABELS).line + "\n"
    )
    verify_test01_accuracy(
        paths.accuracy_dir / layout.ACCURACY_JSON_NAME,
        paths.test_accuracy_dir(t01) / layout.ACCURACY_JSON_NAME,
    ).write(paths.test_dir(t01))
    verify_test01_performance(
        paths.performance_run / DETAIL_NAME, paths.test_performance_run(t01) / DETAIL_NAME
    ).write(paths.test_dir(t01))
    t04 = "TEST04"
    _copy_logs(runs[t04], paths.test_performance_run(t04), DETAIL_NAME, SUMMARY_NAME)
    verify_test04_performance(
        paths.performance_run / SUMMARY_NAME, paths.test_performance_run(t04) / SUMMARY_NAME
    ).write(paths.test_dir(t04))

    for acc_dir in (paths.accuracy_dir, paths.test_accuracy_dir(t01)):
        relative = acc_dir.relative_to(root)
        truncate_accuracy_dir(acc_dir, layout.kept_accuracy_log(kept, relative))

    paths.measurements.write_text(json.dumps(MEASUREMENTS, indent=2))
    paths.user_conf.write_text("resnet50.Offline.target_qps = 24576\n")
    paths.readme.write_text("Reproduce: python tests/audit/loadgen_resnet_run.py performance OUT\n")
    return root, kept


def copy_tree(root: Path, kept: Path, dest: Path) -> tuple[Path, Path]:
    """A private copy of a tree and its kept logs, for a test to damage."""
    new_root = Path(dest) / root.name
    shutil.copytree(root, new_root)
    new_kept = layout.default_kept_root(new_root)
    shutil.copytree(kept, new_kept)
    return new_root, new_kept


def scenario(root: Path, division: str = "closed") -> layout.ScenarioPaths:
    return layout.scenario_paths(root, division, SUBMITTER, SYSTEM, BENCHMARK, SCENARIO)
