"""What the harness costs: the null backend through the SUT adapter vs a bare LoadGen null SUT.

Prints, from one run (variants interleaved, each in its own process since LoadGen runs one test
per process; median of --rounds):
  - Offline samples/s through the adapter / bare null SUT's samples/s   (goal >= 0.9)
  - the same against a bare SUT that completes in the adapter's batches: what the adapter itself costs,
    apart from LoadGen's own cost per QuerySamplesComplete call that any batched SUT pays
  - SingleStream mean latency the adapter adds, in microseconds          (goal <= 50 us)

The bare SUT is the cheapest correct Python SUT: a fast SUT that completes every issued sample
inline in one QuerySamplesComplete call, with the same 4-byte payload the adapter sends, built the
same way the adapter builds its responses (mlperf_ext.loadgen.complete). The order of the two
variants alternates from round to round, so neither always runs on a warmer or a busier machine.

Usage: python benchmarks/harness_overhead.py [--rounds 3] [--batch 256] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLES = 1024  # QSL size; each sample is 16 floats


def settings_for(scenario: str, seconds: float):
    import mlperf_loadgen as lg

    s = lg.TestSettings()
    s.FromConfig(str(Path(tempfile.mkdtemp()) / "missing.conf"), "null", scenario)  # embedded mlperf.conf
    s.scenario = getattr(lg.TestScenario, scenario)
    s.mode = lg.TestMode.PerformanceOnly
    s.min_duration_ms = int(seconds * 1000)
    s.offline_expected_qps = 500_000
    s.single_stream_expected_latency_ns = 20_000
    return s


def child(variant: str, scenario: str, batch: int, seconds: float, outdir: Path) -> dict:
    import mlperf_loadgen as lg
    import numpy as np

    from mlperf_ext import loadgen
    from mlperf_ext.datasets import ArrayDataset
    from mlperf_ext.logs import parse_run_dir
    from mlperf_ext.qsl import SampleLibrary
    from scenarios import DispatchConfig, get_scenario
    from sut.adapter import SutAdapter
    from sut.base import DeploymentOptions
    from sut.null import NullBackend

    outdir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(scenario, seconds)
    if variant in ("bare", "bare-batched"):
        step = len_max = 1 << 62 if variant == "bare" else batch

        def issue(ids, _indices):  # the payload array is made per call, as the adapter's top-1 array is
            for start in range(0, len(ids), step):
                part = ids[start:start + step] if len(ids) > len_max else ids
                loadgen.complete(part, np.zeros(len(part), dtype="<i4"))

        sut = lg.ConstructFastSUT(issue, lambda: None)
        qsl = lg.ConstructQSL(SAMPLES, SAMPLES, lambda _i: None, lambda _i: None)
        log = lg.LogSettings()
        out = lg.LogOutputSettings()
        out.outdir = str(outdir)
        log.log_output = out
        log.enable_trace = False
        lg.StartTestWithLogSettings(sut, qsl, settings, log, str(outdir / "audit.config"))
        lg.DestroyQSL(qsl)
        lg.DestroyFastSUT(sut)
    else:
        data = ArrayDataset("synthetic", np.random.default_rng(0).random((SAMPLES, 16), dtype=np.float32))
        backend = NullBackend((16,))
        backend.load(Path("none"), DeploymentOptions(max_batch=batch))
        library = SampleLibrary(data)
        errors = loadgen.CallbackErrors()
        adapter = SutAdapter(backend, library, errors)
        dispatcher = get_scenario(scenario).make_dispatcher(adapter.run_batch, DispatchConfig(batch=batch))
        test = loadgen.LoadGenTest(dispatcher.issue, dispatcher.flush, library.total_count,
                                   library.performance_count, library.load, library.unload, errors)
        test.run(settings, outdir)
        dispatcher.close()
        assert errors.count == 0, errors.first
    result = parse_run_dir(outdir)
    return {"throughput": result.throughput, "mean_latency_ns": result.latency_ns.get("mean"),
            "valid": result.valid}


def run_variant(variant: str, scenario: str, batch: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, __file__, "--child", variant, scenario, str(batch), str(seconds),
                               tmp], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="adapter batch in Offline")
    parser.add_argument("--seconds", type=float, default=2.0, help="LoadGen min_duration per run")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, scenario, batch, seconds, outdir = args.child
        print(json.dumps(child(variant, scenario, int(batch), float(seconds), Path(outdir))))
        return
    offline = {"bare": [], "bare-batched": [], "adapter": []}
    single = {"bare": [], "adapter": []}
    for round_no in range(args.rounds):
        order = ["bare", "bare-batched", "adapter"]
        order = order[round_no % 3:] + order[:round_no % 3]  # rotated: no variant always runs first
        for variant in order:
            offline[variant].append(run_variant(variant, "Offline", args.batch, args.seconds)["throughput"])
            if variant in single:
                single[variant].append(run_variant(variant, "SingleStream", 1, args.seconds)["mean_latency_ns"])
    off = {k: statistics.median(v) for k, v in offline.items()}
    ss = {k: statistics.median(v) for k, v in single.items()}
    ratio = off["adapter"] / off["bare"]
    added_us = (ss["adapter"] - ss["bare"]) / 1e3
    print(f"Offline  bare null SUT      : {off['bare']:,.0f} samples/s (median of {args.rounds}; one completion call "
          "per query)")
    print(f"Offline  bare, batch {args.batch:<4}   : {off['bare-batched']:,.0f} samples/s (one completion call per "
          f"{args.batch} samples)")
    print(f"Offline  adapter, batch {args.batch:<4}: {off['adapter']:,.0f} samples/s")
    print(f"Offline  ratio adapter/bare : {ratio:.3f}   (goal >= 0.9) {'OK' if ratio >= 0.9 else 'BELOW GOAL'}")
    print(f"Offline  ratio adapter/bare batched: {off['adapter'] / off['bare-batched']:.3f}   (the adapter's own cost; "
          f"bare batched/bare {off['bare-batched'] / off['bare']:.3f} is LoadGen's per-call cost)")
    print(f"SingleStream mean latency   : bare {ss['bare'] / 1e3:.2f} us, adapter {ss['adapter'] / 1e3:.2f} us")
    print(f"SingleStream added by adapter: {added_us:.2f} us   (goal <= 50 us) {'OK' if added_us <= 50 else 'ABOVE GOAL'}")


if __name__ == "__main__":
    main()
