"""Power through the whole point runner: a FakeRapl sysfs tree (this VM has no powercap) read by the real
RAPL meter in the child, with the figures checked against the energy the test itself put in."""

from __future__ import annotations

import threading
import time

import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError
from mlperf_ext.power.fake import FakeRaplTree
from tests.harness.conftest import SHORT
from tiers.runner.validate import PointValidator
from tiers.sweep import run_points

PACKAGE_W, DRAM_W, CORE_W = 5.0, 1.0, 3.0  # the fake host draws this much, all the time


def test_a_fake_rapl_run_gives_the_energy_put_in(tmp_path):
    tree = FakeRaplTree(tmp_path / "powercap")
    stop = threading.Event()

    def draw() -> None:  # the counters advance at known power, as the hardware's would
        last = time.time()
        while not stop.is_set():
            time.sleep(0.002)
            now = time.time()
            for domain, watts in (("package-0", PACKAGE_W), ("package-0/dram", DRAM_W), ("package-0/core", CORE_W)):
                tree.advance(domain, watts * (now - last))
            last = now

    drawing = threading.Thread(target=draw, daemon=True)
    drawing.start()
    point = RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Offline", batch=256,
                     settings={"min_duration_ms": 1000}, power=f"rapl:{tree.root}", timeout_s=120)
    try:
        [r] = run_points([point], tmp_path / "work")
    finally:
        stop.set()
        drawing.join()
    assert r.status == "ok", r.error
    p = r.power
    total = PACKAGE_W + DRAM_W  # RAPL's total is the packages and DRAM; the core zone is inside the package
    assert p.meter.startswith("rapl") and not p.compliant and "not MLPerf-Power-compliant" in p.note
    assert p.window_source == "loadgen" and p.duration_s >= 1.0
    assert p.avg_w == pytest.approx(total, rel=0.03)
    assert p.energy_j == pytest.approx(total * p.duration_s, rel=0.03)
    assert p.idle_w == pytest.approx(total, rel=0.05) and abs(p.net_w) < 0.3  # the fake draws the same at rest
    assert p.domains["package-0/core"] == pytest.approx(CORE_W, rel=0.05)
    assert p.samples_per_j == pytest.approx(r.system.throughput / p.avg_w)
    assert p.gop_per_j is None  # the null backend runs no model: level 0 has no ops for it


def test_no_meter_means_no_power_and_an_absent_meter_is_refused(tmp_path):
    point = RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Offline", batch=256,
                     settings=dict(SHORT), timeout_s=120)
    [r] = run_points([point], tmp_path)
    assert r.power.meter == "none" and r.power.note.startswith("no power")
    with pytest.raises(ConfigError, match="no RAPL powercap domains"):
        PointValidator().plan(RunPoint(**{**point.to_dict(), "power": "rapl:" + str(tmp_path / "nothing")}))
