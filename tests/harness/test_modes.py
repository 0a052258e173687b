"""Operating modes from the platform catalog: applied by the child, read back into the row, and refused
with the reason where this machine cannot apply them (never run in another mode)."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError
from tests.harness.conftest import SHORT
from tiers.level0.platforms import check_apply
from tiers.runner.modes import CPU_SYSFS, one_per_core
from tiers.runner.validate import PointValidator
from tiers.sweep import run_points


def null_point(mode: str | None, **kw) -> RunPoint:
    return RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Offline", batch=64,
                    operating_mode=mode, settings=dict(SHORT), timeout_s=120, **kw)


def test_a_mode_is_applied_in_the_child_and_read_back(tmp_path):
    [r] = run_points([null_point("one-core")], tmp_path)
    assert r.status == "ok", r.error
    assert r.mode.actions == {"cpus": 1} and r.mode.applied["cpus"] == sorted(os.sched_getaffinity(0))[:1]
    [plain] = run_points([null_point(None)], tmp_path)
    assert plain.mode is None and plain.point_key != r.point_key


def test_cpufreq_modes_run_only_where_cpufreq_is_writable(tmp_path):
    [r] = run_points([null_point("governor-performance")], tmp_path)
    governor = CPU_SYSFS / f"cpu{min(os.sched_getaffinity(0))}" / "cpufreq" / "scaling_governor"
    if governor.exists() and os.access(governor, os.W_OK):
        assert r.status == "ok" and set(r.mode.applied["cpufreq_governor"].values()) == {"performance"}
    else:
        assert r.status == "refused" and "cpufreq" in r.error and r.run_dir is None


def test_a_jetson_mode_off_a_jetson_is_refused(tmp_path):
    [r] = run_points([replace(null_point("maxq"), platform="jetson-tx2")], tmp_path)
    if shutil.which("nvpmodel"):
        pytest.skip("this machine has nvpmodel")
    assert r.status == "refused" and "nvpmodel is not installed here" in r.error


def test_a_backend_mode_for_another_backend_is_refused_and_applied_by_its_own(mlp_model, tmp_path):
    [wrong] = run_points([null_point("ov-latency")], tmp_path)
    assert wrong.status == "refused" and "applied by the openvino backend" in wrong.error
    pytest.importorskip("openvino")
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend="openvino", scenario="Offline", batch=8,
                     operating_mode="ov-latency", settings=dict(SHORT), timeout_s=120)
    [r] = run_points([point], tmp_path)
    assert r.status == "ok", r.error
    assert r.runtime.settings["PERFORMANCE_HINT"] == "LATENCY"  # read back from the compiled model


def test_unknown_modes_and_actions_are_bad_input():
    with pytest.raises(ConfigError, match="has no operating mode 'turbo'"):
        PointValidator().plan(null_point("turbo"))
    with pytest.raises(ConfigError, match="unknown apply action 'overclock'"):
        check_apply("test", {"overclock": 1})
    with pytest.raises(ConfigError, match="is not a positive int"):
        check_apply("test", {"cpus": 0})


def test_one_logical_cpu_per_core_from_sysfs_topology(tmp_path):
    for cpu, siblings in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}.items():
        top = Path(tmp_path) / f"cpu{cpu}" / "topology"
        top.mkdir(parents=True)
        (top / "thread_siblings_list").write_text(siblings + "\n")
    assert one_per_core([0, 1, 2, 3], tmp_path) == [0, 1]
