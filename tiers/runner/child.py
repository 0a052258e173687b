"""Run ONE point in THIS process (the child the launcher starts): one LoadGen test per process.

Steps: load the backend and dataset; time the pure compute of the scenario's nominal batch at the
point's deployment (all streams at once; this is also the warm-up, and gives LoadGen the hints the user
did not set); run the LoadGen test through the SUT adapter; time compute again (the drift between the
two says whether the host stayed quiet); parse LoadGen's logs; score accuracy; write `result.json`.
The point's task (`tasks/`, named `work` here) says what the outputs mean: the adapter that answers LoadGen,
what compute times (a decoder: its prefill and its decode step), and how the accuracy log is scored.

A ChildTask says what else the child is for: a Server `probe` (a short performance run at a given target,
for the runner's search). A point with an `audit_config` is a compliance rerun: the child writes it as
`audit.config` into its working directory, where LoadGen reads it, and checks that LoadGen says so.

Usage: python -m tiers.runner.child RUN_DIR   (RUN_DIR/point.json holds the RunPoint, task.json the task)
"""

from __future__ import annotations

import faulthandler
import gc
import json
import signal
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mlperf_ext import loadgen
from mlperf_ext.accuracy import read_accuracy_log
from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import open_dataset
from mlperf_ext.errors import MlperfExtError
from mlperf_ext.logs import DETAIL_NAME, TRACE_NAME, LoadGenResult, parse_run_dir, trace_sample_latencies_ns
from mlperf_ext.power import loadgen_window, measure_idle, no_power, open_meter, power_figures
from mlperf_ext.qsl import SampleLibrary
from mlperf_ext.result import (
    ComputeFigures,
    DispatchFigures,
    LoadGenSettings,
    ModeState,
    PointResult,
    RuntimeInfo,
    SystemFigures,
)
from scenarios import ComputeEstimate, DispatchConfig, get_scenario
from scenarios.base import MAX_SERVER_QPS
from sut.base import DeploymentOptions
from sut.registry import create_backend
from tasks.base import SCORED_MODES
from tasks.registry import get_task
from tiers.runner import layout, modes
from tiers.runner.compute import COMPUTE_SECONDS, ComputeTiming, latency_stats_ms, measure_compute, spread_of

#: TestSettings fields the harness may fill when the user did not, and the user.conf keys that set them
AUTO_FIELDS_FROM_CONF = {
    "single_stream_expected_latency_ns": ("SingleStream", "target_latency"),
    "multi_stream_expected_latency_ns": ("MultiStream", "target_latency"),
    "server_target_qps": ("Server", "target_qps"),
    "offline_expected_qps": ("Offline", "target_qps"),
}
#: seconds of idle power measured before the point, by profile
IDLE_SECONDS = {"quick": 2.0, "submission": 10.0}
#: what LoadGen's detail log says when it applies an audit.config (loadgen.cc, StartTest)
AUDIT_FOUND = "Found Audit Config file"
#: compute timing of a Server probe: only a warm-up and an upper bound for the search
PROBE_COMPUTE_SECONDS = 0.2
#: a probe's LoadGen duration (never longer than the point's own): long enough for early stopping's
#: query count at the rates a Python SUT reaches, short next to the run it sizes
PROBE_MIN_DURATION_MS = {"quick": 1000, "submission": 10000}
#: a probe above what the SUT sustains would run until its backlog drains; it is cut off instead
#: (LoadGen logs "Max test duration reached" and the probe is INVALID, which is its answer)
PROBE_MAX_DURATION_FACTOR = 3


@dataclass
class ChildTask:
    """What the child runs the point for."""

    role: str = "point"  # point | probe (a short Server run at a given target, for the runner's search)
    #: hints the runner chose, for fields the user did not set: a Server target (a probe's to try, or the
    #: one the search found; without one a Server run uses the compute throughput it measures), or a
    #: corrected hint after an INVALID run. They replace the scenario's automatic hints.
    hints: dict = field(default_factory=dict)
    force_limits: bool = False  # the user lifted the sanity limits on settings
    mode: dict = field(default_factory=dict)  # the operating mode's actions, applied before the backend loads

    @classmethod
    def read(cls, run_dir: Path) -> ChildTask:
        path = run_dir / layout.TASK_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def write(self, run_dir: Path) -> None:
        (run_dir / layout.TASK_FILE).write_text(json.dumps(asdict(self)))


