"""JetsonMeter on fake INA3221 sysfs trees in both driver layouts."""

from __future__ import annotations

import pytest

from mlperf_ext.errors import ConfigError
from mlperf_ext.power import power_figures
from mlperf_ext.power.fake import FakeJetsonTree
from mlperf_ext.power.jetson import JetsonMeter

ORIN_RAILS = ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]


def test_hwmon_rails_total_is_the_module_input_only(tmp_path, clock):
    tree = FakeJetsonTree(tmp_path, ORIN_RAILS, layout="hwmon")
    tree.set_power("VDD_IN", 6.0)  # 5000 mV x 1200 mA
    tree.set_power("VDD_CPU_GPU_CV", 2.5)
    tree.set_power("VDD_SOC", 1.5)
    assert (tree.dir / "curr1_input").read_text().strip() == "1200"
    meter = JetsonMeter(tmp_path, clock=clock, interval_s=3600.0)
    assert meter.name == "jetson:VDD_IN"
    assert [d.name for d in meter.domains if d.in_total] == ["VDD_IN"]
    for t, vdd_in in ((0.0, None), (1.0, 8.0), (2.0, None)):
        if vdd_in is not None:
            tree.set_power("VDD_IN", vdd_in)
        clock.now = t
        assert meter.read_once(), meter.samples().errors
    figs = power_figures(meter.samples(), (0.0, 2.0), scenario="Offline", throughput=75.0)
    # by hand: (6 + 8) / 2 * 1 s + 8 * 1 s = 15 J -> 7.5 W; the CPU/GPU and SoC rails are inside VDD_IN
    assert figs.energy_j == pytest.approx(15.0)
    assert figs.avg_w == pytest.approx(7.5)
    assert figs.domains == pytest.approx({"VDD_IN": 7.5, "VDD_CPU_GPU_CV": 2.5, "VDD_SOC": 1.5})
    assert figs.samples_per_j == pytest.approx(10.0)


def test_iio_layout_reads_milliwatts(tmp_path, clock):
    tree = FakeJetsonTree(tmp_path, ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"], layout="iio")
    tree.set_power("POM_5V_IN", 4.2)
    assert (tree.dir / "in_power0_input").read_text().strip() == "4200"
    meter = JetsonMeter(tmp_path, clock=clock)
    assert meter.name == "jetson:POM_5V_IN"
    assert meter.read_raw()["POM_5V_IN"] == pytest.approx(4.2)


def test_a_named_rail_and_the_refusals(tmp_path):
    FakeJetsonTree(tmp_path, ["GPU", "CPU", "SOC"])  # AGX Xavier: no module-input rail
    with pytest.raises(ConfigError, match=r"rails GPU, CPU, SOC include no module-input rail.*fix: .*jetson:GPU"):
        JetsonMeter(tmp_path)
    meter = JetsonMeter(tmp_path, total_rail="GPU")
    assert [d.name for d in meter.domains if d.in_total] == ["GPU"]
    with pytest.raises(ConfigError, match=r"no Jetson rail 'VDD_IN' \(rails: GPU, CPU, SOC\)"):
        JetsonMeter(tmp_path, total_rail="VDD_IN")
    with pytest.raises(ConfigError, match=r"no INA3221 power rails under .*; fix: run on a Jetson"):
        JetsonMeter(tmp_path / "empty")
