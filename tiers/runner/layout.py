"""The layout of a workdir: the one module that names its files.

    <workdir>/results.sqlite          the results store (one row per point run)
    <workdir>/.lock                   held by the driver that is running points here
    <workdir>/models/                 zoo artifacts (built and cached)
    <workdir>/runs/<run_id>/          one point's evidence:
        point.json                    the resolved RunPoint
        task.json                     what the child is asked to do (a point, a Server probe, a compliance run)
        result.json                   what the child produced (mlperf_ext.result.PointResult), written last
        stdout.txt, stderr.txt        the child's output
        loadgen/                      LoadGen's logs, unchanged
        compute_latency_s.npy         every timed compute execution (seconds)
        system_latency_s.npy          every sample's LoadGen latency, from LoadGen's trace log (--loadgen-trace)
        accuracy.txt                  MLPerf's accuracy line (accuracy and submission modes)
        audit.config                  a compliance test's LoadGen audit settings (LoadGen reads it from the cwd)
        search/probe-<n>/             the short Server runs that searched the target (each a run dir)
        .discarded                    why a run dir with no stored row was left unstored
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mlperf_ext.store import STORE_NAME

LOCK_NAME = ".lock"
MODELS_DIR = "models"
RUNS_DIR = "runs"

POINT_FILE = "point.json"
TASK_FILE = "task.json"
RESULT_FILE = "result.json"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
LOADGEN_DIR = "loadgen"
COMPUTE_FILE = "compute_latency_s.npy"
SYSTEM_LATENCY_FILE = "system_latency_s.npy"
ACCURACY_FILE = "accuracy.txt"
AUDIT_CONFIG = "audit.config"  # the name LoadGen looks for in its working directory
SEARCH_DIR = "search"
DISCARDED_MARK = ".discarded"


def store_path(workdir: Path) -> Path:
    return Path(workdir) / STORE_NAME


def models_dir(workdir: Path) -> Path:
    return Path(workdir) / MODELS_DIR


def runs_dir(workdir: Path) -> Path:
    return Path(workdir) / RUNS_DIR


def new_run_id(point_key: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    return f"{stamp}-{point_key[:10]}"


def new_run_dir(parent: Path, point_key: str) -> tuple[str, Path]:
    """A fresh run directory under `parent` (a workdir's runs/, or a run's search/): (run id, absolute path).

    Absolute, because the child runs inside it."""
    run_id = new_run_id(point_key)
    run_dir = (Path(parent) / run_id).resolve()
    run_dir.mkdir(parents=True)
    return run_id, run_dir


def run_dir_of(workdir: Path, run_id: str) -> Path:
    return runs_dir(workdir) / run_id