def user_set(point: RunPoint, key: str) -> bool:
    """Whether the user set a TestSettings field, by override or by a user.conf line LoadGen reads."""
    if key in point.settings:
        return True
    if key not in AUTO_FIELDS_FROM_CONF:
        return False
    conf_scenario, conf_key = AUTO_FIELDS_FROM_CONF[key]
    user_conf = Path(point.user_conf) if point.user_conf else None
    return loadgen.conf_sets(user_conf, point.mlperf_model, conf_scenario, conf_key)


def system_figures(lg: LoadGenResult) -> SystemFigures:
    lat = lg.latency_ns

    def ms(name: str) -> float | None:
        return None if lat.get(name) is None else float(lat[name]) / 1e6

    return SystemFigures(valid=lg.valid, conditions=dict(lg.conditions), invalid_reasons=list(lg.invalid_reasons), metric_name=lg.metric_name,
                         metric_value=lg.metric_value, throughput=lg.throughput, lat_mean_ms=ms("mean"),
                         lat_p50_ms=ms("p50"), lat_p90_ms=ms("p90"), lat_p99_ms=ms("p99"),
                         query_count=lg.query_count, sample_count=lg.sample_count, errors=list(lg.errors),
                         warning_count=len(lg.warnings), loadgen_version=lg.loadgen_version or loadgen.LOADGEN_VERSION)


def compute_figures(timings: list[ComputeTiming]) -> ComputeFigures:
    """Both measurements' windows pooled: their median is the compute throughput and their range over it
    the spread; each measurement's own median is kept, and how far the two drifted apart."""
    pooled = [s for t in timings for s in t.latencies_s]
    stats = latency_stats_ms(pooled)
    rates = [r for t in timings for r in t.window_throughputs]
    before = timings[0].throughput
    after = timings[1].throughput if len(timings) > 1 else None
    return ComputeFigures(
        batch=timings[0].batch, streams=timings[0].streams, lat_mean_ms=stats["mean"], lat_p50_ms=stats["p50"],
        lat_p90_ms=stats["p90"], lat_p99_ms=stats["p99"], lat_min_ms=stats["min"], lat_max_ms=stats["max"],
        executions=stats["n"], throughput=float(statistics.median(rates)), spread=spread_of(rates),
        window_throughputs=[round(r, 3) for r in rates], before_throughput=before,
        after_throughput=after, drift=None if after is None else abs(after - before) / before)


def save_sample_latencies(trace_log: Path, out: Path, expected: int | None) -> list[str]:
    """Every sample's LoadGen latency (s) from the trace log, saved beside the run; notes on a short trace."""
    latencies = trace_sample_latencies_ns(trace_log)
    np.save(out, np.asarray(latencies, dtype=np.float64) / 1e9)
    if expected is not None and len(latencies) != expected:
        return [f"LoadGen's trace holds {len(latencies)} sample latencies, its detail log counts {expected} samples"]
    return []


def ops_per_sample(model: str) -> float | None:
    """Level 0's ops for one sample (for GOP/J), or None when the file cannot be analysed."""
    from tiers.level0.graph import analyze

    try:
        return float(analyze(model).ops)
    except (MlperfExtError, OSError, ValueError):
        return None


def execute(point: RunPoint, task: ChildTask, run_dir: Path) -> PointResult:
    """The child's steps, inside the operating mode (applied, read back, and undone where it can be)."""
    with modes.applied(task.mode) as state:
        result = execute_in_mode(point, task, run_dir)
    if task.mode:
        result.mode = ModeState(actions=dict(task.mode), applied=state)
    return result


