"""All four LoadGen scenarios on both real backends through the whole harness (quick profile)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import open_dataset
from mlperf_ext.store import ResultsStore
from tests.harness.conftest import SHORT, numpy_top1
from tiers.sweep import run_points, store_path

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
BACKENDS = ("onnxruntime", "openvino")


@pytest.fixture(scope="module")
def sweep(mlp_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("work")
    points = [RunPoint(model=str(mlp_model), dataset="mnist", backend=b, scenario=s, batch=4, threads=1,
                       streams=2 if s == "Offline" else 1, settings=dict(SHORT), timeout_s=300)
              for b in BACKENDS for s in SCENARIOS]
    rows = run_points(points, workdir)
    return workdir, points, rows


def test_every_scenario_runs_on_both_backends(sweep):
    _workdir, points, rows = sweep
    assert [(r["backend"], r["scenario"]) for r in rows] == [(p.backend, p.scenario) for p in points]
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert row["loadgen_version"] == "6.0.17"
        assert row["valid"] in (0, 1)
        assert row["metric_value"] is not None and row["metric_value"] > 0
        assert row["sys_throughput"] > 0 and row["compute_throughput"] > 0
        assert row["sys_lat_p50_ms"] <= row["sys_lat_p90_ms"] <= row["sys_lat_p99_ms"]
        assert row["compute_lat_p50_ms"] <= row["compute_lat_p99_ms"]
        assert row["compliant"] == 0  # the quick profile is never compliant
        assert row["callback_errors"] == 0


def test_metric_matches_scenario(sweep):
    expected = {"SingleStream": "early_stopping_latency_ss", "MultiStream": "early_stopping_latency_ms",
                "Server": "result_completed_samples_per_sec", "Offline": "result_samples_per_second"}
    for row in sweep[2]:
        assert row["metric_name"] == expected[row["scenario"]]


def test_logs_are_loadgens_and_settings_recorded(sweep):
    stored = ResultsStore(store_path(sweep[0])).rows()
    assert len(stored) == len(sweep[2])
    for row in stored:
        run_dir = Path(row["run_dir"])
        detail = (run_dir / "loadgen" / "mlperf_log_detail.txt").read_text().splitlines()
        assert detail[0].startswith(":::MLLOG")
        assert (run_dir / "loadgen" / "mlperf_log_summary.txt").exists()
        settings = json.loads(row["settings_json"])
        assert settings["effective"]["min_duration_ms"] == SHORT["min_duration_ms"]
        runtime = json.loads(row["runtime_json"])
        assert runtime["runtime"] == row["backend"]
        if row["backend"] == "onnxruntime":
            assert runtime["providers"][0] == "CPUExecutionProvider"


def test_compute_batch_follows_scenario(sweep):
    batches = {(r["backend"], r["scenario"]): r["compute_batch"] for r in sweep[2]}
    for backend in BACKENDS:
        assert batches[(backend, "SingleStream")] == 1
        assert batches[(backend, "Offline")] == 4
        assert batches[(backend, "Server")] == 4
        assert batches[(backend, "MultiStream")] == 4  # min(batch, samples_per_query=8)


def test_rerun_skips_stored_points(sweep, capsys):
    workdir, points, _rows = sweep
    before = len(ResultsStore(store_path(workdir)).rows(latest_only=False))
    again = run_points(points[:2], workdir)
    assert again == []
    assert len(ResultsStore(store_path(workdir)).rows(latest_only=False)) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_accuracy_mode_scores_what_the_model_predicts(backend, mlp_model, tmp_path):
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend=backend, scenario="Offline",
                     mode="accuracy", batch=32, settings=dict(SHORT), timeout_s=300)
    [row] = run_points([point], tmp_path)
    assert row["status"] == "ok", row["error"]
    data = open_dataset("mnist")
    expected = float(np.mean(numpy_top1(mlp_model, data.samples) == data.labels))
    assert row["accuracy_total"] == len(data) == 1000
    assert row["accuracy"] == pytest.approx(expected, abs=0.002)  # float rounding may flip a tie
    line = (Path(row["run_dir"]) / "accuracy.txt").read_text().strip()
    assert line == f"accuracy={100 * row['accuracy']:.3f}%, good={row['accuracy_good']}, total=1000"


@pytest.mark.parametrize("scenario", ["Server", "MultiStream"])
def test_several_streams_complete_every_sample(scenario, tmp_path):
    # the null backend makes batches so short that streams race for the queue
    point = RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario=scenario, batch=4, streams=2,
                     settings=dict(SHORT), timeout_s=120)
    [row] = run_points([point], tmp_path)
    assert row["status"] == "ok", row["error"]
    assert row["callback_errors"] == 0
