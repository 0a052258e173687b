"""Every sample's LoadGen latency from LoadGen's own trace log, checked against LoadGen's own summary."""

from __future__ import annotations

import numpy as np
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError
from mlperf_ext.logs import TRACE_NAME, LogParseError, parse_summary, trace_sample_latencies_ns
from tests.harness.conftest import SHORT
from tiers.runner import layout
from tiers.sweep import run_points


@pytest.mark.parametrize("scenario", ["SingleStream", "Offline"])
def test_traced_latencies_are_loadgens(tmp_path, mlp_model, scenario):
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend="onnxruntime", scenario=scenario,
                     batch=1 if scenario == "SingleStream" else 64, settings=dict(SHORT), loadgen_trace=True,
                     timeout_s=120)
    [r] = run_points([point], tmp_path)
    assert r.status == "ok", r.error
    run = tmp_path / layout.RUNS_DIR / r.run_id
    latencies = np.load(run / layout.SYSTEM_LATENCY_FILE)
    summary = parse_summary(run / layout.LOADGEN_DIR / "mlperf_log_summary.txt")
    assert len(latencies) == r.system.sample_count > 0
    # LoadGen's summary is computed from the very same per-sample latencies
    assert round(latencies.min() * 1e9) == int(summary["Min latency (ns)"])
    assert round(latencies.max() * 1e9) == int(summary["Max latency (ns)"])
    assert not [n for n in r.notes if "trace holds" in n]


def test_untraced_runs_keep_no_trace(tmp_path, mlp_model):
    point = RunPoint(model=str(mlp_model), dataset="mnist", backend="onnxruntime", scenario="SingleStream",
                     settings=dict(SHORT), timeout_s=120)
    [r] = run_points([point], tmp_path)
    run = tmp_path / layout.RUNS_DIR / r.run_id
    assert not (run / layout.SYSTEM_LATENCY_FILE).exists()
    assert (run / layout.LOADGEN_DIR / TRACE_NAME).stat().st_size == 0  # LoadGen leaves an empty file
    assert point.identity() != RunPoint(**{**point.to_dict(), "loadgen_trace": True}).identity()


def test_a_damaged_trace_and_a_bad_flag_are_refused(tmp_path):
    bad = tmp_path / TRACE_NAME
    bad.write_text('{"traceEvents":[\n{"name":"Sample","cat":"default","ph":"b","pid":1,"id":0,"args":{}},\n')
    with pytest.raises(LogParseError, match="line 2 is not a LoadGen Sample event"):
        trace_sample_latencies_ns(bad)
    with pytest.raises(ConfigError, match="loadgen_trace must be true or false"):
        RunPoint(model="m.onnx", dataset="mnist", backend="null", scenario="Offline", loadgen_trace="yes")
