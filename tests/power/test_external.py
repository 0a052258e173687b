"""The external CSV meter on a real file an external logger would append to."""

from __future__ import annotations

import pytest

from mlperf_ext.errors import ConfigError
from mlperf_ext.power import open_meter, power_figures
from mlperf_ext.power.external import ExternalCsvMeter, parse_power_log

LOG = """unix_time_s,watts
# logger started
1000.0,5.0
1001.0,7.0
oops
1002.0,9.0
1003.0,11.0
1004.0,3.0
"""


def test_parse_skips_header_comments_and_a_line_being_written():
    rows, errors, count = parse_power_log(LOG + "1005.0,4")  # no newline yet: still being written
    assert rows == [(1000.0, 5.0), (1001.0, 7.0), (1002.0, 9.0), (1003.0, 11.0), (1004.0, 3.0)]
    assert count == 1 and "line 5" in errors[0] and "oops" in errors[0]


def test_window_from_the_logged_readings(tmp_path, clock):
    log = tmp_path / "power.csv"
    log.write_text(LOG)
    meter = open_meter(f"external:{log}")
    assert isinstance(meter, ExternalCsvMeter) and meter.name == f"external:{log}"
    meter = ExternalCsvMeter(log, clock=clock, sleep=lambda s: pytest.fail("must not wait"))
    clock.now = 1000.5
    meter.start()
    clock.now = 1002.5
    trace = meter.stop()
    # kept: the reading before start (1000), those inside (1001, 1002), the one after stop (1003)
    assert trace.t == [1000.0, 1001.0, 1002.0, 1003.0]
    figs = power_figures(trace, (1000.5, 1002.5), scenario="Offline", throughput=40.0)
    # by hand: W(1000.5) = 6, W(1002.5) = 10; 0.5*(6+7)/2 + 1*(7+9)/2 + 0.5*(9+10)/2 = 3.25 + 8 + 4.75 = 16 J
    assert figs.energy_j == pytest.approx(16.0)
    assert figs.avg_w == pytest.approx(8.0)
    assert figs.samples_per_j == pytest.approx(5.0)
    assert trace.error_count == 1  # the "oops" line
    assert figs.note.startswith(f"not MLPerf-Power-compliant (meter external:{log})")


def test_stop_waits_for_the_logger_to_pass_the_stop_time(tmp_path, clock):
    log = tmp_path / "power.csv"
    log.write_text("100.0,2.0\n")
    waits = []

    def logger_catches_up(seconds: float) -> None:  # the logger appends its next line while we wait
        waits.append(seconds)
        clock.now += seconds
        with log.open("a") as fh:
            fh.write("101.0,4.0\n")

    meter = ExternalCsvMeter(log, clock=clock, sleep=logger_catches_up)
    clock.now = 100.0
    meter.start()
    clock.now = 100.8
    trace = meter.stop()
    assert len(waits) == 1
    assert trace.t == [100.0, 101.0] and trace.errors == []
    figs = power_figures(trace, (100.0, 100.8), scenario="Offline", throughput=1.0)
    assert figs.avg_w == pytest.approx((2.0 + 3.6) / 2)  # W rises linearly 2 -> 3.6 over the window


def test_a_silent_logger_is_reported_and_gives_no_figures(tmp_path, clock):
    log = tmp_path / "power.csv"
    log.write_text("100.0,2.0\n")

    def idle(seconds: float) -> None:
        clock.now += seconds

    meter = ExternalCsvMeter(log, settle_s=0.5, clock=clock, sleep=idle)
    clock.now = 100.2
    meter.start()
    clock.now = 101.0
    trace = meter.stop()
    assert any("no reading at or after the stop time" in e for e in trace.errors)
    figs = power_figures(trace, (100.2, 101.0), scenario="Offline", throughput=1.0)
    assert figs.avg_w is None and "do not cover" in figs.note


def test_missing_log_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist; fix: start the logger"):
        open_meter(f"external:{tmp_path / 'nope.csv'}")
    with pytest.raises(ConfigError, match=r"needs the logger's file; fix: --power-meter external:FILE"):
        open_meter("external")
