"""`results show` prints the energy figures a run has and leaves the absent ones out (no bare units)."""

from __future__ import annotations

import io

from rich.console import Console

from mlperf_ext.power.metrics import PowerFigures
from mlperf_ext.result import PointResult
from mlperf_ext.tables import print_run


def _shown(power: PowerFigures) -> str:
    out = io.StringIO()
    print_run(PointResult(status="ok", power=power), Console(file=out, width=400))
    [line] = [t for t in out.getvalue().splitlines() if t.startswith("power (")]
    return line


def test_offline_power_line_has_samples_per_joule_only():
    line = _shown(PowerFigures(meter="rapl", note="not MLPerf-Power-compliant (meter rapl)", avg_w=14.0,
                               idle_w=14.0, net_w=0.0, energy_j=92.2, duration_s=6.59, samples_per_j=59632.5))
    assert "59,632.50 samples/J" in line
    assert "mJ/query" not in line and "GOP/J" not in line


def test_singlestream_power_line_has_millijoules_per_query_and_gop_per_joule():
    line = _shown(PowerFigures(meter="rapl", note="n", avg_w=10.0, samples_per_j=100.0, mj_per_query=10.0,
                               gop_per_j=250.0))
    assert "100.00 samples/J; 10.0000 mJ/query; 250.00 GOP/J; n" in line
