"""mlperf_ext.logs against logs written by the real LoadGen (null SUT, short runs, one per process)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlperf_ext.errors import MlperfExtError
from mlperf_ext.logs import LogParseError, parse_detail_log, parse_run_dir, parse_summary

from .loadgen_null_run import run_in_subprocess

# Settings chosen so validity does not depend on this machine's speed: the SUT sleeps per sample
# (a latency floor), LoadGen's expected-latency hint is below that floor (enough queries are
# pre-generated), and min_query_count covers early stopping (64 queries at p90, 662 at p99:
# loadgen/results.cc).
VALID_RUNS = {
    "SingleStream": ("--sample-delay-us", "100", "--expected-latency-ns", "50000"),
    "MultiStream": ("--sample-delay-us", "10", "--expected-latency-ns", "5000", "--min-query-count", "700"),
    "Server": ("--server-target-qps", "5000"),
    "Offline": ("--sample-delay-us", "1000", "--offline-expected-qps", "1000"),
}
# Expected latency 20 ms -> LoadGen pre-generates only min_query_count queries, which a null SUT
# finishes long before 200 ms: "Ran out of generated queries", min duration not met.
INVALID_RUN = ("--expected-latency-ns", "20000000")

EXPECTED_METRIC = {
    "SingleStream": "early_stopping_latency_ss",
    "MultiStream": "early_stopping_latency_ms",
    "Server": "result_completed_samples_per_sec",
    "Offline": "result_samples_per_second",
}
ORDER = ("min", "p50", "p90", "p95", "p97", "p99", "p99.9", "max")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loadgen")
    dirs = {s: run_in_subprocess(s, "performance", root / s, *opts) for s, opts in VALID_RUNS.items()}
    dirs["invalid"] = run_in_subprocess("SingleStream", "performance", root / "invalid", *INVALID_RUN)
    dirs["accuracy"] = run_in_subprocess("Offline", "accuracy", root / "accuracy")
    return dirs


@pytest.fixture(scope="module")
def results(run_dirs):
    return {name: parse_run_dir(d) for name, d in run_dirs.items()}


@pytest.mark.parametrize("scenario", list(VALID_RUNS))
def test_metric_and_throughput_present(results, scenario):
    r = results[scenario]
    assert r.scenario == scenario
    assert r.mode == "PerformanceOnly"
    assert r.loadgen_version.startswith("6.0.17")
    assert r.metric_name == EXPECTED_METRIC[scenario]
    assert r.metric_value is not None and r.metric_value > 0
    assert r.throughput is not None and r.throughput > 0
    assert r.query_count and r.query_count > 0
    assert r.sample_count == r.query_count * r.samples_per_query


@pytest.mark.parametrize("scenario", list(VALID_RUNS))
def test_validity_and_conditions(results, scenario):
    r = results[scenario]
    expected = {"min_duration_met", "min_queries_met", "early_stopping_met"}
    if scenario == "Server":
        expected.add("perf_constraints_met")
    assert set(r.conditions) == expected
    assert r.valid == all(r.conditions.values())
    assert (r.invalid_reasons == []) == r.valid
    if scenario != "Server":  # Server's tail latency depends on machine load; the others are pinned
        assert r.valid is True
        assert r.errors == []


@pytest.mark.parametrize("scenario", list(VALID_RUNS))
def test_latency_percentiles_ordered(results, scenario):
    r = results[scenario]
    stats = [r.per_query_latency_ns, r.latency_ns] if scenario == "MultiStream" else [r.latency_ns]
    for s in stats:
        assert set(s) == set(ORDER) | {"mean"}
        values = [s[k] for k in ORDER]
        assert values == sorted(values)
        assert s["min"] <= s["mean"] <= s["max"]
    if scenario != "MultiStream":
        assert r.per_query_latency_ns == {}


def test_latency_floor_of_delayed_sut_shows_up(results):
    # the SUT sleeps 100 us per SingleStream sample and 1 ms per Offline sample (220 samples)
    assert results["SingleStream"].latency_ns["min"] >= 100_000
    assert results["Offline"].latency_ns["min"] >= 220 * 1_000_000


def test_summary_agrees_with_detail(results):
    ss, ms, srv, off = (results[s] for s in VALID_RUNS)
    assert ss.summary["Result is"] == "VALID"
    assert float(ss.summary["90.0th percentile latency (ns)"]) == ss.latency_ns["p90"]
    assert float(ss.summary["Early stopping 90.0th percentile estimate"]) == ss.metric_value
    assert float(ms.summary["99.0th percentile latency (ns)"]) == ms.per_query_latency_ns["p99"]
    assert float(srv.summary["Completed samples per second"]) == pytest.approx(srv.metric_value, rel=1e-4)
    assert float(off.summary["Samples per second"]) == pytest.approx(off.metric_value, rel=1e-4)
    for r in (ss, ms, srv, off):
        assert r.summary["Scenario"] == r.scenario
        assert int(r.summary["samples_per_query"]) == r.samples_per_query


def test_throughput_definitions(results):
    ss, ms = results["SingleStream"], results["MultiStream"]
    # LoadGen rounds the logged mean latency to whole ns, hence the tolerance
    assert ss.throughput == pytest.approx(1e9 / ss.latency_ns["mean"], rel=1e-3)
    assert ms.samples_per_query == 8
    assert ms.throughput == pytest.approx(8 * 1e9 / ms.per_query_latency_ns["mean"])
    assert results["Server"].throughput == results["Server"].metric_value
    assert results["Offline"].throughput == results["Offline"].metric_value


def test_effective_settings(results):
    srv = results["Server"]
    assert srv.server_target_qps == 5000
    # embedded mlperf.conf: *.Server.target_latency = 10 (ms) (loadgen/mlperf.conf)
    assert srv.server_target_latency_ns == 10_000_000
    for name in ("SingleStream", "MultiStream", "Offline"):
        assert results[name].server_target_qps is None
        assert results[name].server_target_latency_ns is None
    ss = results["SingleStream"]
    assert ss.effective["min_duration_ms"] == 200
    assert ss.effective["scenario"] == "SingleStream"
    # the v6.1 seed carried by LoadGen 6.0.17's embedded mlperf.conf (loadgen/mlperf.conf): FromConfig loaded it
    assert ss.effective["qsl_rng_seed"] == 2085463073848966840
    assert not any(k.startswith("effective_") for k in ss.effective)
    assert results["MultiStream"].effective["min_query_count"] == 700


def test_invalid_run(results):
    r = results["invalid"]
    assert r.valid is False
    assert r.conditions["min_duration_met"] is False
    assert "minimum duration not met" in r.invalid_reasons
    assert any("Decrease the expected latency" in reason for reason in r.invalid_reasons)
    assert any("Ending early" in e for e in r.errors)
    assert r.summary["Result is"] == "INVALID"
    assert r.summary["Min duration satisfied"] == "NO"
    assert "Decrease the expected latency" in r.summary["Recommendations"]
    assert r.summary["errors"].startswith("1 ERROR")


def test_accuracy_only_run(results):
    r = results["accuracy"]
    assert r.mode == "AccuracyOnly"
    assert r.valid is None
    assert r.conditions == {} and r.invalid_reasons == []
    assert r.metric_value is None and r.throughput is None and r.query_count is None
    assert r.latency_ns == {}
    assert "Result is" not in r.summary


def test_to_dict_is_json(results):
    d = results["MultiStream"].to_dict()
    assert json.loads(json.dumps(d))["per_query_latency_ns"]["p99"] == results["MultiStream"].per_query_latency_ns["p99"]
    assert d["power_begin"] and d["power_end"]


# --- damaged or foreign files ---------------------------------------------------------------


def _detail_lines(run_dir: Path) -> list[str]:
    return (run_dir / "mlperf_log_detail.txt").read_text().splitlines(keepends=True)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(LogParseError, match="does not exist"):
        parse_detail_log(tmp_path / "nope.txt")
    with pytest.raises(LogParseError, match="does not exist"):
        parse_run_dir(tmp_path / "no_dir")
    empty = tmp_path / "mlperf_log_detail.txt"
    empty.write_text("\n")
    with pytest.raises(LogParseError, match="empty"):
        parse_detail_log(empty)
    with pytest.raises(LogParseError, match="empty"):
        parse_summary(empty)


def test_errors_are_user_errors_with_fix(tmp_path):
    with pytest.raises(MlperfExtError) as info:
        parse_detail_log(tmp_path / "nope.txt")
    assert "fix:" in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_first_line_must_be_mllog(tmp_path, run_dirs):
    bad = tmp_path / "mlperf_log_detail.txt"
    bad.write_text("hello\n" + "".join(_detail_lines(run_dirs["SingleStream"])))
    with pytest.raises(LogParseError, match="first line"):
        parse_detail_log(bad)


def test_truncated_line_is_reported(tmp_path, run_dirs):
    lines = _detail_lines(run_dirs["SingleStream"])
    cut = tmp_path / "mlperf_log_detail.txt"
    cut.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    with pytest.raises(LogParseError, match=f"line {len(lines)} is not valid"):
        parse_detail_log(cut)


def test_unfinished_run_has_no_result(tmp_path, run_dirs):
    lines = _detail_lines(run_dirs["Offline"])
    stop = next(i for i, line in enumerate(lines) if '"result_validity"' in line)
    cut = tmp_path / "mlperf_log_detail.txt"
    cut.write_text("".join(lines[:stop]))
    with pytest.raises(LogParseError, match="did not finish"):
        parse_detail_log(cut)


def test_foreign_lines_skipped_and_all_errors_collected(tmp_path, run_dirs):
    lines = _detail_lines(run_dirs["invalid"])
    err = next(line for line in lines if '"error_runtime"' in line)
    second = err.replace("Ending early", "Second error")
    later_verdict = next(line for line in lines if '"result_validity"' in line).replace("INVALID", "VALID")
    path = tmp_path / "mlperf_log_detail.txt"
    path.write_text("".join(lines[:5]) + "some stray output\n" + "".join(lines[5:]) + second + later_verdict)
    r = parse_detail_log(path)
    assert len(r.errors) == 2 and "Second error" in r.errors[1]
    assert r.valid is False  # the first occurrence of a key wins, as in MLCommons' log_parser


def test_summary_disagreeing_with_detail(tmp_path, run_dirs):
    run = tmp_path / "run"
    shutil.copytree(run_dirs["SingleStream"], run)
    summary = run / "mlperf_log_summary.txt"
    summary.write_text(summary.read_text().replace("Result is : VALID", "Result is : INVALID"))
    with pytest.raises(LogParseError, match="different runs"):
        parse_run_dir(run)
    shutil.copy(run_dirs["Offline"] / "mlperf_log_summary.txt", summary)
    with pytest.raises(LogParseError, match="different runs"):
        parse_run_dir(run)


def test_summary_without_loadgen_lines(tmp_path):
    junk = tmp_path / "s.txt"
    junk.write_text("nothing here\n")
    with pytest.raises(LogParseError, match="no LoadGen summary lines"):
        parse_summary(junk)
