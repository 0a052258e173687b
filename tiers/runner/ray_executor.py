"""Points as Ray tasks: one task per point, scheduled onto the node that holds what the point needs.

Each task runs the same per-point code as the local executor (`plan_run.run_plan`: the Server search,
one child process per LoadGen test, at most one corrected rerun) on a worker, and returns the results;
the driver alone writes the store, one transaction per result, as tasks finish.

Scheduling, by the resources a task asks for:
- every point takes `mlperf_host` (each node advertises 1: `ray start --resources '{"mlperf_host": 1}'`), so
  two points are never timed at once on one host, unless the spec allows `points_per_host` > 1;
- a CUDA/TensorRT point takes a GPU (`num_gpus=1`), an Edge TPU point `edgetpu: 1`, an FPGA point
  `fpga: 1`, so two points never share an accelerator and each lands on a node that has one;
- a CPU point takes one CPU slot (the host resource already keeps it alone on its node).

Files: when the workdir is shared (the worker sees the driver's token file in it), the worker writes
its run directories straight into it and reads models by path. Otherwise the model (and a dataset
directory) travel through Ray's object store and are checked against their sha256 on the worker, and
each run directory comes back as an archive that the driver unpacks into its own `runs/`.

Faults: a worker or node lost mid-point gives a `crashed` row naming the node; the sweep goes on.
Ctrl-C on the driver cancels the outstanding tasks; the rows already stored stay.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mlperf_ext.config import file_sha256
from mlperf_ext.errors import BackendUnavailable, ConfigError
from mlperf_ext.result import PointResult
from tiers.runner import layout
from tiers.runner.launch import complete
from tiers.runner.plan_run import Keep, RunOptions, Say, run_plan
from tiers.runner.validate import Plan

HOST_RESOURCE = "mlperf_host"
#: device kind (the part of --device before ':') -> the custom resource a point on it takes
DEVICE_RESOURCES = {"edgetpu": "edgetpu", "fpga": "fpga"}
GPU_DEVICES = ("cuda", "tensorrt", "gpu")
SHARED_TOKEN = ".ray-shared-{token}"
#: the worker writes its pid here (under the run's parent) so a test or an operator can find it
WORKER_PID_DIR = ".ray-workers"
#: how long the driver waits for a cluster's address to accept a connection before saying nothing answers
CONNECT_TIMEOUT_S = 3.0


def task_resources(point, points_per_host: int = 1) -> dict:
    """The Ray task options a point's backend and device ask for."""
    device = point.device.lower().split(":")[0]
    options = {"num_cpus": 1, "num_gpus": 1 if device in GPU_DEVICES else 0,
               "resources": {HOST_RESOURCE: 1.0 / points_per_host}}
    if device in DEVICE_RESOURCES:
        options["resources"][DEVICE_RESOURCES[device]] = 1
    return options


def check_reachable(address: str) -> None:
    """Refuse, within CONNECT_TIMEOUT_S, an address where nothing listens. ray.init would retry its GCS
    connection for a minute and more (measured with Ray 2.60 at 127.0.0.1:1), printing Ray's own log lines.
    `auto` (the cluster this machine's Ray knows) is left to Ray."""
    if address == "auto":
        return
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")  # an IPv6 literal
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"the Ray address {address!r} is not HOST:PORT; fix: pass --address HOST:PORT (the head "
                          "node's GCS port, 6379 unless changed), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"nothing answers at the Ray address {address} ({why} within {CONNECT_TIMEOUT_S:g} s); fix: "
                          "start the cluster there (ray start --head --resources '{\"mlperf_host\": 1}') or pass "
                          "the head node's address") from exc


def _require_ray():
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailable("ray executor", "ray", str(exc)) from exc
    return ray


