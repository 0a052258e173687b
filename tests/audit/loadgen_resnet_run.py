"""One real LoadGen test with resnet50's official settings and a null SUT, for the checker's tests.

Usage: python loadgen_resnet_run.py MODE OUTDIR [--scenario S] [--audit-config FILE] [--busy-s X] ...

Settings come from mlperf_ext.loadgen.make_settings with model "resnet50" and the submission
profile, so LoadGen's embedded mlperf.conf applies as in a submission (the round's seeds,
performance_sample_count 1024, Offline min_query_count 24576, Server bound 15 ms); only the minimum
duration is lowered (nobody runs 600 s in a test) unless told otherwise. The SUT answers
`qsl_index % 10` as one int32 per sample; in performance mode it first sleeps `--busy-s` per query,
which gives the run a duration that does not depend on this machine's speed. One test per process
(LoadGen reads its mlperf.conf on the first FromConfig only).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mlperf_ext.loadgen import LoadGenTest, complete, make_settings


def start(mode: str, outdir: Path, *options: str) -> subprocess.Popen:
    """Start this script in a fresh process; `finish` waits for it."""
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), mode, str(outdir), *options]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(outdir))


def finish(proc: subprocess.Popen, outdir: Path, timeout_s: float = 120.0) -> Path:
    out, err = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(
            f"LoadGen run failed (rc={proc.returncode}): {' '.join(proc.args)}\n"
            f"stdout: {out[-2000:]}\nstderr: {err[-2000:]}"
        )
    return Path(outdir).resolve()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["performance", "accuracy"])
    p.add_argument("outdir", type=Path)
    p.add_argument("--scenario", default="Offline")
    p.add_argument("--audit-config", type=Path, help="a compliance test's audit.config for LoadGen to apply")
    p.add_argument("--min-duration-ms", type=int, default=200)
    p.add_argument("--max-duration-ms", type=int, default=0)
    p.add_argument(
        "--busy-s", type=float, default=0.0, help="sleep per query before completing (performance)"
    )
    p.add_argument("--expected-latency-ns", type=int, default=0, help="SingleStream hint (0 = mlperf.conf's)")
    p.add_argument("--offline-expected-qps", type=float, default=24576.0)
    p.add_argument("--total-count", type=int, default=50000)
    p.add_argument("--performance-count", type=int, default=1024)
    args = p.parse_args(argv)

    overrides: dict = {"min_duration_ms": args.min_duration_ms}
    if args.max_duration_ms:
        overrides["max_duration_ms"] = args.max_duration_ms
    if args.scenario == "Offline":
        overrides["offline_expected_qps"] = args.offline_expected_qps
    if args.expected_latency_ns:
        overrides["single_stream_expected_latency_ns"] = args.expected_latency_ns
    settings = make_settings(
        args.scenario, args.mode, "submission", "resnet50", None, overrides, scratch_dir=args.outdir / "conf"
    )
    busy = args.busy_s if args.mode == "performance" else 0.0

    def issue(ids: list[int], indices: list[int]) -> None:
        if busy:
            time.sleep(busy)
        complete(ids, (np.asarray(indices, dtype=np.int64) % 10).astype("<i4"))

    def nothing(*_args) -> None:
        pass

    test = LoadGenTest(
        issue=issue,
        flush=nothing,
        total_count=args.total_count,
        performance_count=args.performance_count,
        load=nothing,
        unload=nothing,
    )
    test.run(settings, args.outdir, audit_config=args.audit_config)
    if test.errors.count:
        print(f"callback errors: {test.errors.first}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
