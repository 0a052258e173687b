"""RaplMeter on a FakeRaplTree: the same sysfs code path, with every joule known to the test."""

from __future__ import annotations

import time

import pytest

from mlperf_ext.power import power_figures
from mlperf_ext.power.fake import FakeRaplTree
from mlperf_ext.power.metrics import measure_idle
from mlperf_ext.power.rapl import RaplMeter

#: a 10 J counter range, so a few steps wrap it
MAX_UJ = 10_000_000
NEVER_S = 3600.0  # the thread's interval when a test takes every reading itself


def read_at(meter: RaplMeter, clock, t: float) -> None:
    clock.now = t
    assert meter.read_once(), meter.samples().errors


def test_domains_follow_the_powercap_layout(tmp_path):
    tree = FakeRaplTree(tmp_path, packages=2, subzones=("core", "uncore", "dram"), psys=True)
    meter = RaplMeter(tmp_path)
    names = [d.name for d in meter.domains]
    assert names == ["package-0", "package-0/core", "package-0/uncore", "package-0/dram",
                     "package-1", "package-1/core", "package-1/uncore", "package-1/dram", "psys"]
    assert set(tree.domains) == set(names)
    # packages and DRAM are summed; core/uncore lie inside the package, psys contains everything
    assert [d.name for d in meter.domains if d.in_total] == ["package-0", "package-0/dram",
                                                             "package-1", "package-1/dram"]
    assert "mmio" not in " ".join(names)  # intel-rapl-mmio:0 repeats package 0 and is ignored
    assert meter.name == f"rapl:{tmp_path}"
    assert meter.mlperf_power_compliant is False


def test_stepped_counters_with_a_wrap_give_the_hand_computed_joules_and_watts(tmp_path, clock):
    tree = FakeRaplTree(tmp_path, subzones=("core", "dram"), max_energy_range_uj=MAX_UJ)
    tree.set_uj("package-0", 9_000_000)  # 1 J below the wrap
    meter = RaplMeter(tmp_path, clock=clock, interval_s=NEVER_S)
    read_at(meter, clock, 100.0)
    steps = [  # joules added before the reading at t = 101, 102, 103
        {"package-0": 3.0, "package-0/core": 2.0, "package-0/dram": 1.0},  # package 9 J -> 12 J wraps to 2 J
        {"package-0": 5.0, "package-0/core": 4.0, "package-0/dram": 2.0},
        {"package-0": 4.0, "package-0/core": 3.0, "package-0/dram": 1.0},  # 7 J -> 11 J wraps to 1 J
    ]
    for t, step in zip((101.0, 102.0, 103.0), steps):
        for domain, joules in step.items():
            tree.advance(domain, joules)
        read_at(meter, clock, t)
    assert tree.energy_uj("package-0") == 1_000_000  # the raw counter did wrap (twice)

    trace = meter.samples()
    assert trace.t == [100.0, 101.0, 102.0, 103.0]
    assert trace.values["package-0"] == pytest.approx([0.0, 3.0, 8.0, 12.0])
    assert trace.values["package-0/dram"] == pytest.approx([0.0, 1.0, 3.0, 4.0])

    figs = power_figures(trace, (100.5, 102.5), scenario="Offline", throughput=115.0)
    # by hand: package E(100.5) = 1.5 J, E(102.5) = 8 + 4/2 = 10 J -> 8.5 J
    #          dram    E(100.5) = 0.5 J, E(102.5) = 3 + 1/2 = 3.5 J -> 3.0 J
    #          total 11.5 J over 2 s = 5.75 W; core (not summed) 1 -> 7.5 J = 6.5 J -> 3.25 W
    assert figs.energy_j == pytest.approx(11.5)
    assert figs.duration_s == pytest.approx(2.0)
    assert figs.avg_w == pytest.approx(5.75)
    assert figs.domains == pytest.approx({"package-0": 4.25, "package-0/core": 3.25, "package-0/dram": 1.5})
    assert figs.samples_per_j == pytest.approx(115.0 / 5.75)  # = 20 samples/J
    assert figs.reading_count == 2  # t = 101, 102 lie inside [100.5, 102.5]
    assert figs.note.startswith(f"not MLPerf-Power-compliant (meter rapl:{tmp_path})")
    assert figs.errors == []


