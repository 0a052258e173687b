"""A meter this host lacks is one refusal line naming what is missing and the fix."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

from mlperf_ext.errors import BackendUnavailable, ConfigError
from mlperf_ext.power import available_meters, open_meter, probe_meters
from mlperf_ext.power import rapl as rapl_module
from mlperf_ext.power.fake import FakeRaplTree
from mlperf_ext.power.pynq_pmbus import PmbusMeter

POWERCAP = Path("/sys/class/powercap")


def _host_has_rapl() -> bool:
    return POWERCAP.is_dir() and any(re.match(r"^intel-rapl:\d+$", p.name) for p in POWERCAP.iterdir())


def _one_line(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text and "; fix: " in text, text
    return text


@pytest.mark.skipif(_host_has_rapl(), reason="this host exposes RAPL powercap zones")
def test_rapl_absent_on_this_host():
    with pytest.raises(ConfigError) as info:
        open_meter("rapl")
    assert _one_line(info.value) == (
        "no RAPL powercap domains under /sys/class/powercap (this machine exposes none); fix: run on a host with "
        "intel-rapl (Linux powercap, intel_rapl_msr), or use --power-meter external:FILE")
    assert "rapl" not in available_meters()


def test_rapl_tree_without_zones(tmp_path):
    (tmp_path / "intel-rapl").mkdir()  # the control type alone, no zone
    with pytest.raises(ConfigError, match=rf"no RAPL powercap domains under {re.escape(str(tmp_path))}"):
        open_meter(f"rapl:{tmp_path}")


def test_rapl_root_only_counter(tmp_path, monkeypatch):
    FakeRaplTree(tmp_path)

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(rapl_module, "_read_int", denied)  # what a non-root read of energy_uj gets since 5.10
    with pytest.raises(ConfigError) as info:
        open_meter(f"rapl:{tmp_path}")
    text = _one_line(info.value)
    assert "permission denied" in text and "run as root" in text and "CVE-2020-8694" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway")
def test_rapl_unreadable_counter_file(tmp_path):
    tree = FakeRaplTree(tmp_path, subzones=())
    (tree.zone("package-0") / "energy_uj").chmod(0)
    with pytest.raises(ConfigError, match="permission denied"):
        open_meter(f"rapl:{tmp_path}")


@pytest.mark.skipif(importlib.util.find_spec("pynvml") is not None, reason="nvidia-ml-py is installed")
def test_nvml_without_its_package():
    with pytest.raises(BackendUnavailable) as info:
        open_meter("nvml:0")
    assert "nvidia-ml-py" in _one_line(info.value) and "pip install 'mlperf-ext[gpu]'" in str(info.value)


def test_nvml_without_a_driver():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this host has an NVIDIA driver")
    with pytest.raises(ConfigError, match=r"^NVML cannot start \(.*\): no NVIDIA driver or GPU on this host; fix:"):
        open_meter("nvml:0")


def test_nvml_index_must_be_a_number():
    with pytest.raises(ConfigError, match="GPU index must be a number"):
        open_meter("nvml:first")


@pytest.mark.skipif(importlib.util.find_spec("pynq") is not None, reason="pynq is installed")
def test_pmbus_without_pynq():
    with pytest.raises(BackendUnavailable) as info:
        open_meter("pmbus")
    assert "pip install 'mlperf-ext[pynq]'" in _one_line(info.value)


class FakeSensor:
    def __init__(self, watts: float):
        self.value = watts


class FakePynqRail:
    """pynq.pmbus.Rail's shape: voltage/current/power sensors, each with a `value`."""

    def __init__(self, watts: float | None):
        self.power = FakeSensor(watts) if watts is not None else None


def test_pmbus_rail_choice(monkeypatch):
    rails = {"12V": FakePynqRail(9.0), "VCCINT": FakePynqRail(3.0), "VCC1V8": FakePynqRail(None)}
    monkeypatch.setattr("mlperf_ext.power.pynq_pmbus.import_get_rails", lambda: lambda: rails)
    meter = PmbusMeter()
    assert meter.name == "pmbus:12V"
    assert [(d.name, d.in_total) for d in meter.domains] == [("12V", True), ("VCCINT", False)]
    assert meter.read_raw() == {"12V": 9.0, "VCCINT": 3.0}
    assert PmbusMeter(["VCCINT"]).name == "pmbus:VCCINT"
    with pytest.raises(ConfigError, match=r"no PYNQ rail VCCAUX"):
        PmbusMeter(["VCCAUX"])
    del rails["12V"]
    with pytest.raises(ConfigError, match=r"include no '12V' board input.*fix: .*pmbus:VCCINT"):
        PmbusMeter()
    rails.clear()
    with pytest.raises(ConfigError, match="no rail with a power sensor"):
        PmbusMeter()


def test_unknown_spec_lists_the_meters():
    with pytest.raises(ConfigError) as info:
        open_meter("wattmeter")
    text = _one_line(info.value)
    assert "unknown power meter 'wattmeter'" in text
    for spec in ("rapl", "nvml:INDEX", "jetson", "pmbus", "external:FILE", "none"):
        assert spec in text


def test_none_is_no_meter_and_probing_never_raises():
    assert open_meter("none") is None
    probes = probe_meters()
    assert [p.spec for p in probes] == ["rapl", "nvml:0", "jetson", "pmbus"]
    for p in probes:
        if not p.available:
            assert "; fix: " in p.detail
