"""The Backend protocol every hardware module implements, and the registry that loads them lazily.

A backend has two paths (see ARCHITECTURE.md, "Definitions"):
- the *system* path, `infer(batch, stream)`: a host array in, a host array out, everything included;
- the *compute* path, `time_compute(batch, iterations)`: the pure execution of a batch whose inputs
  are already resident where the device reads them; returns seconds per execution.
The LoadGen side (turning callbacks into batches) lives in `sut.adapter`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mlperf_ext.errors import BackendUnavailable, ConfigError


@dataclass(frozen=True)
class DeploymentOptions:
    """Deployment parameters a backend is loaded with; each is its own column in results."""

    threads: int | None = None  # intra-op threads; None = runtime default
    streams: int = 1  # concurrent executions (ORT concurrent runs, OV infer requests, TRT contexts)
    device: str = "cpu"
    max_batch: int = 1  # the largest batch the SUT will hand to infer()
    operating_mode: str | None = None  # power/clock mode, or a runtime hint such as OpenVINO's LATENCY

    def __post_init__(self):
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}; fix: pass --threads 1 or more")
        if self.streams < 1:
            raise ConfigError(f"streams must be >= 1, got {self.streams}; fix: pass --streams 1 or more")
        if self.max_batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.max_batch}; fix: pass --batch 1 or more")


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for a dynamic dimension) and numpy dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass
class BackendDescription:
    """What actually ran: stored in every result row so a silent fallback cannot hide."""

    runtime: str
    version: str
    device: str
    providers: list[str] = field(default_factory=list)  # execution providers / plugins really in use
    settings: dict = field(default_factory=dict)  # effective runtime settings read back from the runtime

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Backend(Protocol):
    """One hardware/runtime target. Implementations live in sut/<name>.py and import their runtime lazily."""

    name: str

    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        """Load and compile the model; raise ModelError/UnsupportedVariant/BackendUnavailable on failure."""

    def describe(self) -> BackendDescription:
        """Runtime name and version, device, and the providers/settings actually in use."""

    def input_spec(self) -> TensorSpec:
        """The (single) model input."""

    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        """System path: run one batch on execution stream `stream` (0..streams-1); return host logits."""

    def time_compute(self, batch: np.ndarray, iterations: int) -> list[float]:
        """Compute path: seconds per execution of `batch` with inputs pre-bound on the device."""

    def close(self) -> None:
        """Release runtime resources."""


# name -> (module, class, pip extra that installs its runtime, runtime import name)
BACKENDS: dict[str, tuple[str, str, str, str | None]] = {
    "null": ("sut.null", "NullBackend", "", None),
    "onnxruntime": ("sut.onnxruntime", "OnnxRuntimeBackend", "onnxruntime", "onnxruntime"),
    "openvino": ("sut.openvino", "OpenVinoBackend", "openvino", "openvino"),
}


def _load_class(module_name: str, class_name: str, ref: str):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"backend '{ref}' cannot be imported ({exc}); fix: use one of "
                          f"{', '.join(sorted(BACKENDS))} or an importable 'module:Class'") from exc
    if not hasattr(module, class_name):
        raise ConfigError(f"backend '{ref}': module {module_name} has no class {class_name}; "
                          "fix: name an existing class")
    return getattr(module, class_name)


def check_backend(name: str) -> None:
    """Fail early, before any run, on an unknown backend or one whose runtime is not installed.

    Besides the built-in names, `module:Class` names a backend class importable from Python (used
    for out-of-tree backends and for the fault-injection backends of the test suite).
    """
    if ":" in name:
        _load_class(*name.split(":", 1), name)
        return
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}'; fix: use one of {', '.join(sorted(BACKENDS))}")
    _module, _cls, extra, runtime = BACKENDS[name]
    if runtime is not None and importlib.util.find_spec(runtime) is None:
        raise BackendUnavailable(name, extra, f"python module '{runtime}' not found")


def create_backend(name: str) -> Backend:
    """Instantiate a backend by name; the runtime itself is imported by the backend's load()."""
    check_backend(name)
    if ":" in name:
        return _load_class(*name.split(":", 1), name)()
    module_name, class_name, _extra, _runtime = BACKENDS[name]
    return _load_class(module_name, class_name, name)()
