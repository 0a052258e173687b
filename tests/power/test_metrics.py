"""The power figures against hand-computed numbers, and the shape the results store needs."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from mlperf_ext.power import IdleBaseline, PowerFigures, PowerTrace, no_power, power_figures
from mlperf_ext.power.base import ENERGY, POWER, Domain, SamplingMeter


def power_trace(t, watts, name="board") -> PowerTrace:
    return PowerTrace(meter="fake-board", method="sampled power", compliant=False,
                      domains=[Domain(name, POWER)], t=list(t), values={name: list(watts)})


#: W = 10, 10, 20, 20, 10 at t = 0..4; over [0.5, 3.5] the trapezoids give
#: 0.5*10 + 1*(10+20)/2 + 1*20 + 0.5*(20+15)/2 = 5 + 15 + 20 + 8.75 = 48.75 J -> 16.25 W over 3 s
TRACE = power_trace([0.0, 1.0, 2.0, 3.0, 4.0], [10.0, 10.0, 20.0, 20.0, 10.0])
WINDOW = (0.5, 3.5)
IDLE = IdleBaseline(watts=6.25, seconds=2.0, readings=21)


def test_trapezoid_with_interpolated_edges():
    figs = power_figures(TRACE, WINDOW, scenario="Offline", idle=IDLE, throughput=650.0, ops_per_sample=2.5e9)
    assert figs.energy_j == pytest.approx(48.75)
    assert figs.duration_s == pytest.approx(3.0)
    assert figs.avg_w == pytest.approx(16.25)
    assert figs.idle_w == pytest.approx(6.25)
    assert figs.net_w == pytest.approx(10.0)
    assert figs.samples_per_j == pytest.approx(40.0)  # 650 samples/s / 16.25 W
    assert figs.gop_per_j == pytest.approx(100.0)  # 2.5 GOP/sample x 40 samples/J
    assert figs.mj_per_query is None  # Offline's power metric is W, not mJ/query
    assert figs.reading_count == 3
    assert figs.domains == pytest.approx({"board": 16.25})
    assert figs.note == "not MLPerf-Power-compliant (meter fake-board)"


def test_server_uses_throughput_over_average_watts():
    figs = power_figures(TRACE, WINDOW, scenario="Server", idle=IDLE, throughput=325.0)
    assert figs.samples_per_j == pytest.approx(20.0)
    assert figs.gop_per_j is None  # no level-0 ops given


def test_single_stream_energy_per_query():
    figs = power_figures(TRACE, WINDOW, scenario="SingleStream", idle=IDLE, query_count=1500, ops_per_sample=1e9)
    assert figs.mj_per_query == pytest.approx(32.5)  # 16.25 W x 3 s x 1000 / 1500 queries
    assert figs.samples_per_j == pytest.approx(1000 / 32.5)  # MLPerf: samples_per_query x 1000 / mJ
    assert figs.gop_per_j == pytest.approx(1000 / 32.5)


def test_multi_stream_counts_samples_per_query():
    figs = power_figures(TRACE, WINDOW, scenario="MultiStream", idle=IDLE, query_count=150, samples_per_query=8)
    assert figs.mj_per_query == pytest.approx(325.0)  # 16.25 x 3 x 1000 / 150
    assert figs.samples_per_j == pytest.approx(8 * 1000 / 325.0)


def test_energy_domain_interpolates_the_counter():
    trace = PowerTrace(meter="counter", method="energy counter", compliant=False,
                       domains=[Domain("pkg", ENERGY), Domain("pkg/core", ENERGY, in_total=False)],
                       t=[0.0, 2.0, 4.0], values={"pkg": [0.0, 8.0, 12.0], "pkg/core": [0.0, 4.0, 6.0]})
    figs = power_figures(trace, (1.0, 3.0), scenario="Offline", throughput=28.0)
    assert figs.energy_j == pytest.approx(6.0)  # E(3) - E(1) = 10 - 4
    assert figs.avg_w == pytest.approx(3.0)
    assert figs.domains == pytest.approx({"pkg": 3.0, "pkg/core": 1.5})
    assert figs.samples_per_j == pytest.approx(28.0 / 3.0)
    assert "no idle baseline" in figs.note


def test_a_window_the_readings_do_not_cover_gives_no_figures():
    figs = power_figures(TRACE, (3.0, 5.0), scenario="Offline", throughput=100.0)
    assert figs.avg_w is None and figs.energy_j is None and figs.samples_per_j is None
    assert "do not cover the window" in figs.note
    assert figs.note.startswith("not MLPerf-Power-compliant (meter fake-board)")
    empty = power_figures(TRACE, (2.0, 2.0), scenario="Offline", throughput=100.0)
    assert empty.avg_w is None and "empty window" in empty.note


def test_missing_counts_are_named_not_guessed():
    figs = power_figures(TRACE, WINDOW, scenario="SingleStream", idle=IdleBaseline(None, 2.0, 1, ["idle: x"]))
    assert figs.avg_w == pytest.approx(16.25)
    assert figs.mj_per_query is None and figs.samples_per_j is None
    assert figs.net_w is None
    assert "idle baseline unavailable" in figs.note and "no LoadGen query count" in figs.note
    assert figs.errors == ["idle: x"]
    with pytest.raises(ValueError):
        power_figures(TRACE, WINDOW, scenario="Interactive")


def test_no_power_row():
    assert no_power().note == "no power"
    row = no_power("no RAPL powercap domains under /sys/class/powercap")
    assert row.note == "no power (no RAPL powercap domains under /sys/class/powercap)"
    assert row.avg_w is None and row.compliant is False and row.meter == "none"


def test_power_figures_is_flat_for_the_results_store():
    allowed = {str, int, float, bool, dict, list}
    for f in dataclasses.fields(PowerFigures):
        hint = typing.get_type_hints(PowerFigures)[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        base = {typing.get_origin(a) or a for a in args}
        assert base <= allowed, f"{f.name}: {hint}"
    assert dataclasses.asdict(PowerFigures())["domains"] == {}


class FakeFlakySensor(SamplingMeter):
    """A sensor whose every other read fails, and whose counter once goes backwards (a reset)."""

    name = "flaky"

    def __init__(self, clock):
        super().__init__(interval_s=3600.0, clock=clock)
        self._domains = [Domain("c", ENERGY, scale=1.0)]
        self.raw = iter([5.0, RuntimeError("bus timeout"), 7.0, 2.0, 4.0])

    def read_raw(self):
        value = next(self.raw)
        if isinstance(value, Exception):
            raise value
        return {"c": value}


def test_read_errors_are_recorded_never_raised(clock):
    meter = FakeFlakySensor(clock)
    results = []
    for t in (100.0, 101.0, 102.0, 103.0, 104.0, 105.0):  # the 6th read finds the iterator exhausted
        clock.now = t
        results.append(meter.read_once())
    assert results == [True, False, True, True, True, False]
    trace = meter.samples()
    assert trace.t == [100.0, 102.0, 103.0, 104.0]
    assert trace.values["c"] == [0.0, 2.0, 2.0, 4.0]  # the reset interval (7 -> 2) is not counted
    assert trace.error_count == 3
    assert trace.errors[0] == "RuntimeError: bus timeout"
    assert "went back" in trace.errors[1]
