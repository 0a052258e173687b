"""Checks every point before anything runs, and says what each one is.

Bad input (an unknown backend, a dataset that does not fit the model, a setting of the wrong type, a
resource beyond what this host can give) raises one clear error and nothing runs. A point that is
well formed gets a `Plan`: its key (what decides the measurement: the resolved point, the bytes of its
model, user.conf and dataset, and the versions of LoadGen, this project and the backend's runtime),
the zoo's facts about its variant, and the backend's reason if it cannot run the variant (that point
becomes a `refused` row without a child).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import mlperf_ext
from mlperf_ext import loadgen
from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import Dataset, open_dataset
from mlperf_ext.datasets.base import DatasetScan
from mlperf_ext.errors import ConfigError, DatasetError
from mlperf_ext.result import MicroInfo, Variant
from scenarios import DispatchConfig
from sut.base import DeploymentOptions, check_runtime_options
from sut.registry import check_backend, runtime_versions
from tasks.base import output_refusal
from tasks.registry import get_task

#: resource limits (lifted by --force-limits): beyond them a run measures the machine thrashing, or dies
STREAMS_PER_CPU = 4  # concurrent executions per usable CPU
THREADS_PER_CPU = 4  # intra-op threads per usable CPU
BATCH_MEMORY_FRACTION = 0.25  # one input batch may take this share of the memory available now


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where the kernel does not say)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_limits(point: RunPoint, dataset: Dataset) -> None:
    """Refuse streams, threads and batches no measurement on this host can use."""
    cpus = usable_cpus()
    if point.streams > STREAMS_PER_CPU * cpus:
        raise ConfigError(f"streams {point.streams} is more than {STREAMS_PER_CPU} per usable CPU ({cpus} here, "
                          f"limit {STREAMS_PER_CPU * cpus}); fix: use fewer streams, or pass --force-limits")
    if point.threads is not None and point.threads > THREADS_PER_CPU * cpus:
        raise ConfigError(f"threads {point.threads} is more than {THREADS_PER_CPU} per usable CPU ({cpus} here, "
                          f"limit {THREADS_PER_CPU * cpus}); fix: use fewer threads, or pass --force-limits")
    memory = available_memory_bytes()
    batch_bytes = point.batch * int(np.prod(dataset.sample_shape)) * np.dtype(dataset.dtype).itemsize
    if memory is not None and batch_bytes > BATCH_MEMORY_FRACTION * memory:
        raise ConfigError(f"batch {point.batch} needs {batch_bytes / 2**30:.1f} GiB per input batch, more than "
                          f"{100 * BATCH_MEMORY_FRACTION:.0f} % of the {memory / 2**30:.1f} GiB available; fix: use a "
                          "smaller --batch, or pass --force-limits")


@dataclass
class Plan:
    """A checked point and what the runner needs to know about it."""

    point: RunPoint
    key: str
    variant: Variant = field(default_factory=Variant)
    dataset_sha256: str | None = None
    versions: dict = field(default_factory=dict)
    refusal: str | None = None  # why the point cannot run here (a refused row, no child)
    mode_actions: dict = field(default_factory=dict)  # the operating mode's actions (tiers/runner/modes.py)
    micro: MicroInfo | None = None  # a layer or stack cut from a parent model (its JSON next to the file)
    warnings: list[str] = field(default_factory=list)  # said before the point runs, and kept in its rows' notes


class PointValidator:
    """Validates points, opening each dataset, model and backend once however many points share it."""

    def __init__(self, force_limits: bool = False):
        self.force_limits = force_limits
        self._datasets: dict[str, Dataset] = {}
        self._scans: dict[str, DatasetScan] = {}
        self._models: dict[tuple[str, str], object] = {}
        self._devices: set[tuple[str, str]] = set()
        self._catalog = None
        self._meters: set[str] = set()
        self._tasks: dict[str, object] = {}

    def dataset(self, ref: str) -> Dataset:
        if ref not in self._datasets:
            self._datasets[ref] = open_dataset(ref)
        return self._datasets[ref]

    def scan(self, ref: str) -> DatasetScan:
        """The dataset's content hash and NaN/Inf samples, from one pass over it per validator."""
        if ref not in self._scans:
            self._scans[ref] = self.dataset(ref).scan()
        return self._scans[ref]

    def task(self, name: str):
        """The task a point names, looked up once (its scorer's extra must be installed)."""
        if name not in self._tasks:
            self._tasks[name] = get_task(name)
        return self._tasks[name]

    def model(self, path: str, backend=None):
        """The model's facts, read by the backend's own inspector when it has one (an FPGA overlay or
        an Edge TPU file is no ONNX model), else from the ONNX file."""
        from sut.model_file import inspect_model

        inspect = getattr(backend, "inspect_model", None) or inspect_model
        key = (getattr(backend, "name", ""), path)
        if key not in self._models:
            self._models[key] = inspect(Path(path))
        return self._models[key]

    def check(self, point: RunPoint) -> type:
        """Raise for any bad input of `point`; returns the backend class."""
        from sut.model_file import refuse_batch

        if point.mode not in loadgen.MODES:
            raise ConfigError(f"unknown mode '{point.mode}'; fix: use one of {', '.join(loadgen.MODES)}")
        if point.profile not in loadgen.PROFILES:
            raise ConfigError(f"unknown profile '{point.profile}'; fix: use one of {', '.join(loadgen.PROFILES)}")
        backend = check_backend(point.backend)
        if (point.backend, point.device) not in self._devices:
            backend.check_device(point.device)
            self._devices.add((point.backend, point.device))
        check_runtime_options(backend, point.runtime_options)
        DispatchConfig(batch=point.batch, streams=point.streams, max_wait_us=point.max_wait_us)
        loadgen.validate_overrides(point.settings, self.force_limits)
        if point.user_conf:
            loadgen.validate_user_conf(Path(point.user_conf), point.mlperf_model)
        if point.audit_config:
            self._check_audit_config(point)
        if point.power != "none" and point.power not in self._meters:
            from mlperf_ext.power import open_meter

            meter = open_meter(point.power)  # one line naming what is missing when this host lacks it
            if meter is not None:
                meter.close()
            self._meters.add(point.power)
        dataset = self.dataset(point.dataset)
        task = self.task(point.task)
        task.check_scenario(point.scenario)
        task.check_dataset(dataset, point.mode)
        scan = self.scan(point.dataset)
        bad, first = scan.nonfinite, scan.first_nonfinite
        if bad and point.mode in ("accuracy", "submission") and not point.allow_nonfinite:
            raise DatasetError(f"dataset '{point.dataset}' has {bad} sample(s) with NaN or Inf (first: index {first}), "
                               f"so mode '{point.mode}' would score answers to garbage; fix: clean the data, or pass "
                               "--allow-nonfinite (allow_nonfinite: true) to score it anyway")
        if not self.force_limits:
            check_limits(point, dataset)
        if getattr(backend, "runs_model", True):  # the null backend runs no model: only the harness is measured
            info = self.model(point.model, backend)
            refuse_batch(info, point.batch)
            task.check_inputs(dataset, info.inputs)  # a task that builds the model's inputs checks what it reads
            task.check_outputs(tuple(getattr(info, "output_names", ())))
        return backend

    @staticmethod
    def _check_audit_config(point: RunPoint) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "audit.config"
            path.write_text(point.audit_config)
            loadgen.validate_user_conf(path, "*", audit=True)

    def mode_actions(self, point: RunPoint) -> dict:
        """The actions of the point's operating mode, from the platform catalog (bad input if it has none)."""
        from tiers.level0.platforms import load_catalog, operating_modes

        if not point.operating_mode:
            return {}
        if self._catalog is None:
            self._catalog = load_catalog()
        modes = operating_modes(self._catalog, point.platform)
        if point.operating_mode not in modes:
            raise ConfigError(f"platform '{point.platform}' has no operating mode '{point.operating_mode}' (it has: "
                              f"{', '.join(modes) or 'none'}); fix: use one of them, or --platform NAME for another "
                              "platform's modes")
        return modes[point.operating_mode]

    def plan(self, point: RunPoint) -> Plan:
        from tiers.runner import modes

        backend = self.check(point)
        actions = self.mode_actions(point)
        refusal = modes.refusal(actions, backend.name) if actions else None
        refusal = refusal or output_refusal(self.task(point.task), backend)
        if getattr(backend, "runs_model", True):
            options = DeploymentOptions(threads=point.threads, streams=point.streams, device=point.device,
                                        max_batch=point.batch, operating_mode=modes.backend_hint(actions),
                                        exec_precision=point.exec_precision,
                                        runtime_options=dict(point.runtime_options))
            refusal = refusal or backend.supports(self.model(point.model, backend), options)
        versions = {"mlcommons-loadgen": loadgen.LOADGEN_VERSION, "mlperf-ext": mlperf_ext.__version__,
                    **runtime_versions(point.backend)}
        scan = self.scan(point.dataset)
        dataset_sha = scan.sha256
        warnings = ([f"dataset '{point.dataset}' has {scan.nonfinite} sample(s) with NaN or Inf (first: index "
                     f"{scan.first_nonfinite})"] if scan.nonfinite else [])
        blob = json.dumps({"point": point.identity(), "dataset_sha256": dataset_sha, "versions": versions},
                          sort_keys=True, default=str).encode()
        return Plan(point=point, key=hashlib.sha256(blob).hexdigest(), variant=variant_of(point),
                    dataset_sha256=dataset_sha, versions=versions, refusal=refusal, mode_actions=actions,
                    micro=micro_of(point), warnings=warnings)


def micro_of(point: RunPoint) -> MicroInfo | None:
    """The micro tier's facts about a cut model (its JSON next to the file), if it is one."""
    from mlperf_ext.zoo.metadata import read_metadata

    path = Path(point.model)
    meta = (read_metadata(path) or {}).get("micro") if path.is_file() else None
    if not meta:
        return None
    return MicroInfo(level=meta.get("level"), layer=meta.get("layer"), op_type=meta.get("op_type"),
                     occurrences=meta.get("occurrences"), parent_model=meta.get("parent_model"))


def variant_of(point: RunPoint) -> Variant:
    """The zoo's metadata for the model file (family, precision label, pruning), if the zoo built it."""
    from mlperf_ext.config import file_sha256
    from mlperf_ext.zoo.metadata import read_metadata

    path = Path(point.model)
    if not path.is_file():
        return Variant()
    meta = read_metadata(path) or {}
    return Variant(family=meta.get("family"), precision=meta.get("precision"), pruning=meta.get("pruning"),
                   model_sha256=file_sha256(path))