def _archive(run_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(run_dir, arcname=run_dir.name)
    return buffer.getvalue()


def _unpack(data: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(into, filter="data")


def _local_copy(path: str, sha256: str | None, shipped, cache: Path, ray) -> str:
    """The model on this worker: its own path when that file is there with the right bytes, else the shipped
    copy, checked against the sha256 the driver computed."""
    if Path(path).is_file() and (sha256 is None or file_sha256(Path(path)) == sha256):
        return path
    if shipped is None:  # nothing to ship (the null backend names no real file): the backend decides
        return path
    data = ray.get(shipped)
    got = hashlib.sha256(data).hexdigest()
    if sha256 is not None and got != sha256:
        raise RuntimeError(f"shipped copy of {path} has sha256 {got}, not {sha256}")
    target = cache / f"{got[:16]}-{Path(path).name}"
    if not target.exists():
        target.write_bytes(data)
    return str(target)


def run_remote(plan: Plan, workdir: str, token: str, options: RunOptions, model_refs: list, dataset_refs: list) -> dict:
    """The task body, on a worker: run the plan, return its results (and archives when nothing is shared).

    The shipped files come as object refs inside lists, which Ray does not resolve on its own: a worker
    that can read the files where the driver has them never fetches the bytes."""
    import ray

    (model_ref,), (dataset_ref,) = model_refs, dataset_refs
    shared = (Path(workdir) / SHARED_TOKEN.format(token=token)).exists()
    base = Path(workdir) if shared else Path(tempfile.mkdtemp(prefix="mlperf-ext-ray-"))
    runs = layout.runs_dir(base)
    runs.mkdir(parents=True, exist_ok=True)
    pids = base / WORKER_PID_DIR
    pids.mkdir(exist_ok=True)
    (pids / f"{plan.key[:16]}.pid").write_text(str(os.getpid()))
    point = plan.point
    model = _local_copy(point.model, plan.variant.model_sha256, model_ref, base, ray)
    dataset = point.dataset
    if dataset_ref is not None and not Path(dataset).is_dir():
        target = base / "datasets" / plan.dataset_sha256[:16]
        if not target.exists():
            _unpack(ray.get(dataset_ref), target)
        dataset = str(next(target.iterdir()))
    local_plan = replace(plan, point=replace(point, model=model, dataset=dataset))
    results: list[PointResult] = []
    run_plan(local_plan, runs, options, results.append, lambda _msg: None)
    node = f"{socket.gethostname()} ({ray.get_runtime_context().get_node_id()[:12]})"
    out = {"node": node, "results": [], "archives": {}}
    for r in results:
        r.point = point  # the driver's point: the key and the stored row stay the driver's
        r.notes.append(f"ran on {node} via Ray")
        out["results"].append(r.to_dict())
        if r.run_dir and not shared:
            out["archives"][r.run_id] = _archive(Path(r.run_dir))
    if not shared:
        shutil.rmtree(base, ignore_errors=True)
    return out


class RayExecutor:
    """Submits one task per point to a Ray cluster (a local one when no address is given)."""

    name = "ray"

    def __init__(self, address: str | None = None, points_per_host: int = 1):
        if not isinstance(points_per_host, int) or points_per_host < 1:
            raise ConfigError(f"points_per_host must be a whole number >= 1, got {points_per_host!r}; fix: e.g. 1")
        self.address = address
        self.points_per_host = points_per_host
        self.ray = _require_ray()
        if address:
            check_reachable(address)

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - ConnectionError and friends: one line for the user
                raise ConfigError(f"cannot connect to the Ray cluster at {self.address} ({exc}); fix: start it with "
                                  "'ray start --head --resources '{\"mlperf_host\": 1}'' or pass another "
                                  "--address") from exc
        else:  # a cluster of this machine alone, advertising one host slot
            ray.init(resources={HOST_RESOURCE: 1}, include_dashboard=False, log_to_driver=False)

    def _check_capacity(self, plans: Sequence[Plan]) -> None:
        have = self.ray.cluster_resources()
        if have.get(HOST_RESOURCE, 0) <= 0:
            raise ConfigError(f"no node of the Ray cluster advertises the '{HOST_RESOURCE}' resource, so no point "
                              f"could be scheduled; fix: start each node with ray start --resources "
                              f"'{{\"{HOST_RESOURCE}\": 1}}'")
        for plan in plans:
            options = task_resources(plan.point, self.points_per_host)
            wanted = {**options["resources"], **({"GPU": options["num_gpus"]} if options["num_gpus"] else {})}
            missing = [k for k, v in wanted.items() if have.get(k, 0) < v]
            if missing:
                raise ConfigError(f"the Ray cluster has no {', '.join(missing)} for {plan.point.label()}; fix: add a "
                                  f"node that has it (ray start --resources '{{\"{missing[0]}\": 1}}') or drop the point")

    def run(self, plans: Sequence[Plan], runs: Path, options: RunOptions, keep: Keep, say: Say) -> None:
        if not plans:
            return
        ray = self.ray
        self._connect()
        self._check_capacity(plans)
        workdir = runs.parent
        token = uuid.uuid4().hex
        token_file = workdir / SHARED_TOKEN.format(token=token)
        token_file.write_text("the driver's workdir, seen by the workers when the storage is shared\n")
        remote = ray.remote(max_retries=0)(run_remote)
        shipped: dict[str, object] = {}

        def ref_of(path: str):
            if path not in shipped:
                p = Path(path)
                if p.is_file():
                    shipped[path] = ray.put(p.read_bytes())
                elif p.is_dir():
                    buffer = io.BytesIO()
                    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                        tar.add(p, arcname=p.name)
                    shipped[path] = ray.put(buffer.getvalue())
                else:
                    shipped[path] = None
            return shipped[path]

        pending = {}
        try:
            for plan in plans:
                ref = remote.options(**task_resources(plan.point, self.points_per_host)).remote(
                    plan, str(workdir), token, options, [ref_of(plan.point.model)], [ref_of(plan.point.dataset)])
                pending[ref] = plan
                say(f"{plan.point.label()}: submitted to Ray")
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    self._collect(ref, pending.pop(ref), runs, keep)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            token_file.unlink(missing_ok=True)

    def _collect(self, ref, plan: Plan, runs: Path, keep: Keep) -> None:
        ray = self.ray
        try:
            out = ray.get(ref)
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.RayTaskError,
                ray.exceptions.TaskCancelledError, ray.exceptions.ActorDiedError, ray.exceptions.OutOfMemoryError) as exc:
            node = self._node_of(ref)
            error = f"the Ray task running this point on {node} was lost ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            keep(complete(plan, layout.new_run_id(plan.key), None, PointResult(status="crashed", error=error), "", None))
            return
        for data in out["results"]:
            result = PointResult.from_dict(data)
            if result.run_id in out["archives"]:
                _unpack(out["archives"][result.run_id], runs)
                result.run_dir = str((runs / result.run_id).resolve())
            keep(result)

    def _node_of(self, ref) -> str:
        """The node the task was scheduled on, as far as Ray's state API still knows it."""
        try:
            from ray.util.state import get_task

            task = get_task(ref.task_id().hex())
            node_id = getattr(task, "node_id", None) if task is not None else None
            if node_id:
                for node in self.ray.nodes():
                    if node.get("NodeID") == node_id:
                        return f"node {node.get('NodeManagerHostname', '?')} ({node_id[:12]})"
                return f"node {node_id[:12]}"
        except Exception:  # noqa: BLE001 - the state API is best effort; the row still says what was lost
            pass
        return "an unknown node"
