"""Run the real LoadGen once against a null SUT, so tests have genuine LoadGen logs to parse.

Usage: python loadgen_null_run.py SCENARIO MODE OUTDIR [--min-duration-ms N ...]

The SUT completes every sample inside the issue callback with a 4-byte little-endian int32
payload equal to `qsl_index % 10`, so an accuracy run can be scored against `labels = idx % 10`.
One StartTest per process: LoadGen loads its embedded mlperf.conf only on the first FromConfig
of a process (loadgen/test_settings_internal.cc), and aborts the process on a missing log directory
or on an exception escaping a callback (§1.5) - hence mkdir first and the catch-all in issue().
"""

from __future__ import annotations

import argparse
import array
import sys
import time
import traceback
from pathlib import Path

import mlperf_loadgen as lg

SCENARIOS = {
    "SingleStream": lg.TestScenario.SingleStream,
    "MultiStream": lg.TestScenario.MultiStream,
    "Server": lg.TestScenario.Server,
    "Offline": lg.TestScenario.Offline,
}
MODES = {"performance": lg.TestMode.PerformanceOnly, "accuracy": lg.TestMode.AccuracyOnly}


def run_in_subprocess(scenario: str, mode: str, outdir: Path, *options: str, timeout_s: float = 60.0) -> Path:
    """Run this script in a fresh Python process (one LoadGen run each) and return `outdir`.

    A watchdog timeout turns a hung LoadGen (a sample never completed) into a test failure.
    """
    import subprocess

    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), scenario, mode, str(outdir), *options]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=str(outdir))
    if proc.returncode != 0:
        raise RuntimeError(f"LoadGen null run failed (rc={proc.returncode}): {' '.join(cmd)}\n"
                           f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
    return outdir


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("mode", choices=sorted(MODES))
    p.add_argument("outdir", type=Path)
    p.add_argument("--min-duration-ms", type=int, default=200)
    p.add_argument("--max-duration-ms", type=int, default=0, help="0 = LoadGen's default")
    p.add_argument("--min-query-count", type=int, default=100)
    p.add_argument("--expected-latency-ns", type=int, default=20_000,
                   help="SingleStream/MultiStream hint; LoadGen pre-generates 2 x min_duration at 1e9/this QPS")
    p.add_argument("--server-target-qps", type=float, default=5000.0)
    p.add_argument("--offline-expected-qps", type=float, default=20_000.0)
    p.add_argument("--samples-per-query", type=int, default=8, help="MultiStream")
    p.add_argument("--sample-delay-us", type=float, default=0.0,
                   help="sleep this long per sample before completing: gives the null SUT a latency floor, "
                        "so runs that must be VALID do not depend on how fast this machine is")
    p.add_argument("--total-count", type=int, default=200, help="QSL total sample count")
    p.add_argument("--performance-count", type=int, default=64, help="QSL performance sample count")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    user_conf = args.outdir / "user.conf"
    user_conf.write_text("")

    settings = lg.TestSettings()
    # model "null" matches only the `*.` lines of the embedded mlperf.conf (seeds, min durations...)
    rc = settings.FromConfig(str(user_conf), "null", args.scenario)
    if rc != 0:
        print(f"FromConfig failed with rc={rc}", file=sys.stderr)
        return 1
    settings.scenario = SCENARIOS[args.scenario]
    settings.mode = MODES[args.mode]
    settings.min_duration_ms = args.min_duration_ms
    if args.max_duration_ms:
        settings.max_duration_ms = args.max_duration_ms
    settings.min_query_count = args.min_query_count
    settings.single_stream_expected_latency_ns = args.expected_latency_ns
    settings.multi_stream_expected_latency_ns = args.expected_latency_ns * args.samples_per_query
    settings.multi_stream_samples_per_query = args.samples_per_query
    settings.server_target_qps = args.server_target_qps
    settings.offline_expected_qps = args.offline_expected_qps

    def issue(samples: list) -> None:
        # Never let an exception escape: LoadGen would abort the process. Payloads stay alive in
        # `buffers` until QuerySamplesComplete returns (LoadGen copies them synchronously).
        buffers = []
        responses = []
        try:
            if args.sample_delay_us > 0:
                time.sleep(len(samples) * args.sample_delay_us * 1e-6)
            for s in samples:
                buf = array.array("i", [s.index % 10])
                buffers.append(buf)
                addr, n = buf.buffer_info()
                responses.append(lg.QuerySampleResponse(s.id, addr, n * buf.itemsize))
        except Exception:
            traceback.print_exc()
            responses = [lg.QuerySampleResponse(s.id, 0, 0) for s in samples]
        lg.QuerySamplesComplete(responses)

    def flush() -> None:
        pass

    def load(indices: list) -> None:
        pass

    log_out = lg.LogOutputSettings()
    log_out.outdir = str(args.outdir)
    log_out.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_out
    log_settings.enable_trace = False

    sut = lg.ConstructSUT(issue, flush)
    qsl = lg.ConstructQSL(args.total_count, args.performance_count, load, load)
    try:
        # an audit.config path that does not exist: a stray ./audit.config must not turn this
        # into a compliance run (docs/architecture.md)
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, str(args.outdir / "no-audit.config"))
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
