"""All four LoadGen scenarios on both real backends through the whole harness (quick profile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import open_dataset
from mlperf_ext.store import ResultsStore
from tests.harness.conftest import SHORT, numpy_top1
from tiers.runner import layout
from tiers.sweep import run_points

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
RUNTIMES = ("onnxruntime", "openvino")
#: a Server target well inside what the small MLP sustains, and high enough that a short run issues the
#: queries early stopping needs at the 99th percentile; with it these runs need no search
SERVER_TARGET = {"server_target_qps": 5000}


@pytest.fixture(scope="module")
def sweep(mlp_model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("work")
    points = [RunPoint(model=str(mlp_model), dataset="mnist", backend=b, scenario=s, batch=4, threads=1,
                       streams=2 if s == "Offline" else 1,
                       settings={**SHORT, **(SERVER_TARGET if s == "Server" else {})}, timeout_s=300)
              for b in RUNTIMES for s in SCENARIOS]
    results = run_points(points, workdir)
    return workdir, points, results


def test_every_scenario_runs_on_both_backends_and_is_valid(sweep):
    _workdir, points, results = sweep
    assert [(r.point.backend, r.point.scenario) for r in results] == [(p.backend, p.scenario) for p in points]
    for r in results:
        assert r.status == "ok", r.error
        assert r.system.valid is True, r.system.invalid_reasons
        assert r.system.loadgen_version.startswith("6.0.17")
        assert r.system.metric_value is not None and r.system.metric_value > 0
        assert r.system.throughput > 0 and r.compute.throughput > 0
        assert r.system.lat_p50_ms <= r.system.lat_p90_ms <= r.system.lat_p99_ms
        assert r.compute.lat_p50_ms <= r.compute.lat_p99_ms
        assert r.compliant is None  # only the audit checker may say a run is compliant
        assert r.callback_errors == 0
        assert (r.runtime.precision, r.runtime.compute_dtype) == ("fp32", "fp32")
        assert "system_above_compute" not in r.flags, r.flags
        # Server and Offline go through the native SUT; SingleStream and MultiStream at one stream run inline
        assert r.dispatch.impl == ("native" if r.point.scenario in ("Server", "Offline") else "python")


def test_metric_matches_scenario(sweep):
    expected = {"SingleStream": "early_stopping_latency_ss", "MultiStream": "early_stopping_latency_ms",
                "Server": "result_completed_samples_per_sec", "Offline": "result_samples_per_second"}
    for r in sweep[2]:
        assert r.system.metric_name == expected[r.point.scenario]


def test_logs_are_loadgens_and_settings_recorded(sweep):
    stored = ResultsStore(layout.store_path(sweep[0])).results()
    assert len(stored) == len(sweep[2])
    for r in stored:
        run_dir = Path(r.run_dir)
        detail = (run_dir / "loadgen" / "mlperf_log_detail.txt").read_text().splitlines()
        assert detail[0].startswith(":::MLLOG")
        assert (run_dir / "loadgen" / "mlperf_log_summary.txt").exists()
        assert r.settings.effective["min_duration_ms"] == SHORT["min_duration_ms"]
        assert r.runtime.name == r.point.backend
        if r.point.backend == "onnxruntime":
            assert r.runtime.providers[0] == "CPUExecutionProvider"


def test_compute_is_timed_at_the_points_deployment(sweep):
    for r in sweep[2]:
        assert r.compute.streams == r.point.streams  # Offline ran with 2 streams: compute timed them at once
        assert r.compute.before_throughput > 0 and r.compute.after_throughput > 0 and r.compute.drift >= 0
    batches = {(r.point.backend, r.point.scenario): r.compute.batch for r in sweep[2]}
    for backend in RUNTIMES:
        assert batches[(backend, "SingleStream")] == 1
        assert batches[(backend, "Offline")] == 4
        assert batches[(backend, "Server")] == 4
        assert batches[(backend, "MultiStream")] == 4  # min(batch, samples_per_query=8)


def test_the_batches_formed_are_recorded(sweep):
    for r in sweep[2]:
        sizes = {int(k): v for k, v in r.dispatch.batch_sizes.items()}
        assert sum(size * n for size, n in sizes.items()) == r.dispatch.samples
        assert max(sizes) <= r.point.batch
        if r.point.scenario == "SingleStream":
            assert set(sizes) == {1}
        if r.point.scenario == "Offline":
            assert sizes[4] >= r.dispatch.batches - 2  # every batch full but at most one short tail per stream


def test_rerun_skips_stored_points(sweep):
    workdir, points, _results = sweep
    before = len(ResultsStore(layout.store_path(workdir)).rows(latest_only=False))
    assert run_points(points[:2], workdir) == []
    assert len(ResultsStore(layout.store_path(workdir)).rows(latest_only=False)) == before


@pytest.mark.parametrize("backend,scenario,streams,batch", [(b, "Offline", 1, 32) for b in RUNTIMES] + [
    ("onnxruntime", "Server", 2, 32),  # batches of every size from two streams' response slots
    ("openvino", "Server", 1, 1)])  # each query on LoadGen's issue thread (the adapter's run_one)
def test_accuracy_mode_scores_what_the_model_predicts(backend, scenario, streams, batch, mlp_model, tmp_path):
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend=backend, scenario=scenario, streams=streams,
                     mode="accuracy", batch=batch, timeout_s=300,
                     settings={**SHORT, **(SERVER_TARGET if scenario == "Server" else {})})
    [r] = run_points([point], tmp_path)
    assert r.status == "ok", r.error
    data = open_dataset("mnist")
    expected = float(np.mean(numpy_top1(mlp_model, data.samples) == data.labels))
    assert r.accuracy.total == len(data) == 1000
    assert r.accuracy.value == pytest.approx(expected, abs=0.002)  # float rounding may flip a tie
    if batch == 1:
        assert {int(k): v for k, v in r.dispatch.batch_sizes.items()} == {1: 1000}
    line = (Path(r.run_dir) / "accuracy.txt").read_text().strip()
    assert line == f"accuracy={100 * r.accuracy.value:.3f}%, good={r.accuracy.good}, total=1000" == r.accuracy.line


@pytest.mark.parametrize("scenario", ["Server", "MultiStream"])
def test_several_streams_complete_every_sample(scenario, tmp_path):
    # the null backend makes batches so short that streams race for the queue
    point = RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario=scenario, batch=4, streams=2,
                     settings={**SHORT, "server_target_qps": 20000}, timeout_s=120)
    [r] = run_points([point], tmp_path)
    assert r.status == "ok", r.error
    assert r.callback_errors == 0 and r.system.valid is True


def test_compute_excludes_what_the_system_path_includes(tmp_path):
    """A device behind a link: every system batch pays a transfer the compute path never pays."""
    from tests.harness.faulty_backends import SlowSystemBackend

    point = RunPoint(model="none.onnx", dataset="mnist", backend="tests.harness.faulty_backends:SlowSystemBackend",
                     scenario="SingleStream", settings={**SHORT, "min_query_count": 100}, timeout_s=120)
    [r] = run_points([point], tmp_path)
    assert r.status == "ok", r.error
    transfer_ms = 1e3 * SlowSystemBackend.TRANSFER_S
    assert r.system.lat_p50_ms >= transfer_ms  # sleep never returns early: the system path holds the transfer
    assert r.compute.lat_p99_ms < transfer_ms  # the compute path never pays it
