"""Run ONE point in THIS process (the child the launcher starts): one LoadGen test per process.

Steps: load the backend and dataset; time the pure compute of the scenario's nominal batch (this is
also the warm-up, and gives LoadGen hints the user did not set); run the LoadGen test through the SUT
adapter; parse LoadGen's logs; score accuracy; write `result.json` into the run directory.

Usage: python -m tiers.runner.child RUN_DIR   (RUN_DIR/point.json holds the RunPoint)
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mlperf_ext import loadgen
from mlperf_ext.accuracy import evaluate
from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import open_dataset
from mlperf_ext.errors import MlperfExtError
from mlperf_ext.logs import parse_run_dir
from mlperf_ext.qsl import SampleLibrary
from scenarios import ComputeEstimate, DispatchConfig, get_scenario
from sut.adapter import SutAdapter
from sut.base import DeploymentOptions, create_backend
from tiers.runner.validate import check_shapes

#: seconds of compute timing per point (after warm-up), and its bounds in iterations
COMPUTE_SECONDS = {"quick": 0.5, "submission": 5.0}
MIN_ITERATIONS, MAX_ITERATIONS = 10, 5000
WARMUP_RUNS = 3

#: TestSettings fields a scenario may fill from the compute estimate, and the user.conf keys that set them
AUTO_FIELDS_FROM_CONF = {
    "single_stream_expected_latency_ns": ("SingleStream", "target_latency"),
    "multi_stream_expected_latency_ns": ("MultiStream", "target_latency"),
    "server_target_qps": ("Server", "target_qps"),
    "offline_expected_qps": ("Offline", "target_qps"),
}


def time_compute(backend, batch: np.ndarray, profile: str) -> list[float]:
    for _ in range(WARMUP_RUNS):
        backend.infer(batch)
    probe = backend.time_compute(batch, 3)
    per_run = max(float(np.mean(probe)), 1e-7)
    iterations = int(np.clip(COMPUTE_SECONDS[profile] / per_run, MIN_ITERATIONS, MAX_ITERATIONS))
    return backend.time_compute(batch, iterations)


def latency_stats_ms(seconds: list[float]) -> dict:
    """Compute-latency statistics; percentiles as LoadGen takes them (sorted[int(n * p)], results.cc),
    so compute and system percentiles mean the same thing."""
    arr = np.sort(np.asarray(seconds)) * 1e3

    def pct(p: float) -> float:
        return float(arr[min(int(arr.size * p), arr.size - 1)])

    return {"mean": float(arr.mean()), "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
            "min": float(arr[0]), "max": float(arr[-1]), "n": int(arr.size)}


def execute(point: RunPoint, run_dir: Path) -> dict:
    started = datetime.now(timezone.utc).isoformat()
    dataset = open_dataset(point.dataset)
    scenario = get_scenario(point.scenario)
    backend = create_backend(point.backend)
    backend.load(Path(point.model), DeploymentOptions(threads=point.threads, streams=point.streams,
                                                      device=point.device, max_batch=point.batch,
                                                      operating_mode=point.operating_mode))
    if getattr(backend, "runs_model", True):  # the null backend runs no model and takes anything
        check_shapes(dataset, backend.input_spec())
    library = SampleLibrary(dataset)
    settings = loadgen.make_settings(point.scenario, point.mode, point.profile, point.mlperf_model,
                                     Path(point.user_conf) if point.user_conf else None,
                                     dict(point.settings), run_dir)
    config = DispatchConfig(batch=point.batch, streams=point.streams,
                            samples_per_query=settings.multi_stream_samples_per_query,
                            max_wait_us=point.max_wait_us)
    nominal = scenario.nominal_batch(config)
    compute_s = time_compute(backend, library.first_batch(nominal), point.profile)
    estimate = ComputeEstimate(nominal, float(np.mean(compute_s)))
    auto = {}
    for key, value in scenario.auto_settings(estimate, config).items():
        conf_scenario, conf_key = AUTO_FIELDS_FROM_CONF[key]
        user_conf = Path(point.user_conf) if point.user_conf else None
        if key in point.settings or loadgen.conf_sets(user_conf, point.mlperf_model, conf_scenario, conf_key):
            continue
        auto[key] = value
    loadgen.apply_settings(settings, auto)

    errors = loadgen.CallbackErrors()
    adapter = SutAdapter(backend, library, errors)
    dispatcher = scenario.make_dispatcher(adapter.run_batch, config)
    test = loadgen.LoadGenTest(issue=dispatcher.issue, flush=dispatcher.flush,
                               total_count=library.total_count, performance_count=library.performance_count,
                               load=library.load, unload=library.unload, errors=errors)
    log_dir = run_dir / "loadgen"
    try:
        test.run(settings, log_dir)
    finally:
        dispatcher.close()
    stats = latency_stats_ms(compute_s)
    np.save(run_dir / "compute_latency_s.npy", np.asarray(compute_s))
    runtime = backend.describe().to_dict()
    backend.close()
    problems = [f"{errors.count} callback error(s); first: {errors.first}"] if errors.count else []
    result = {
        "callback_errors": errors.count,
        "compute": {"batch": nominal, "latency_ms": stats, "throughput": nominal / (stats["mean"] / 1e3)},
        "runtime": runtime,
        "settings": loadgen.settings_snapshot(settings),
        "auto_settings": auto,
        "adapter": {"batches": adapter.batches, "samples": adapter.samples},
        "started_at": started,
    }
    # From here on the run happened: a problem makes it 'failed' (never 'refused') and keeps what was measured.
    try:
        result["loadgen"] = parse_run_dir(log_dir).to_dict()
        if point.mode in ("accuracy", "submission") and dataset.labels is not None and not errors.count:
            acc = evaluate(log_dir / "mlperf_log_accuracy.json", dataset.labels, "int32")
            result["accuracy"] = {"accuracy": acc.accuracy, "good": acc.good, "total": acc.total, "line": acc.line}
            (run_dir / "accuracy.txt").write_text(acc.line + "\n")
    except MlperfExtError as exc:
        problems.append(str(exc))
    result.update(status="failed" if problems else "ok", error="; ".join(problems) or None,
                  finished_at=datetime.now(timezone.utc).isoformat())
    return result


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    point = RunPoint.from_dict(json.loads((run_dir / "point.json").read_text()))
    started = time.time()
    try:
        result = execute(point, run_dir)
        code = 0
    except MlperfExtError as exc:
        # raised before the LoadGen run: the backend or the data refused this point (a clear reason)
        result = {"status": "refused", "error": str(exc)}
        code = 0
    except Exception as exc:  # noqa: BLE001 - becomes a failure row; the traceback goes to stderr.txt
        traceback.print_exc()
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    result["elapsed_s"] = time.time() - started
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(run_dir / "result.json")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