def test_idle_baseline_and_net_power(tmp_path, clock):
    tree = FakeRaplTree(tmp_path, subzones=("dram",), max_energy_range_uj=MAX_UJ)
    meter = RaplMeter(tmp_path, clock=clock, interval_s=NEVER_S)

    def idle_sleep(seconds: float) -> None:  # the host at rest: 1.5 W package + 0.5 W DRAM
        clock.now += seconds
        tree.advance("package-0", 1.5 * seconds)
        tree.advance("package-0/dram", 0.5 * seconds)

    idle = measure_idle(meter, 2.0, sleep=idle_sleep)
    assert idle.watts == pytest.approx(2.0)
    assert idle.readings == 2  # start() and stop() each read once

    clock.now = 200.0
    meter.start()  # reads at 200
    tree.advance("package-0", 9.5)  # 9.5 J package + 2.5 J DRAM in 1 s; the package passes 10 J and wraps
    tree.advance("package-0/dram", 2.5)
    clock.now = 201.0
    trace = meter.stop()  # reads at 201
    figs = power_figures(trace, (200.0, 201.0), scenario="SingleStream", idle=idle, query_count=400)
    assert figs.avg_w == pytest.approx(12.0)
    assert figs.idle_w == pytest.approx(2.0)
    assert figs.net_w == pytest.approx(10.0)
    assert figs.energy_j == pytest.approx(12.0)
    assert figs.mj_per_query == pytest.approx(12.0 * 1.0 * 1000 / 400)  # 30 mJ per query
    assert figs.samples_per_j == pytest.approx(1000 / 30)


def _wait_for_readings(meter: RaplMeter, more_than: int, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = len(meter.samples().t)
        if n > more_than:
            return n
        time.sleep(0.002)
    raise AssertionError(f"the sampling thread took no reading in {timeout_s} s")


def test_sampling_thread_counts_every_joule_across_a_wrap(tmp_path):
    tree = FakeRaplTree(tmp_path, subzones=("dram",), max_energy_range_uj=MAX_UJ)
    tree.set_uj("package-0", 8_500_000)
    meter = RaplMeter(tmp_path, interval_s=0.002)
    meter.start()
    try:
        seen = _wait_for_readings(meter, 0)
        for joules in (1.0, 2.5, 0.75, 3.0):  # 8.5 J + 3.5 J passes the 10 J range: one wrap
            tree.advance("package-0", joules)
            tree.advance("package-0/dram", joules / 2)
            seen = _wait_for_readings(meter, seen + 1)  # a reading surely after this step
    finally:
        trace = meter.stop()
    assert trace.errors == [] and trace.error_count == 0
    assert trace.values["package-0"][-1] == pytest.approx(7.25)
    assert trace.values["package-0/dram"][-1] == pytest.approx(3.625)
    assert all(b >= a for a, b in zip(trace.t, trace.t[1:]))
    figs = power_figures(trace, (trace.t[0], trace.t[-1]), scenario="Server", throughput=50.0)
    assert figs.energy_j == pytest.approx(7.25 + 3.625)
    assert figs.avg_w == pytest.approx(figs.energy_j / figs.duration_s)


def test_restart_forgets_the_previous_trace(tmp_path, clock):
    tree = FakeRaplTree(tmp_path, subzones=())
    meter = RaplMeter(tmp_path, clock=clock, interval_s=NEVER_S)
    meter.start()
    tree.advance("package-0", 5.0)
    clock.now = 101.0
    meter.stop()
    clock.now = 110.0
    meter.start()
    clock.now = 111.0
    tree.advance("package-0", 1.0)
    trace = meter.stop()
    assert trace.t == [110.0, 111.0]
    assert trace.values["package-0"] == pytest.approx([0.0, 1.0])
