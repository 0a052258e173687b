"""Level-0 output a new user reads: the catalog lists the host, the heatmap fits the terminal, and figures
that look wrong (measured above nominal, efficiency above 100 %) come with their explanation."""

from __future__ import annotations

import os
import subprocess
import sys

from tiers.level0.cli import measured_above_nominal
from tiers.runner.launch import PROJECT_ROOT

ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


def cli(*args: str, columns: int = 100) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlperf_ext.cli", *args], capture_output=True, text=True,
                          env={**ENV, "COLUMNS": str(columns)}, timeout=300)


def test_platforms_list_lists_the_host_before_it_is_measured(tmp_path):
    out = cli("platforms", "list", "--workdir", str(tmp_path), columns=200).stdout
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert any(line.split("│")[1].strip() == "host" and "not measured" in line for line in rows)
    assert len({len(line) for line in rows}) == 1  # one table: every row as wide as the others


def test_the_heatmap_is_split_by_platform_kind_to_fit_the_terminal(tmp_path):
    out = cli("predict", "--models-file", str(PROJECT_ROOT / "tiers" / "level0" / "models_published.yaml"),
              "--workdir", str(tmp_path), columns=100).stdout
    assert "[fpga]" in out and "[gpu]" in out and "[asic]" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_a_measured_ceiling_above_the_nominal_peak_is_explained():
    entry = {"peak_tops": {"fp32": 0.332}, "modes": {"nominal": {}, "measured": {"peak_tops": {"fp32": 0.446}}},
             "nominal_formula": {"clock_mhz": 2600.0}}
    [note] = measured_above_nominal(entry)
    assert "measured fp32 0.446 TOP/s is above the nominal 0.332" in note and "turbo" in note
    assert "3,493 MHz" in note  # 2600 x 0.446 / 0.332
    assert measured_above_nominal({**entry, "modes": {"nominal": {}, "measured": {"peak_tops": {"fp32": 0.3}}}}) == []
