"""Fast unit tests of the harness pieces: user.conf checks, settings, QSL, store, spec expansion."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlperf_ext import loadgen
from mlperf_ext.config import RunPoint, expand, load_spec
from mlperf_ext.datasets import ArrayDataset
from mlperf_ext.errors import ConfigError
from mlperf_ext.qsl import SampleLibrary
from mlperf_ext.store import ResultsStore
from scenarios import ComputeEstimate, DispatchConfig, get_scenario
from scenarios.base import MAX_OFFLINE_QPS


def test_user_conf_check_finds_what_loadgen_would_ignore(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("\n".join([
        "mlp.Offline.target_qps = 100           # fine",
        "*.Server.target_latency = 15           # fine",
        "*.*.min_duration = 1000                # fine",
        "*.Offline.target_latency = 3           # Offline has no target_latency",
        "resnet.Offline.target_qps = 5          # another model",
        "*.Ofline.target_qps = 5                # unknown scenario",
        "*.*.qsl_rng_seed = 1                   # mlperf.conf only",
        "*.*.min_duraton = 5                    # typo",
        "*.*.min_duration = fast                # not a number",
        "garbage",
    ]))
    problems = loadgen.check_user_conf(conf, "mlp")
    assert len(problems) == 7, problems
    joined = "\n".join(problems)
    for needle in ("target_latency' for scenario 'Offline'", "model 'resnet'", "unknown scenario 'Ofline'",
                   "qsl_rng_seed", "did you mean 'min_duration'", "'fast' is not a number", "garbage"):
        assert needle in joined


def test_settings_layering(tmp_path):
    # in a fresh process: LoadGen loads its embedded mlperf.conf only on a process's first FromConfig
    conf = tmp_path / "user.conf"
    conf.write_text("*.Offline.min_query_count = 77\n")
    code = ("import sys; from pathlib import Path; from mlperf_ext import loadgen; "
            "s = loadgen.make_settings('Offline', 'performance', 'quick', 'm', Path(sys.argv[1]), "
            "{'min_duration_ms': 123}, Path(sys.argv[2])); "
            "print(s.min_query_count, s.min_duration_ms, s.qsl_rng_seed)")
    out = subprocess.run([sys.executable, "-c", code, str(conf), str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "77"  # user.conf
    assert out[1] == "123"  # explicit override beats the quick profile
    assert out[2] != "0"  # the embedded mlperf.conf's seed


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="min_duration_ms"):
        loadgen.validate_overrides({"min_duration_msec": 1})


def test_qsl_loads_only_what_loadgen_asks():
    data = ArrayDataset("d", np.arange(40, dtype=np.float32).reshape(10, 4), np.arange(10))
    qsl = SampleLibrary(data, performance_count=4)
    assert (qsl.total_count, qsl.performance_count) == (10, 4)
    qsl.load([7, 2, 7])
    np.testing.assert_array_equal(qsl.gather([2, 7, 2]), data.samples[[2, 7, 2]])
    with pytest.raises(RuntimeError, match="not loaded"):
        qsl.gather([3])
    qsl.unload([2, 7])
    with pytest.raises(RuntimeError):
        qsl.gather([2])


def test_store_appends_and_reads_latest(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.append({"point_key": "a", "run_id": "1", "status": "failed", "host_json": {"cpu": "x"}})
    store.append({"point_key": "a", "run_id": "2", "status": "ok"})
    store.append({"point_key": "b", "run_id": "3", "status": "ok"})
    assert store.has_ok("a") and not store.has_ok("zzz")
    assert [r["run_id"] for r in store.rows()] == ["2", "3"]
    assert len(store.rows(latest_only=False)) == 3
    with pytest.raises(ValueError):
        store.append({"point_key": "c", "run_id": "4", "status": "ok", "not_a_column": 1})
    with pytest.raises(ValueError):
        store.append({"point_key": "c", "run_id": "4", "status": "bogus"})
    assert len(store.rows(latest_only=False)) == 3  # refused rows left nothing behind
    out = tmp_path / "r.csv"
    assert store.export_csv(out) == 2 and out.read_text().startswith("id,point_key")


def test_store_write_is_atomic(tmp_path):
    """A row is one committed INSERT: a reader never sees a half row, even from another connection."""
    store = ResultsStore(tmp_path / "r.sqlite")
    store.append({"point_key": "a", "run_id": "1", "status": "ok", "batch": 4})
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    assert conn.execute("SELECT COUNT(*), MAX(batch) FROM runs").fetchone() == (1, 4)
    conn.close()


def test_point_key_changes_with_model_bytes(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    point = RunPoint(model=str(model), dataset="mnist", backend="onnxruntime", scenario="Offline")
    key = point.key()
    assert key == RunPoint(**{**point.to_dict(), "timeout_s": 5}).key()  # the watchdog is not the config
    model.write_bytes(b"two!")
    assert point.key() != key


def test_single_stream_batch_is_one():
    assert RunPoint(model="m", dataset="d", backend="null", scenario="SingleStream", batch=32).batch == 1


def test_spec_expands_grid(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("- models: [a.onnx, {model: b.onnx, dataset: digits}]\n  dataset: mnist\n"
                    "  backends: [onnxruntime, openvino]\n  scenarios: [Offline, Server]\n  batch: [1, 8]\n"
                    "- models: [a.onnx]\n  dataset: mnist\n  backend: null\n  scenario: SingleStream\n")
    grids = load_spec(spec)
    points = [p for g in grids for p in expand(g, lambda ref: (ref, Path(ref).stem, None))]
    assert len(points) == 2 * 2 * 2 * 2 + 1
    assert {p.dataset for p in points if p.model_name == "b"} == {"digits"}


def test_auto_hints_are_capped():
    # a near-zero compute time (the null backend) must not ask LoadGen for billions of samples
    est = ComputeEstimate(batch=64, latency_s=1e-9)
    assert get_scenario("Offline").auto_settings(est, DispatchConfig(batch=64))["offline_expected_qps"] == MAX_OFFLINE_QPS
    hint = get_scenario("SingleStream").auto_settings(est, DispatchConfig())["single_stream_expected_latency_ns"]
    assert hint >= 5000


def test_qsl_keeps_loadgen_order_and_serves_runs_as_views():
    data = ArrayDataset("d", np.arange(40, dtype=np.float32).reshape(10, 4), np.arange(10))
    qsl = SampleLibrary(data)
    qsl.load([5, 1, 8, 3])  # LoadGen's order; Offline then issues the loaded set in this order
    run = qsl.gather([1, 8, 3])
    np.testing.assert_array_equal(run, data.samples[[1, 8, 3]])
    assert np.shares_memory(run, qsl.gather([5, 1, 8, 3]))  # consecutive rows: no copy
    shuffled = qsl.gather([3, 5])
    np.testing.assert_array_equal(shuffled, data.samples[[3, 5]])
    assert not np.shares_memory(shuffled, qsl.gather([5, 1, 8, 3]))


def test_conf_sets_follows_loadgen_wildcards(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("*.Server.target_qps = 5   # claim\nother.Offline.target_qps = 9\n*.*.min_duration = 10\n")
    assert loadgen.conf_sets(conf, "mlp", "Server", "target_qps")
    assert not loadgen.conf_sets(conf, "mlp", "Offline", "target_qps")  # that line is for another model
    assert loadgen.conf_sets(conf, "mlp", "Offline", "min_duration")
    assert not loadgen.conf_sets(None, "mlp", "Offline", "min_duration")
