"""Sweeps on Ray: a local Ray cluster started here (2 CPUs, one host slot) runs the same points to the same
rows as the local executor; a worker killed mid-point gives a crashed row and the rest complete; models
travel through the object store, checked against their sha256, when the storage is not shared."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.store import ResultsStore
from tests.harness.conftest import SHORT
from tiers.runner import layout
from tiers.runner.executors import LocalExecutor
from tiers.runner.plan_run import RunOptions
from tiers.sweep import run_points

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'mlperf-ext[ray]')")
from tiers.runner.ray_executor import HOST_RESOURCE, WORKER_PID_DIR, RayExecutor, run_remote, task_resources  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, resources={HOST_RESOURCE: 1}, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def null_points(n: int = 3) -> list[RunPoint]:
    return [RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Offline", batch=64 * (k + 1),
                     settings=dict(SHORT), timeout_s=120) for k in range(n)]


def test_task_resources_follow_the_device():
    point = null_points(1)[0]
    assert task_resources(point) == {"num_cpus": 1, "num_gpus": 0, "resources": {HOST_RESOURCE: 1.0}}
    assert task_resources(replace(point, device="cuda:0"))["num_gpus"] == 1
    assert task_resources(replace(point, device="edgetpu"))["resources"] == {HOST_RESOURCE: 1.0, "edgetpu": 1}
    assert task_resources(point, points_per_host=2)["resources"][HOST_RESOURCE] == 0.5


def test_ray_gives_the_rows_the_local_executor_gives(cluster, tmp_path):
    points = null_points()
    local = run_points(points, tmp_path / "local")
    remote = run_points(points, tmp_path / "ray", executor=RayExecutor())
    assert sorted((r.point_key, r.status) for r in local) == sorted((r.point_key, r.status) for r in remote)
    rows = ResultsStore(layout.store_path(tmp_path / "ray")).rows(latest_only=False)
    assert len(rows) == len({r["point_key"] for r in rows}) == len(points)  # nothing duplicated
    for r in remote:
        assert r.host["hostname"] and any("via Ray" in n for n in r.notes)
        assert (Path(r.run_dir) / "loadgen" / "mlperf_log_detail.txt").is_file()  # shared storage: written in place
    assert run_points(points, tmp_path / "ray", executor=RayExecutor()) == []  # re-running resumes: all stored


def test_a_killed_worker_gives_a_crashed_row_and_the_rest_complete(cluster, tmp_path):
    hang = RunPoint(model="none.onnx", model_name="hangs", dataset="mnist",
                    backend="tests.harness.faulty_backends:HangingBackend", scenario="Offline", batch=8,
                    settings=dict(SHORT), timeout_s=300)
    points = [hang, *null_points(2)]
    out: list = []
    runner = threading.Thread(target=lambda: out.extend(run_points(points, tmp_path, executor=RayExecutor())))
    runner.start()
    pid_dir = tmp_path / WORKER_PID_DIR
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = list(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []
        if pids:
            break
        time.sleep(0.1)
    assert pids, "no Ray worker started the first point"
    time.sleep(3)  # the hanging child is in its LoadGen run by now
    os.kill(int(pids[0].read_text()), signal.SIGKILL)
    runner.join(timeout=300)
    assert not runner.is_alive()
    statuses = sorted(r.status for r in out)
    assert statuses == ["crashed", "ok", "ok"], [(r.status, r.error) for r in out]
    crashed = next(r for r in out if r.status == "crashed")
    assert crashed.point.model_name == "hangs" and "node" in crashed.error


def test_models_travel_through_the_object_store_when_storage_is_not_shared(cluster, tmp_path, mlp_model):
    from tiers.runner.validate import PointValidator

    point = RunPoint(model=str(mlp_model), dataset="mnist", backend="onnxruntime", scenario="Offline", batch=8,
                     settings=dict(SHORT), timeout_s=120)
    plan = PointValidator().plan(point)
    moved = replace(plan, point=replace(point, model="/nonexistent/elsewhere/mlp.onnx"))  # not on this "worker"
    shipped = ray.put(Path(mlp_model).read_bytes())
    remote = ray.remote(max_retries=0)(run_remote)
    out = ray.get(remote.options(**task_resources(point)).remote(moved, str(tmp_path), "no-token", RunOptions(),
                                                                  [shipped], [None]))
    [result] = out["results"]
    assert result["status"] == "ok" and out["archives"]  # ran from the shipped bytes; evidence comes back
    bad = ray.put(b"not the model")
    with pytest.raises(ray.exceptions.RayTaskError, match="sha256"):
        ray.get(remote.options(**task_resources(point)).remote(moved, str(tmp_path), "no-token", RunOptions(), [bad],
                                                               [None]))


def test_an_accelerator_the_cluster_lacks_is_refused_before_anything_runs(cluster, tmp_path):
    from mlperf_ext.errors import ConfigError
    from tiers.runner.validate import Plan

    point = replace(null_points(1)[0], device="edgetpu")
    with pytest.raises(ConfigError, match="no edgetpu"):
        RayExecutor().run([Plan(point=point, key="k")], tmp_path / "runs", RunOptions(), lambda r: None,
                          lambda m: None)
    assert isinstance(LocalExecutor().name, str)
