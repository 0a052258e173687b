"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers behind the Backend protocol.

Compute boundary (ARCHITECTURE.md, "Definitions"): `time_compute` pre-binds the input once as an
OrtValue on the session's device, binds every output to that device (after one untimed warm-up run it
re-binds the outputs ORT allocated, so no allocation is timed), and times only
`session.run_with_iobinding(io)` with `time.perf_counter_ns`. On CUDA/TensorRT, ORT synchronises the
provider's stream at the end of each run (RunOptions.synchronize_execution_providers defaults to
true), so the timed interval covers the kernels themselves; host-to-device and device-to-host copies
are outside it. The system path `infer` is `session.run` with a host array: copies, output allocation
and (for a fixed-batch model) padding included.

Streams: `infer(batch, stream=k)` may be called from `streams` threads at once. All streams share one
InferenceSession (ORT's Run is thread-safe), because measured on this 2-core machine (MLP
784-1024-1024-10 FP32, batch 64, two threads each running 300 batches, median of 5; script
/tmp/ortm/streams2.py): shared session 73.3 k img/s vs one session per stream 61.7 k img/s with the
default intra-op threads (two sessions = two thread pools oversubscribing 2 cores), and 91.1 k vs
92.8 k img/s with intra_op_num_threads=1 (equal within noise). One session also compiles once and
holds one copy of the weights.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mlperf_ext.errors import BackendUnavailable, ConfigError, ModelError
from sut.base import BackendDescription, DeploymentOptions, TensorSpec
from sut.model_file import ModelInfo, first_line, fit_batch, inspect_model, refuse_batch

# device -> (execution providers in priority order, OrtValue device type)
_DEVICES: dict[str, tuple[list[str], str]] = {
    "cpu": (["CPUExecutionProvider"], "cpu"),
    "cuda": (["CUDAExecutionProvider"], "cuda"),
    # The TensorRT EP hands the nodes TensorRT cannot build to the CUDA EP: that is how ORT runs TRT.
    "tensorrt": (["TensorrtExecutionProvider", "CUDAExecutionProvider"], "cuda"),
}
_GPU_FIX = "install onnxruntime-gpu (with a matching CUDA/cuDNN) on a machine with an NVIDIA GPU, or use --device cpu"


def _parse_device(device: str) -> tuple[str, int]:
    """'cuda:1' -> ('cuda', 1); 'cpu' -> ('cpu', 0)."""
    kind, _, index = device.lower().partition(":")
    if kind not in _DEVICES:
        raise ConfigError(f"onnxruntime has no device '{device}'; fix: use one of {', '.join(_DEVICES)}")
    if index and not index.isdigit():
        raise ConfigError(f"device index in '{device}' is not a number; fix: use e.g. {kind}:0")
    if kind == "cpu" and index not in ("", "0"):
        raise ConfigError(f"onnxruntime has one CPU device, not '{device}'; fix: use --device cpu")
    return kind, int(index or 0)


