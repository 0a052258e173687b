"""What the harness costs: the null backend through the harness's SUT vs a bare LoadGen null SUT.

Prints, from one run (variants interleaved, each LoadGen test in its own process since LoadGen runs one
test per process; medians of --rounds):
  - Offline samples/s through the harness / the bare null SUT's samples/s     (goal >= 0.9)
  - the same against a bare SUT that completes in the harness's batches: what the harness itself costs,
    apart from LoadGen's own cost per QuerySamplesComplete call that any batched SUT pays
  - SingleStream mean latency the harness adds, in microseconds                (goal <= 50 us)
  - Server capacity: the highest target_qps LoadGen judges VALID, found for every variant by the same
    bisection (to within --tolerance, the same latency bound and duration), harness / bare
                                                                               (goal >= 0.8, moonshot >= 1.0)

Variants: `bare` is the cheapest correct Python SUT: a fast SUT that completes every issued sample inside
its issue callback, one QuerySamplesComplete call with one response array per call, the 4-byte payload
completed the cheapest way from Python this project knows: reused responses whose ids are set (as
mlperf_ext.loadgen.ResponseSlots does), and for a call too large to reuse anything (an Offline query in
one call) each response built once; written here, so the bare side needs no project code. `harness` is the null backend through
the same objects tiers.runner.child wires together (SampleLibrary, SutAdapter, the scenario's
dispatcher, LoadGenTest): the native dispatcher where it is built. `harness-python` is the same with the
Python dispatcher forced (what runs where the extension cannot be built, and what ran before it
existed). With --baseline-root DIR, `baseline` is the harness of another checkout (say a git worktree of
an earlier commit), measured in the same run: before and after on the same host. The order of the
variants rotates from round to round, so none always runs on a warmer or a busier machine.

Usage: python benchmarks/harness_overhead.py [--rounds 3] [--batch 256] [--seconds 2]
                                             [--server-batch 64] [--bound-ms 10] [--only offline,single,server]
                                             [--baseline-root DIR]
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
if "--child" in sys.argv and sys.argv[sys.argv.index("--child") + 1] == "baseline":
    sys.path.insert(0, sys.argv[-1])  # the baseline checkout's modules come first
else:
    sys.path.insert(0, str(ROOT))

SAMPLES = 1024  # QSL size; each sample is 16 floats
POOLED = 4096  # the bare SUT reuses responses for calls up to this size, and builds larger ones afresh
SERVER_START_QPS = 50_000.0  # the first probe of every Server search
SERVER_MAX_QPS = 2_000_000.0  # no search goes above (LoadGen pre-generates every query of a probe)


def settings_for(scenario: str, seconds: float, outdir: Path, target_qps: float | None, bound_ms: float):
    import mlperf_loadgen as lg

    s = lg.TestSettings()
    (outdir / "user.conf").write_text("")
    s.FromConfig(str(outdir / "user.conf"), "null", scenario)  # the embedded mlperf.conf, once per process
    s.scenario = getattr(lg.TestScenario, scenario)
    s.mode = lg.TestMode.PerformanceOnly
    s.min_duration_ms = int(seconds * 1000)
    s.offline_expected_qps = 500_000
    s.single_stream_expected_latency_ns = 20_000
    if target_qps is not None:
        s.server_target_qps = target_qps
        s.server_target_latency_ns = int(bound_ms * 1e6)
        s.max_duration_ms = int(2 * seconds * 1000)  # an overloaded probe is cut off (an ERROR: not VALID)
    return s


def run_bare(settings, outdir: Path, step: int | None) -> None:
    from itertools import repeat

    import mlperf_loadgen as lg
    import numpy as np

    # reused responses, each pointing at its 4 bytes of one payload buffer: a call sets the ids only
    set_id = lg.QuerySampleResponse.id.fset
    pool = {"payload": np.zeros(0, dtype="<i4"), "responses": []}

    def complete(ids, values) -> None:
        n = len(ids)
        if n > POOLED:  # a whole Offline query in one call: nothing is reused, so each response is built once
            base = values.ctypes.data
            lg.QuerySamplesComplete(list(map(lg.QuerySampleResponse, ids, range(base, base + 4 * n, 4), repeat(4, n))))
            return
        if n > len(pool["responses"]):
            payload = pool["payload"] = np.zeros(max(n, 2 * len(pool["responses"])), dtype="<i4")
            pool["responses"] = [lg.QuerySampleResponse(0, payload.ctypes.data + 4 * k, 4) for k in range(len(payload))]
        pool["payload"][:n] = values
        responses = pool["responses"][:n]
        for _ in map(set_id, responses, ids):
            pass
        lg.QuerySamplesComplete(responses)

    def issue(ids, _indices):  # the payload array is made per call, as the harness's top-1 array is
        if step is None or len(ids) <= step:
            complete(ids, np.zeros(len(ids), dtype="<i4"))
            return
        for start in range(0, len(ids), step):
            part = ids[start:start + step]
            complete(part, np.zeros(len(part), dtype="<i4"))

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


def run_harness(settings, outdir: Path, scenario: str, batch: int, python: bool) -> str:
    import gc

    import numpy as np

    from mlperf_ext import loadgen
    from mlperf_ext.datasets import ArrayDataset
    from mlperf_ext.qsl import SampleLibrary
    from scenarios import DispatchConfig, get_scenario
    from sut.adapter import SutAdapter
    from sut.base import DeploymentOptions
    from sut.null import NullBackend

    if python:
        from scenarios import native

        native.unavailable = lambda: "forced by benchmarks/harness_overhead.py"
    data = ArrayDataset("synthetic", np.random.default_rng(0).random((SAMPLES, 16), dtype=np.float32))
    backend = NullBackend((16,))
    backend.load(Path("none"), DeploymentOptions(max_batch=batch))
    library = SampleLibrary(data)
    errors = loadgen.CallbackErrors()
    adapter = SutAdapter(backend, library, errors)
    gc.collect()
    gc.freeze()  # as the child does before its run
    one = {"run_one": adapter.run_one} if hasattr(adapter, "run_one") else {}  # as the child passes it
    dispatcher = get_scenario(scenario).make_dispatcher(adapter.run_batch, DispatchConfig(batch=batch), **one)
    if hasattr(loadgen.LoadGenTest, "of"):
        test = loadgen.LoadGenTest.of(dispatcher, library, errors)
    else:  # a baseline checkout from before the native dispatcher
        test = loadgen.LoadGenTest(dispatcher.issue, dispatcher.flush, library.total_count,
                                   library.performance_count, library.load, library.unload, errors)
    test.run(settings, outdir)
    dispatcher.close()
    assert errors.count == 0 and not getattr(dispatcher, "failed_batches", 0), errors.first
    return getattr(dispatcher, "impl", "python")


def child(variant: str, scenario: str, batch: int, seconds: float, target: float | None, bound_ms: float,
          outdir: Path) -> dict:
    from mlperf_ext.logs import parse_run_dir

    outdir.mkdir(parents=True, exist_ok=True)
    settings = settings_for(scenario, seconds, outdir, target, bound_ms)
    impl = None
    if variant == "bare":
        run_bare(settings, outdir, None)
    elif variant == "bare-batched":
        run_bare(settings, outdir, batch)
    else:
        impl = run_harness(settings, outdir, scenario, batch, python=variant == "harness-python")  # or baseline
    result = parse_run_dir(outdir)
    return {"throughput": result.throughput, "mean_latency_ns": result.latency_ns.get("mean"),
            "valid": bool(result.valid) and not result.errors, "p99_ns": result.latency_ns.get("p99"), "impl": impl}


#: the harness of another checkout (--baseline-root), or None
BASELINE_ROOT: str | None = None


def run_variant(variant: str, scenario: str, batch: int, seconds: float, target: float | None = None,
                bound_ms: float = 10.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, __file__, "--child", variant, scenario, str(batch), str(seconds),
                               "-" if target is None else repr(target), str(bound_ms), tmp,
                               BASELINE_ROOT or "-"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} {scenario} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class CapacitySearch:
    """The highest VALID Server target by bisection: double from the start until a probe is INVALID, halve
    until one is VALID, then bisect until (lowest INVALID - highest VALID) / lowest INVALID <= tolerance."""

    def __init__(self, tolerance: float):
        self.tolerance = tolerance
        self.valid: float = 0.0  # highest VALID target so far
        self.invalid: float | None = None  # lowest INVALID target so far
        self.trace: list[tuple[float, bool]] = []

    @property
    def done(self) -> bool:
        if self.valid >= SERVER_MAX_QPS:
            return True
        return (self.invalid is not None and self.valid > 0
                and (self.invalid - self.valid) / self.invalid <= self.tolerance)

    def next_target(self) -> float:
        if self.invalid is None:
            return SERVER_START_QPS if not self.trace else min(2 * self.valid, SERVER_MAX_QPS)
        if self.valid == 0.0:
            return self.invalid / 2
        return (self.valid + self.invalid) / 2

    def record(self, target: float, valid: bool) -> None:
        self.trace.append((target, valid))
        if valid:
            self.valid = max(self.valid, target)
        else:
            self.invalid = target if self.invalid is None else min(self.invalid, target)


def server_capacities(variants: list[str], batch: int, seconds: float, bound_ms: float, tolerance: float,
                      first: int) -> dict[str, CapacitySearch]:
    """One search per variant, their probes interleaved (one probe of each in turn, the turn's order
    starting at variant `first`), so a slow spell of the host falls on every variant alike."""
    searches = {v: CapacitySearch(tolerance) for v in variants}
    order = variants[first:] + variants[:first]
    while not all(s.done for s in searches.values()):
        for variant in order:
            search = searches[variant]
            if search.done:
                continue
            target = search.next_target()
            search.record(target, run_variant(variant, "Server", batch, seconds, target, bound_ms)["valid"])
    return searches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="harness batch in Offline")
    parser.add_argument("--seconds", type=float, default=2.0, help="LoadGen min_duration per run and probe")
    parser.add_argument("--server-batch", type=int, default=64, help="the harness's largest batch in Server")
    parser.add_argument("--bound-ms", type=float, default=10.0, help="Server latency bound (99th percentile)")
    parser.add_argument("--tolerance", type=float, default=0.03, help="Server search: stop within this share")
    parser.add_argument("--only", default="offline,single,server", help="which rows to measure")
    parser.add_argument("--baseline-root", help="another checkout whose harness runs as the 'baseline' variant")
    parser.add_argument("--child", nargs=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, scenario, batch, seconds, target, bound_ms, outdir, _root = args.child
        print(json.dumps(child(variant, scenario, int(batch), float(seconds),
                               None if target == "-" else float(target), float(bound_ms), Path(outdir))))
        return
    global BASELINE_ROOT
    BASELINE_ROOT = str(Path(args.baseline_root).resolve()) if args.baseline_root else None
    rows = set(args.only.split(","))
    if "offline" in rows or "single" in rows:
        offline_and_single_stream(args, rows)
    if "server" in rows:
        server(args)


def offline_and_single_stream(args, rows: set[str]) -> None:
    offline = {"bare": [], "bare-batched": [], "harness": [], "harness-python": []}
    single = {"bare": [], "harness": []}
    if BASELINE_ROOT:
        offline["baseline"], single["baseline"] = [], []
    impl = None
    for round_no in range(args.rounds):
        order = list(offline)
        order = order[round_no % len(order):] + order[:round_no % len(order)]  # rotated
        for variant in order:
            if "offline" in rows:
                run = run_variant(variant, "Offline", args.batch, args.seconds)
                offline[variant].append(run["throughput"])
                impl = run["impl"] if variant == "harness" else impl
            if variant in single and "single" in rows:
                single[variant].append(run_variant(variant, "SingleStream", 1, args.seconds)["mean_latency_ns"])
    if "offline" in rows:
        off = {k: statistics.median(v) for k, v in offline.items()}
        ratio = off["harness"] / off["bare"]
        print(f"Offline  bare null SUT        : {off['bare']:,.0f} samples/s (median of {args.rounds}; one completion "
              "call per query)")
        print(f"Offline  bare, batch {args.batch:<4}     : {off['bare-batched']:,.0f} samples/s (one completion call "
              f"per {args.batch} samples)")
        print(f"Offline  harness ({impl}), batch {args.batch}: {off['harness']:,.0f} samples/s")
        print(f"Offline  harness (python), batch {args.batch}: {off['harness-python']:,.0f} samples/s")
        print(f"Offline  ratio harness/bare   : {ratio:.3f}   (goal >= 0.9) {'OK' if ratio >= 0.9 else 'BELOW GOAL'}"
              f"; python dispatcher/bare {off['harness-python'] / off['bare']:.3f}")
        print(f"Offline  ratio harness/bare batched: {off['harness'] / off['bare-batched']:.3f}   (against a bare SUT "
              f"that completes in the harness's batches; bare batched/bare {off['bare-batched'] / off['bare']:.3f}: "
              "completing per batch against in one call)")
        if BASELINE_ROOT:
            print(f"Offline  baseline ({BASELINE_ROOT}): {off['baseline']:,.0f} samples/s, /bare "
                  f"{off['baseline'] / off['bare']:.3f}")
    if "single" in rows:
        ss = {k: statistics.median(v) for k, v in single.items()}
        added_us = (ss["harness"] - ss["bare"]) / 1e3
        print(f"SingleStream mean latency     : bare {ss['bare'] / 1e3:.2f} us, harness {ss['harness'] / 1e3:.2f} us")
        print(f"SingleStream added by harness : {added_us:.2f} us   (goal <= 50 us) "
              f"{'OK' if added_us <= 50 else 'ABOVE GOAL'}")
        if BASELINE_ROOT:
            print(f"SingleStream added by baseline: {(ss['baseline'] - ss['bare']) / 1e3:.2f} us")


def server(args) -> None:
    variants = ["bare", "harness", "harness-python"] + (["baseline"] if BASELINE_ROOT else [])
    found: dict[str, list[float]] = {v: [] for v in variants}
    for round_no in range(args.rounds):
        searches = server_capacities(variants, args.server_batch, args.seconds, args.bound_ms, args.tolerance,
                                     round_no % len(variants))
        for variant, search in searches.items():
            found[variant].append(search.valid)
        print(f"Server round {round_no + 1}: " + ", ".join(
            f"{v} {s.valid:,.0f} ({len(s.trace)} probes)" for v, s in searches.items()), flush=True)
    cap = {v: statistics.median(x) for v, x in found.items()}
    print(f"Server capacity (highest VALID target, p99 <= {args.bound_ms:g} ms, {args.seconds:g} s runs, "
          f"bisection to {100 * args.tolerance:g} %, median of {args.rounds}):")
    print(f"Server   bare null SUT        : {cap['bare']:,.0f} QPS")
    print(f"Server   harness, batch {args.server_batch:<5} : {cap['harness']:,.0f} QPS (native dispatcher where built)")
    print(f"Server   python dispatcher    : {cap['harness-python']:,.0f} QPS (the fallback; the dispatcher before "
          "the native one)")
    ratio = cap["harness"] / cap["bare"]
    verdict = "MOONSHOT" if ratio >= 1.0 else "OK" if ratio >= 0.8 else "BELOW GOAL"
    print(f"Server   ratio harness/bare   : {ratio:.3f}   (goal >= 0.8, moonshot >= 1.0) {verdict}; "
          f"python dispatcher/bare {cap['harness-python'] / cap['bare']:.3f}")
    if BASELINE_ROOT:
        print(f"Server   baseline ({BASELINE_ROOT}): {cap['baseline']:,.0f} QPS, /bare "
              f"{cap['baseline'] / cap['bare']:.3f}; harness/baseline {cap['harness'] / cap['baseline']:.2f}x")


if __name__ == "__main__":
    main()
