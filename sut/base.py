"""The Backend protocol every hardware module implements.

A backend has two paths (docs/architecture.md, "Definitions"):
- the *system* path, `infer(batch, stream)`: a host array in, a host array out, everything included;
- the *compute* path, `compute_step(batch, stream)`: a callable that runs one pure execution of a batch
  whose inputs are already resident where the device reads them, and returns its seconds. The runner
  calls the steps of all streams at once, so compute is timed at the deployment the system runs.
The facts about what a backend can run live on the backend class itself (`check_device`, `supports`,
`exec_precisions`), so nothing outside it keeps a list of backend names. The LoadGen side (callbacks ->
batches) lives in `sut.adapter`; finding backends by name lives in `sut.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from mlperf_ext.errors import ConfigError

#: `exec_precision` value that runs the model in its own precision (every backend supports it)
MODEL_PRECISION = "model"


@dataclass(frozen=True)
class DeploymentOptions:
    """Deployment parameters a backend is loaded with; each is its own column in results."""

    threads: int | None = None  # intra-op threads over all streams; None = runtime default
    streams: int = 1  # concurrent executions (ORT sessions, OV infer requests, TRT contexts)
    device: str = "cpu"
    max_batch: int = 1  # the largest batch the SUT will hand to infer()
    operating_mode: str | None = None  # power/clock mode, or a runtime hint such as OpenVINO's LATENCY
    exec_precision: str = MODEL_PRECISION  # precision the runtime is asked to execute in
    runtime_options: dict = field(default_factory=dict)  # backend-specific (its `runtime_option_values`)

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
    precision: str = ""  # what executed, read back from the runtime (e.g. "int8", "fp32 (fp16 weights upcast)")
    compute_dtype: str = ""  # the datatype the heavy ops ran in, for level 0 ("" when unknown)
    notes: list[str] = field(default_factory=list)  # where the runtime did something other than asked
    simulated: bool = False  # the timings come from a stand-in for hardware this host lacks (a Fake... device)

    def to_dict(self) -> dict:
        return asdict(self)


#: one pure execution with resident inputs; returns its duration in seconds
ComputeStep = Callable[[], float]


@runtime_checkable
class Backend(Protocol):
    """One hardware/runtime target. Implementations live in sut/<name>.py and import their runtime lazily.

    Optional: `mode_actions`, the operating-mode actions (tiers/level0/platforms.yaml) the backend applies
    itself, e.g. ("openvino_hint",); a mode with a backend action no backend of the point declares is refused.
    """

    name: ClassVar[str]
    extra: ClassVar[str]  # pip extra that installs the runtime ("" when the core installs it)
    runtime_module: ClassVar[str | None]  # import name checked before anything runs
    runtime_packages: ClassVar[tuple[str, ...]]  # distributions whose versions are part of a point's key
    exec_precisions: ClassVar[tuple[str, ...]]  # accepted `exec_precision` values ("model" always)
    runtime_option_values: ClassVar[dict[str, tuple]]  # backend-specific options and the values each takes

    @staticmethod
    def check_device(device: str) -> None:
        """Raise ConfigError, before anything runs, for a device this backend cannot use here."""

    @classmethod
    def supports(cls, model: Any, options: DeploymentOptions) -> str | None:
        """None when this backend can run the model (a sut.model_file.ModelInfo) with these options, else
        the reason it cannot."""

    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        """Load and compile the model; raise ModelError/UnsupportedVariant/BackendUnavailable on failure."""

    def describe(self) -> BackendDescription:
        """Runtime name and version, device, the providers/settings actually in use, and what executed."""

    def input_spec(self) -> TensorSpec:
        """The (single) model input."""

    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        """System path: run one batch on execution stream `stream` (0..streams-1); return host logits."""

    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        """Compute path: bind `batch` where stream `stream` reads it and return one timed execution."""

    def close(self) -> None:
        """Release runtime resources."""


def check_runtime_options(backend_cls, options: dict) -> None:
    """Raise ConfigError for a runtime option the backend does not know, or a value it does not take."""
    from mlperf_ext.errors import ConfigError

    known: dict = getattr(backend_cls, "runtime_option_values", {})
    for key, value in options.items():
        if key not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"{backend_cls.name} has no runtime option '{key}' (it has: {valid}); fix: drop it or "
                              "use one of those")
        if value not in known[key]:
            raise ConfigError(f"{backend_cls.name} runtime option {key}={value!r} is not one of "
                              f"{', '.join(map(str, known[key]))}; fix: use one of those")


def check_exec_precision(backend_cls, options: DeploymentOptions) -> str | None:
    """The reason a backend refuses `options.exec_precision`, or None."""
    wanted = options.exec_precision
    accepted = getattr(backend_cls, "exec_precisions", (MODEL_PRECISION,))
    if wanted in accepted:
        return None
    return (f"{backend_cls.name} cannot execute in '{wanted}' (it accepts {', '.join(accepted)}); fix: use "
            f"--exec-precision {MODEL_PRECISION} or a variant built in that precision")


def split_device(device: str, backend: str, kinds) -> tuple[str, int]:
    """'cuda:1' -> ('cuda', 1), 'cpu' -> ('cpu', 0), for a backend whose devices are `kinds` (one CPU, GPUs by
    index); anything else is bad input, in one line."""
    kind, _, index = device.lower().partition(":")
    if kind not in kinds:
        raise ConfigError(f"{backend} has no device '{device}'; fix: use one of {', '.join(kinds)} (a GPU as kind:N)")
    if index and not index.isdigit():
        raise ConfigError(f"device index in '{device}' is not a number; fix: use e.g. {kind}:0")
    if kind == "cpu" and index not in ("", "0"):
        raise ConfigError(f"{backend} has one CPU device, not '{device}'; fix: use --device cpu")
    return kind, int(index or 0)