class OnnxRuntimeBackend:
    """One ONNX model in one ORT InferenceSession, shared by all streams."""

    name = "onnxruntime"

    def __init__(self) -> None:
        self._ort = None
        self._session = None
        self._info: ModelInfo | None = None
        self._options: DeploymentOptions | None = None
        self._device_type = "cpu"
        self._device_id = 0
        self._output_name = ""

    # -- loading -------------------------------------------------------------------------------
    @staticmethod
    def check_device(device: str) -> None:
        """Refuse, before anything runs, a device whose execution provider this install lacks."""
        kind, _ = _parse_device(device)
        import onnxruntime as ort

        available = ort.get_available_providers()
        missing = [p for p in _DEVICES[kind][0] if p not in available]
        if missing:
            raise ConfigError(f"onnxruntime {ort.__version__} here has no {', '.join(missing)} (available: "
                              f"{', '.join(available)}); fix: {_GPU_FIX}")

    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        kind, device_id = _parse_device(options.device)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            # onnxruntime is a core dependency, so there is no extra to name: the fix is reinstalling it.
            err = BackendUnavailable(self.name, "onnxruntime", detail=str(exc))
            err.args = (f"backend '{self.name}' cannot import onnxruntime ({exc}); fix: pip install onnxruntime "
                        f"(or onnxruntime-gpu), a core dependency of mlperf-ext",)
            raise err from exc
        info = inspect_model(model_path)
        refuse_batch(info, options.max_batch)

        wanted, device_type = _DEVICES[kind]
        self.check_device(options.device)

        so = ort.SessionOptions()
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
        providers: list = [(p, {"device_id": device_id}) if p != "CPUExecutionProvider" else p for p in wanted]
        try:
            session = ort.InferenceSession(str(info.path), sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises Fail/InvalidGraph/NotImplemented... for models it cannot load
            raise ModelError(f"onnxruntime cannot load model {info.path}: {first_line(exc)}; fix: check the model "
                             f"opset/operators against onnxruntime {ort.__version__} or re-export it") from exc
        in_use = session.get_providers()
        if in_use[: len(wanted)] != wanted:
            raise ConfigError(f"onnxruntime fell back to {', '.join(in_use)} instead of {', '.join(wanted)} "
                              f"(the provider failed to initialise); fix: {_GPU_FIX}")

        self._ort, self._session, self._info, self._options = ort, session, info, options
        self._device_type, self._device_id = device_type, device_id
        self._output_name = info.output_names[0]

    def _require(self):
        if self._session is None:
            raise RuntimeError("OnnxRuntimeBackend used before load()")
        return self._session

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> BackendDescription:
        session = self._require()
        assert self._options is not None and self._ort is not None and self._info is not None
        so = session.get_session_options()
        settings = {
            # 0 = ORT's default: one intra-op thread per physical core.
            "intra_op_num_threads": so.intra_op_num_threads,
            "inter_op_num_threads": so.inter_op_num_threads,
            "execution_mode": str(so.execution_mode).rsplit(".", 1)[-1],
            "graph_optimization_level": str(so.graph_optimization_level).rsplit(".", 1)[-1],
            "streams": self._options.streams,
            "stream_sessions": "shared",  # see module docstring for the measurement behind this choice
            "provider_options": session.get_provider_options(),
            "model_float_precision": self._info.float_precision,
            "model_weight_types": list(self._info.weight_types),
            "compute_boundary": "run_with_iobinding, input and outputs pre-bound on the device",
        }
        return BackendDescription(runtime="onnxruntime", version=self._ort.__version__, device=self._options.device,
                                  providers=list(session.get_providers()), settings=settings)

    def input_spec(self) -> TensorSpec:
        self._require()
        assert self._info is not None
        return self._info.input

    # -- system path ---------------------------------------------------------------------------
    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        session = self._require()
        assert self._info is not None and self._options is not None
        if not 0 <= stream < self._options.streams:
            raise ValueError(f"stream {stream} outside 0..{self._options.streams - 1}")
        run_batch, keep = fit_batch(batch, self._info)
        out = session.run([self._output_name], {self._info.input.name: run_batch})[0]
        return out[:keep] if keep != run_batch.shape[0] else out

    # -- compute path --------------------------------------------------------------------------
    def time_compute(self, batch: np.ndarray, iterations: int) -> list[float]:
        session = self._require()
        assert self._info is not None and self._ort is not None
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        run_batch, _ = fit_batch(batch, self._info)
        x = self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(run_batch), self._device_type,
                                                   self._device_id)
        io = session.io_binding()
        io.bind_ortvalue_input(self._info.input.name, x)
        for name in self._info.output_names:
            io.bind_output(name, self._device_type, self._device_id)
        session.run_with_iobinding(io)  # warm-up: ORT allocates the outputs once
        for name, value in zip(self._info.output_names, io.get_outputs(), strict=True):
            io.bind_ortvalue_output(name, value)
        times: list[float] = []
        for _ in range(iterations):
            t0 = time.perf_counter_ns()
            session.run_with_iobinding(io)
            times.append((time.perf_counter_ns() - t0) / 1e9)
        return times

    def close(self) -> None:
        self._session = None