def execute_in_mode(point: RunPoint, task: ChildTask, run_dir: Path) -> PointResult:
    started = datetime.now(timezone.utc).isoformat()
    dataset = open_dataset(point.dataset)
    work = get_task(point.task)  # what the outputs mean (the ChildTask is what this process is for)
    scenario = get_scenario(point.scenario)
    backend = create_backend(point.backend)
    backend.load(Path(point.model), DeploymentOptions(
        threads=point.threads, streams=point.streams, device=point.device, max_batch=point.batch,
        operating_mode=modes.backend_hint(task.mode), exec_precision=point.exec_precision,
        runtime_options=dict(point.runtime_options)))
    if getattr(backend, "runs_model", True):  # the null backend runs no model and takes anything
        work.check_inputs(dataset, backend.input_specs() if hasattr(backend, "input_specs") else (backend.input_spec(),))
    library = SampleLibrary(dataset)
    probe = task.role == "probe"
    meter = open_meter(point.power) if not probe else None
    # The runtime, model and dataset live as long as the process: frozen out of the collector, they are
    # not rescanned by every collection that per-batch garbage triggers during the run.
    gc.collect()
    gc.freeze()
    idle = measure_idle(meter, IDLE_SECONDS[point.profile]) if meter is not None else None
    user_conf = Path(point.user_conf) if point.user_conf else None
    settings = loadgen.make_settings(point.scenario, "performance" if probe else point.mode, point.profile,
                                     point.mlperf_model, user_conf, dict(point.settings), run_dir,
                                     task.force_limits)
    config = DispatchConfig(batch=point.batch, streams=point.streams,
                            samples_per_query=settings.multi_stream_samples_per_query,
                            max_wait_us=point.max_wait_us)
    nominal = library.first_batch(scenario.nominal_batch(config))
    seconds = PROBE_COMPUTE_SECONDS if probe else COMPUTE_SECONDS[point.profile]
    # what compute times: the batch itself, or the model inputs a task builds from it (a decoder's prefill, and
    # its decode step, timed apart)
    phases = work.compute_inputs(backend, nominal)
    timed = next(iter(phases.values()))
    timings = [measure_compute(backend, timed, point.streams, seconds)]
    decode = [measure_compute(backend, phases["decode"], point.streams, seconds)] if "decode" in phases else []
    estimate = ComputeEstimate(len(nominal), timings[0].mean_latency_s, timings[0].throughput)
    if decode:  # a sample takes its prefill and its decode steps
        latency = work.generation_seconds(nominal, timings[0].mean_latency_s, decode[0].mean_latency_s)
        estimate = ComputeEstimate(len(nominal), latency, timings[0].throughput * timings[0].mean_latency_s / latency)
    auto = {k: v for k, v in scenario.auto_settings(estimate, config).items() if not user_set(point, k)}
    auto.update({k: v for k, v in work.loadgen_settings.items() if not user_set(point, k)})
    if point.scenario == "Server" and not user_set(point, "server_target_qps"):
        auto["server_target_qps"] = min(estimate.throughput, MAX_SERVER_QPS)
    auto.update({k: v for k, v in task.hints.items() if not user_set(point, k)})
    if probe:
        auto["min_duration_ms"] = min(settings.min_duration_ms, PROBE_MIN_DURATION_MS[point.profile])
        auto["max_duration_ms"] = PROBE_MAX_DURATION_FACTOR * auto["min_duration_ms"]
    loadgen.apply_settings(settings, auto)

    errors = loadgen.CallbackErrors()
    adapter = work.make_adapter(backend, library, errors)
    dispatcher = scenario.make_dispatcher(adapter.run_batch, config, run_one=adapter.run_one)
    test = loadgen.LoadGenTest.of(dispatcher, library, errors)
    log_dir = run_dir / layout.LOADGEN_DIR
    audit = None
    if point.audit_config:  # a compliance rerun: LoadGen applies the test's settings from its cwd
        audit = Path(layout.AUDIT_CONFIG)
        (run_dir / layout.AUDIT_CONFIG).write_text(point.audit_config)
    if meter is not None:
        meter.start()
    run_began = time.time()
    try:
        test.run(settings, log_dir, enable_trace=point.loadgen_trace, audit_config=audit)
    finally:
        run_ended = time.time()
        trace = meter.stop() if meter is not None else None
        dispatcher.close()
    if getattr(dispatcher, "failed_batches", 0):
        errors.record(RuntimeError(f"{dispatcher.failed_batches} batch(es) raised in run_batch"), "native dispatcher")
    if not probe:  # the same measurement after the run: did the host stay as it was?
        timings.append(measure_compute(backend, timed, point.streams, seconds))
        if decode:
            decode.append(measure_compute(backend, phases["decode"], point.streams, seconds))
    np.save(run_dir / layout.COMPUTE_FILE, np.asarray([s for t in timings for s in t.latencies_s]))
    desc = backend.describe()
    backend.close()
    result = PointResult(
        status="ok", callback_errors=errors.count, started_at=started,
        settings=LoadGenSettings(requested=loadgen.settings_snapshot(settings), auto=auto,
                                 user_conf_notes=loadgen.user_conf_notes(user_conf, point.mlperf_model,
                                                                         point.scenario)),
        compute=compute_figures(timings),
        runtime=RuntimeInfo(name=desc.runtime, version=desc.version, device=desc.device,
                            providers=list(desc.providers), settings=desc.settings, precision=desc.precision,
                            compute_dtype=desc.compute_dtype, notes=list(desc.notes), simulated=desc.simulated),
        dispatch=DispatchFigures(batches=adapter.batches, samples=adapter.samples,
                                 batch_sizes={str(k): v for k, v in sorted(adapter.batch_sizes.items())},
                                 impl=dispatcher.impl, impl_note=dispatcher.impl_note))
    problems = [f"{errors.count} callback error(s); first: {errors.first}"] if errors.count else []
    # From here on the run happened: a problem makes it 'failed' (never 'refused') and keeps what was measured.
    try:
        lg = parse_run_dir(log_dir)
        result.system = system_figures(lg)
        if point.loadgen_trace:
            result.notes += save_sample_latencies(log_dir / TRACE_NAME, run_dir / layout.SYSTEM_LATENCY_FILE,
                                                  lg.sample_count)
        if trace is not None:
            window = loadgen_window(lg)
            result.power = power_figures(
                trace, window or (run_began, run_ended), scenario=point.scenario, idle=idle,
                throughput=lg.throughput, query_count=lg.query_count, samples_per_query=lg.samples_per_query or 1,
                ops_per_sample=ops_per_sample(point.model), window_source="loadgen" if window else "run")
        if audit is not None and not any(AUDIT_FOUND in w for w in lg.warnings):
            problems.append(f"LoadGen did not report reading {layout.AUDIT_CONFIG} (no '{AUDIT_FOUND}' in its "
                            "detail log): the compliance settings were not applied")
        result.settings.effective = lg.effective
        if decode:
            result.tokens = work.token_figures(log_dir / DETAIL_NAME, timings, decode, nominal)
        if point.mode in SCORED_MODES and not probe and work.metric and not errors.count:
            score = work.score(read_accuracy_log(log_dir / "mlperf_log_accuracy.json"), dataset)
            result.accuracy = score
            (run_dir / layout.ACCURACY_FILE).write_text(score.line + "\n")
            result.notes += work.warnings(score, adapter.outputs_per_sample or 0, dataset)
        elif point.mode in SCORED_MODES and not probe and not work.metric:
            result.notes.append(f"task {work.name} scores nothing: the outputs are in LoadGen's accuracy log as they are")
    except MlperfExtError as exc:
        problems.append(str(exc))
    if meter is not None:
        meter.close()
    if result.power is None and not probe:
        result.power = no_power()
    if problems:
        result.status, result.error = "failed", "; ".join(problems)
    elif result.system.valid is False:
        result.status, result.error = "invalid", "; ".join(result.system.invalid_reasons)
    result.finished_at = datetime.now(timezone.utc).isoformat()
    return result


#: the launcher sends this to a child past its timeout: faulthandler (registered in main) then writes every
#: thread's Python stack to stderr.txt before the child is killed, so a hang says where it hung
STACK_DUMP_SIGNAL = signal.SIGUSR1


def main(argv: list[str]) -> int:
    faulthandler.register(STACK_DUMP_SIGNAL, all_threads=True)
    run_dir = Path(argv[0])
    point = RunPoint.from_dict(json.loads((run_dir / layout.POINT_FILE).read_text()))
    task = ChildTask.read(run_dir)
    started = time.time()
    try:
        result = execute(point, task, run_dir)
        code = 0
    except MlperfExtError as exc:
        # raised before the LoadGen run: the backend or the data refused this point (a clear reason)
        result = PointResult(status="refused", error=str(exc))
        code = 0
    except Exception as exc:  # noqa: BLE001 - becomes a failure row; the traceback goes to stderr.txt
        traceback.print_exc()
        result = PointResult(status="failed", error=f"{type(exc).__name__}: {exc}")
        code = 1
    result.elapsed_s = time.time() - started
    tmp = run_dir / (layout.RESULT_FILE + ".tmp")
    tmp.write_text(result.to_json())
    tmp.replace(run_dir / layout.RESULT_FILE)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
