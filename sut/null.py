"""The null backend: returns a fixed answer at once, so a run measures the harness alone."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mlperf_ext.errors import ConfigError
from mlperf_ext.host import package_version
from sut.base import MODEL_PRECISION, BackendDescription, ComputeStep, DeploymentOptions, TensorSpec


class NullBackend:
    """No model is executed; `load` only records the options (the model path may be anything)."""

    name = "null"
    extra = ""
    runtime_module = None
    runtime_packages: tuple[str, ...] = ()
    exec_precisions = (MODEL_PRECISION,)
    runs_model = False  # validation skips the model file and shape checks

    def __init__(self, sample_shape: tuple[int, ...] = (1,), dtype: str = "float32"):
        self._spec = TensorSpec("input", (None, *sample_shape), dtype)
        self._options = DeploymentOptions()
        self._set_answers(1)

    @staticmethod
    def check_device(device: str) -> None:
        if device != "cpu":
            raise ConfigError(f"the null backend runs on the host only, not '{device}'; fix: use --device cpu")

    @classmethod
    def supports(cls, model, options: DeploymentOptions) -> str | None:
        return None  # runs no model, so any file will do

    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        self.check_device(options.device)
        self._options = options
        self._set_answers(max(options.max_batch, 1))

    def describe(self) -> BackendDescription:
        return BackendDescription("null", package_version("mlperf-ext") or "dev", "none", [],
                                  {"streams": self._options.streams}, precision="none (no model runs)")

    def input_spec(self) -> TensorSpec:
        return self._spec

    def _set_answers(self, largest: int) -> None:
        answers = np.zeros((largest, 1), dtype=np.float32)
        self._by_size = [answers[:n] for n in range(largest + 1)]  # made once: infer slices nothing

    def _answer(self, n: int) -> np.ndarray:
        if n >= len(self._by_size):
            self._set_answers(n)
        return self._by_size[n]

    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        try:
            return self._by_size[len(batch)]
        except IndexError:  # larger than any batch loaded for
            return self._answer(len(batch))

    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        answer, n, clock = self._answer, len(batch), time.perf_counter_ns

        def step() -> float:
            start = clock()
            answer(n)
            return (clock() - start) * 1e-9

        return step

    def close(self) -> None:
        pass
