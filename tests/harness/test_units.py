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
from mlperf_ext.result import PointResult
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
    assert not any("1000" in p for p in problems)
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


def _result(key: str, run_id: str, status: str, **kw) -> PointResult:
    return PointResult(point_key=key, run_id=run_id, status=status, **kw)


def test_store_appends_and_reads_latest(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.append(_result("a", "1", "failed", host={"cpu": "x"}))
    store.append(_result("a", "2", "ok"))
    store.append(_result("b", "3", "ok"))
    assert store.latest_status("a") == "ok" and store.latest_status("zzz") is None
    assert [r["run_id"] for r in store.rows()] == ["2", "3"]
    assert len(store.rows(latest_only=False)) == 3
    assert store.results(latest_only=False)[0].host == {"cpu": "x"}  # JSON columns come back as data
    with pytest.raises(ValueError):
        store.append(_result("c", "4", "bogus"))
    with pytest.raises(ValueError):
        store.append(_result("", "4", "ok"))
    assert len(store.rows(latest_only=False)) == 3  # refused rows left nothing behind
    out = tmp_path / "r.csv"
    assert store.export_csv(out) == 2 and out.read_text().startswith("id,point_key,run_id,status,")


def test_store_write_is_atomic(tmp_path):
    """A row is one committed INSERT: a reader never sees a half row, even from another connection."""
    store = ResultsStore(tmp_path / "r.sqlite")
    point = RunPoint(model="m", dataset="d", backend="null", scenario="Offline", batch=4)
    store.append(_result("a", "1", "ok", point=point))
    conn = sqlite3.connect(tmp_path / "r.sqlite")
    assert conn.execute("SELECT COUNT(*), MAX(batch) FROM runs").fetchone() == (1, 4)
    conn.close()


def test_a_result_round_trips_through_a_row():
    from mlperf_ext.result import ComputeFigures, SystemFigures, columns

    point = RunPoint(model="m", dataset="d", backend="null", scenario="Server", batch=4, settings={"x": 1})
    r = _result("k", "r", "invalid", point=point, system=SystemFigures(valid=False, invalid_reasons=["why"]),
                compute=ComputeFigures(batch=4, throughput=10.0), flags={"noisy": "moved"})
    back = PointResult.from_row(r.to_row())
    assert back == r
    assert set(r.to_row()) == set(columns())  # the store's columns are exactly the result's fields


def test_point_identity_changes_with_model_bytes(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    point = RunPoint(model=str(model), dataset="mnist", backend="onnxruntime", scenario="Offline")
    ident = point.identity()
    assert ident == RunPoint(**{**point.to_dict(), "timeout_s": 5}).identity()  # the watchdog is not the config
    model.write_bytes(b"two!")
    assert point.identity() != ident


def test_an_exec_precision_no_backend_has_is_bad_input():
    from sut.registry import backend_class, names

    with pytest.raises(ConfigError, match="no backend executes in precision 'int3'; fix: use one of model, fp32"):
        RunPoint(model="m", dataset="d", backend="openvino", scenario="Offline", exec_precision="int3")
    from mlperf_ext.config import EXEC_PRECISIONS

    for name in names():  # every backend's precisions are among those a point accepts
        assert set(backend_class(name).exec_precisions) <= set(EXEC_PRECISIONS), name


def test_nonfinite_samples_are_counted_with_the_first_index():
    samples = np.zeros((5000, 3), np.float32)
    samples[4100, 1], samples[4200, 0], samples[4200, 2] = np.nan, -np.inf, np.inf  # past the first chunk
    scan = ArrayDataset("d", samples).scan()
    assert (scan.nonfinite, scan.first_nonfinite) == (2, 4100)
    for clean in (np.zeros((4, 3), np.float32), np.zeros((4, 3), np.uint8)):
        assert (ArrayDataset("d", clean).scan().nonfinite, ArrayDataset("d", clean).scan().first_nonfinite) == (0, None)
    assert scan.sha256 != ArrayDataset("d", np.zeros((5000, 3), np.float32)).scan().sha256  # the hash is of the bytes


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
    est = ComputeEstimate(batch=64, latency_s=1e-9, throughput=6.4e10)
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
    same_ends = qsl.gather([5, 8, 1, 3])  # starts and ends where the run does, but is not the run
    np.testing.assert_array_equal(same_ends, data.samples[[5, 8, 1, 3]])
    qsl.unload([5, 1, 8, 3])
    qsl.load([2, 5])
    with pytest.raises(RuntimeError):
        qsl.gather([1, 8])  # unloaded: the old run must not be served


def test_conf_sets_follows_loadgen_wildcards(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("*.Server.target_qps = 5   # claim\nother.Offline.target_qps = 9\n*.*.min_duration = 10\n")
    assert loadgen.conf_sets(conf, "mlp", "Server", "target_qps")
    assert not loadgen.conf_sets(conf, "mlp", "Offline", "target_qps")  # that line is for another model
    assert loadgen.conf_sets(conf, "mlp", "Offline", "min_duration")
    assert not loadgen.conf_sets(None, "mlp", "Offline", "min_duration")


@pytest.mark.parametrize("line,needle", [
    ("*.*.min_duration = 1e3", "strtoull"),  # LoadGen would read 1 ms
    ("*.*.min_query_count = -5", "strtoull"),  # wraps around to 2**64 - 5
    ("*.*.min_query_count = 010", "strtoull"),  # octal: 8
    ("*.Server.target_latency = 15.5", "Server.target_latency"),  # an integer for Server only
    ("*.*.mode = 2", "the harness sets LoadGen's mode"),
])
def test_user_conf_values_are_checked_as_loadgen_reads_them(tmp_path, line, needle):
    conf = tmp_path / "user.conf"
    conf.write_text(line + "\n")
    problems = loadgen.check_user_conf(conf, "mlp")
    assert len(problems) == 1 and needle in problems[0], problems


def test_user_conf_float_keys_take_floats(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("*.SingleStream.target_latency = 0.5\n*.Offline.target_qps = 1e3\n*.*.min_duration = 1000\n")
    assert loadgen.check_user_conf(conf, "mlp") == []


def test_user_conf_lines_for_another_scenario_are_reported(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("*.Server.target_qps = 100\n*.Offline.target_qps = 10\n*.*.min_duration = 1000\n")
    notes = loadgen.user_conf_notes(conf, "mlp", "Offline")
    assert notes == ["user.conf:1 sets Server.target_qps, which this Offline run does not read"]


@pytest.mark.parametrize("key,value,needle", [
    ("min_duration_ms", 99999999999999999999, "uint64_t"), ("min_query_count", -5, "uint64_t"),
    ("offline_expected_qps", 1e300, "limited to 5,000,000"), ("offline_expected_qps", float("nan"), "finite"),
    ("server_target_latency_percentile", 99, "fraction"), ("server_target_qps", 0, "above 0"),
    ("server_num_issue_query_threads", 2, "cannot register issue threads"),
])
def test_settings_are_checked_against_the_fields_type_and_range(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        loadgen.validate_overrides({key: value})


def test_rate_limits_can_be_lifted():
    loadgen.validate_overrides({"offline_expected_qps": 5e6}, force_limits=True)


def test_compliant_comes_only_from_the_checkers_verdicts(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.append(_result("a", "run-a", "ok"))
    assert store.rows()[0]["compliant"] is None and store.results()[0].compliant is None  # nobody checked it
    with pytest.raises(ValueError, match="checker's verdict"):
        store.append(_result("b", "run-b", "ok", compliant=True))
    store.record_verdict("run-a", False, ["performance: min_duration 1000 < 600000"], "audit v6.1")
    assert store.results()[0].compliant is False
    store.record_verdict("run-a", True, [], "audit v6.1")
    assert store.by_run_id("run-a")["compliant"] == 1 and store.verdict("run-a")["problems"] == []
