"""Measurements that cannot mislead: contradictions are flagged, INVALID runs say why and are rerun once
when the harness's own hint caused them, the Server target is searched, and the key covers what decides
a measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.result import ComputeFigures, PointResult, SystemFigures
from mlperf_ext.store import ResultsStore
from scenarios import ComputeEstimate, DispatchConfig, get_scenario
from tests.harness.conftest import SHORT
from tiers.runner import layout, server_search
from tiers.runner.validate import PointValidator
from tiers.sweep import run_points

FAULTY = "tests.harness.faulty_backends"


def _compute(windows: list[float], before: float, after: float) -> ComputeFigures:
    ordered = sorted(windows)
    median = ordered[len(ordered) // 2]
    return ComputeFigures(throughput=median, spread=(ordered[-1] - ordered[0]) / median, window_throughputs=windows,
                          before_throughput=before, after_throughput=after, drift=abs(after - before) / before)


def test_system_above_compute_is_judged_against_the_compute_shown_with_its_own_spread():
    steady = _compute([200.0, 201.0, 199.0, 200.5, 199.5], 200.0, 200.0)  # windows within 1 %
    above = PointResult(system=SystemFigures(throughput=281.0), compute=steady)
    above.check_integrity()
    # the flag cites the compute figure every table shows (the median window), and the tolerance it allowed
    assert above.flags["system_above_compute"].startswith(
        "system 281/s exceeds compute 200/s (median of 5 windows) by 40 %, more than the compute windows' spread (1 %)")
    level = PointResult(system=SystemFigures(throughput=200.0), compute=steady)  # a ratio of 1.00 is no contradiction
    level.check_integrity()
    assert level.flags == {}
    wandering = _compute([200.0, 230.0, 190.0, 210.0, 205.0], 205.0, 205.0)  # this host's windows span 20 %
    within = PointResult(system=SystemFigures(throughput=235.0), compute=wandering)
    within.check_integrity()  # 15 % above the median, inside the compute's own 20 % range: chance, not a boundary
    assert within.flags == {}
    beyond = PointResult(system=SystemFigures(throughput=260.0), compute=wandering)
    beyond.check_integrity()
    assert "by 27 %, more than the compute windows' spread (20 %)" in beyond.flags["system_above_compute"]


def test_drift_between_before_and_after_is_flagged_noisy():
    r = PointResult(system=SystemFigures(throughput=100.0), compute=_compute([200.0] * 5 + [170.0] * 5, 200.0, 170.0))
    r.check_integrity()
    assert "moved 15 %" in r.flags["noisy"] and "200 -> 170/s" in r.flags["noisy"]
    quiet = PointResult(system=SystemFigures(throughput=100.0), compute=_compute([200.0] * 5 + [190.0] * 5, 200.0, 190.0))
    quiet.check_integrity()
    assert quiet.flags == {}


def test_a_load_that_starts_mid_run_is_flagged_noisy(mlp_model, tmp_path):
    # busy processes on every CPU from the first batch of the LoadGen run on: the compute timing after the
    # run is slower than the one before, and the row says the host did not stay quiet
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend=f"{FAULTY}:LoadInjectingBackend",
                     scenario="Offline", batch=32, threads=1, settings=dict(SHORT), timeout_s=300)
    r = run_points([point], tmp_path)[-1]
    assert r.status == "ok", r.error
    assert r.compute.after_throughput < r.compute.before_throughput
    assert "noisy" in r.flags, (r.compute.before_throughput, r.compute.after_throughput)


def test_offline_hint_does_not_assume_streams_add_throughput():
    # the estimate's throughput is already over all streams (timed at once): no multiplying by streams
    est = ComputeEstimate(batch=32, latency_s=0.001, throughput=40_000.0)
    one = get_scenario("Offline").auto_settings(est, DispatchConfig(batch=32, streams=1))
    two = get_scenario("Offline").auto_settings(est, DispatchConfig(batch=32, streams=2))
    assert one == two == {"offline_expected_qps": 60_000.0}


def test_server_target_is_never_derived_from_compute():
    est = ComputeEstimate(batch=8, latency_s=0.001, throughput=8000.0)
    assert get_scenario("Server").auto_settings(est, DispatchConfig(batch=8)) == {}


def test_invalid_from_the_harness_hint_is_rerun_once_and_both_runs_are_kept(tmp_path):
    point = RunPoint(model="none.onnx", dataset="mnist", backend=f"{FAULTY}:SlowComputeBackend", scenario="Offline",
                     batch=8, settings=dict(SHORT), timeout_s=120)
    first, second = run_points([point], tmp_path)
    assert first.status == "invalid" and "minimum duration not met" in first.error
    assert first.system.conditions["min_duration_met"] is False
    assert second.status == "ok" and second.system.valid is True
    assert second.retry_of == first.run_id and "INVALID with the harness's automatic hint" in second.notes[0]
    assert second.settings.auto["offline_expected_qps"] > 10 * first.settings.auto["offline_expected_qps"]
    assert "system_above_compute" in second.flags  # this backend's compute boundary is wrong, and the row says so
    store = ResultsStore(layout.store_path(tmp_path))
    assert [r["status"] for r in store.rows(latest_only=False)] == ["invalid", "ok"]
    assert run_points([point], tmp_path) == []  # the latest row is ok: settled


def test_invalid_with_the_users_own_setting_is_not_rerun(tmp_path):
    point = RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Offline", batch=8,
                     settings={**SHORT, "offline_expected_qps": 100}, timeout_s=120)
    [r] = run_points([point], tmp_path)
    assert r.status == "invalid" and r.system.valid is False and r.error
    [again] = run_points([point], tmp_path)  # an INVALID row is not settled: a re-run tries it again
    assert again.status == "invalid"


@pytest.fixture(scope="module")
def searched(mlp_model, tmp_path_factory):
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend="onnxruntime", scenario="Server", batch=4,
                     threads=1, settings=dict(SHORT), timeout_s=300)
    return run_points([point], tmp_path_factory.mktemp("search"))


def test_server_target_is_searched_and_the_run_uses_it(searched):
    final = searched[-1]
    search = final.search
    assert search is not None and 1 <= len(search.trace) <= server_search.MAX_PROBES
    # the highest accepted probe whose repeat (if it had one) did not fail
    refuted = {p["target_qps"] for p in search.trace if p.get("repeat") and not p["accepted"]}
    accepted = [p["target_qps"] for p in search.trace if p["accepted"] and p["target_qps"] not in refuted]
    assert accepted and search.target_qps == max(accepted)
    assert all(p["valid"] and p["p99_ms"] <= 0.8 * p["bound_ms"] for p in search.trace if p["accepted"])
    invalid = [p["target_qps"] for p in search.trace if p["valid"] is False]
    assert all(t > search.target_qps for t in invalid)
    used = final.settings.requested["server_target_qps"]
    assert used == pytest.approx(search.target_qps if final.retry_of is None else 0.75 * search.target_qps)
    if final.system.valid is not True:
        # a stall of this 2-core host can sink even the rerun at the corrected target: what the harness owes is that
        # one rerun, 25 % lower, without a harness error, INVALID only on LoadGen's latency verdicts
        assert final.retry_of is not None and final.callback_errors == 0, final.system.invalid_reasons
        assert all("latency" in r or "early-stopping" in r or r.startswith("LoadGen:")
                   for r in final.system.invalid_reasons), final.system.invalid_reasons
    searching = searched[0]  # a rerun with a corrected target reuses the first run's search
    for probe in search.trace:  # every probe keeps its LoadGen logs under that run's search/ folder
        assert probe["run_dir"].startswith(str(Path(searching.run_dir) / layout.SEARCH_DIR))
        assert (Path(probe["run_dir"]) / "loadgen" / "mlperf_log_detail.txt").is_file()


def test_the_users_server_target_wins(mlp_model, tmp_path):
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend="onnxruntime", scenario="Server", batch=4,
                     threads=1, settings={**SHORT, "server_target_qps": 5000}, timeout_s=300)
    [r] = run_points([point], tmp_path)
    assert r.search is None and r.settings.requested["server_target_qps"] == 5000
    assert "server_target_qps" not in r.settings.auto


def _npy_dataset(path, samples):
    path.mkdir()
    np.save(path / "samples.npy", samples)
    np.save(path / "labels.npy", np.zeros(len(samples), dtype=np.int64))
    return str(path)


def test_key_covers_dataset_content_and_versions(tmp_path, monkeypatch):
    data = _npy_dataset(tmp_path / "d", np.zeros((8, 784), np.float32))
    point = RunPoint(model="none.onnx", dataset=data, backend="onnxruntime", scenario="Offline")
    from tests.harness.conftest import make_mlp

    point = RunPoint(**{**point.to_dict(), "model": str(make_mlp(tmp_path / "m.onnx"))})
    key = PointValidator().plan(point).key
    assert PointValidator().plan(point).key == key  # deterministic
    np.save(tmp_path / "d" / "samples.npy", np.ones((8, 784), np.float32))  # same shape, new content
    edited = PointValidator().plan(point)
    assert edited.key != key and edited.dataset_sha256
    import tiers.runner.validate as validate

    monkeypatch.setattr(validate, "runtime_versions", lambda _ref: {"onnxruntime": "0.0.1"})
    upgraded = PointValidator().plan(point)
    assert upgraded.key != edited.key and upgraded.versions["onnxruntime"] == "0.0.1"
    assert set(upgraded.versions) >= {"mlcommons-loadgen", "mlperf-ext"}


def test_the_key_does_not_depend_on_where_the_files_lie(tmp_path):
    # the same spec in two workdirs (or a moved one, or another checkout): the same keys, so a resume skips
    import shutil

    from tests.harness.conftest import make_mlp

    keys, conf = [], "bench.Offline.min_duration = 500\n"
    for where in ("a", "b/deeper"):
        home = tmp_path / where
        home.mkdir(parents=True)
        if not keys:
            make_mlp(home / "m.onnx")
        else:
            shutil.copy(tmp_path / "a" / "m.onnx", home / "m.onnx")
        (home / "user.conf").write_text(conf)
        data = _npy_dataset(home / "d", np.zeros((8, 784), np.float32))
        point = RunPoint(model=str(home / "m.onnx"), dataset=data, backend="onnxruntime", scenario="Offline",
                         user_conf=str(home / "user.conf"), mlperf_model="bench")
        keys.append(PointValidator().plan(point).key)
    assert keys[0] == keys[1]
    (tmp_path / "b/deeper/user.conf").write_text(conf.replace("500", "600"))  # the bytes still count
    assert PointValidator().plan(point).key != keys[0]


def test_exec_precision_is_a_column_and_accuracy_is_measured_at_it(mlp_model, tmp_path):
    ov = pytest.importorskip("openvino")
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no native BF16 kernels")
    points = [RunPoint(model=str(mlp_model), dataset="mnist", backend="openvino", scenario="Offline", batch=32,
                       mode="accuracy", exec_precision=p, settings=dict(SHORT), timeout_s=300) for p in ("model", "bf16")]
    model, bf16 = run_points(points, tmp_path)
    assert (model.runtime.compute_dtype, bf16.runtime.compute_dtype) == ("fp32", "bf16")
    assert bf16.point.exec_precision == "bf16" and bf16.point_key != model.point_key
    assert bf16.accuracy.total == model.accuracy.total == 1000
    row = ResultsStore(layout.store_path(tmp_path)).rows()[-1]
    assert row["exec_precision"] == "bf16" and row["runtime_compute_dtype"] == "bf16"
