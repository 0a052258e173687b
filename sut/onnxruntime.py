"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers behind the Backend protocol.

Compute boundary (docs/architecture.md, "Definitions"): `compute_step` pre-binds the input once as an
OrtValue on the session's device, binds every output to that device (after one untimed warm-up run it
re-binds the outputs ORT allocated, so no allocation is timed), and times only
`session.run_with_iobinding(io)` with `time.perf_counter_ns`. On CUDA/TensorRT, ORT synchronises the
provider's stream at the end of each run (RunOptions.synchronize_execution_providers defaults to
true), so the timed interval covers the kernels themselves; host-to-device and device-to-host copies
are outside it. The system path `infer` is `session.run` with a host array: copies, output allocation
and (for a fixed-batch model) padding included.

Streams: each stream has its own InferenceSession with its share of the threads (`threads` split as
evenly as possible; without `threads`, the usable CPUs are split). Two concurrent runs on one session
share one intra-op pool: on 2 cores ResNet-50 at batch 32 ran at 46.4 samples/s with 2 streams against
54.7 with one, because both runs fight over the same two pool threads. The split is in the row's
runtime settings. With one stream and no `threads`, ORT keeps its own default (one thread per core).

Precision: what executed is read from ORT itself at load: the profiler of one warm-up run gives the
kernels that ran and their input types (profiling then ends), and the optimized graph ORT writes gives
the attributes of the kernels it chose. E.g. QGemm on uint8 is int8; FusedGemm on float after a Cast is
fp32 with the fp16 weights upcast (ORT's CPU provider has no fp16 Gemm); DequantizeLinear of Int2x4
feeding a float Gemm is fp32 with int2 weights dequantized at run time; MatMulNBits computes in what its
`accuracy_level` names (ORT's contrib-op spec: 0/1 fp32, 2 fp16, 3 bf16, 4 int8) on `bits`-bit weights.

Graph optimizations: the runtime option `graph_optimization_level` (disabled | basic | extended | all;
ORT's default is all) sets SessionOptions.graph_optimization_level; the row records how the graph
changed (node counts by op type before and after), so a BatchNormalization fused into its Conv says so.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from mlperf_ext.errors import BackendUnavailable, ConfigError, ModelError, UnsupportedVariant
from sut.base import (
    MODEL_PRECISION,
    BackendDescription,
    ComputeStep,
    DeploymentOptions,
    TensorSpec,
    check_exec_precision,
    check_runtime_options,
    split_device,
)
from sut.model_file import (
    ModelInfo,
    batch_rows,
    first_line,
    fit_batch,
    inspect_model,
    once_per_file_version,
    refuse_batch,
    split_record,
)
from sut.precision import HeavyOp, dtype_name, summarize

# device -> (execution providers in priority order, OrtValue device type)
_DEVICES: dict[str, tuple[list[str], str]] = {
    "cpu": (["CPUExecutionProvider"], "cpu"),
    "cuda": (["CUDAExecutionProvider"], "cuda"),
    # The TensorRT EP hands the nodes TensorRT cannot build to the CUDA EP: that is how ORT runs TRT.
    "tensorrt": (["TensorrtExecutionProvider", "CUDAExecutionProvider"], "cuda"),
}
#: runtime option value -> the onnxruntime.GraphOptimizationLevel member it selects
GRAPH_OPTIMIZATION_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                             "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_GPU_FIX = "install onnxruntime-gpu (with a matching CUDA/cuDNN) on a machine with an NVIDIA GPU, or use --device cpu"
#: kernels that carry a model's arithmetic (their input types say what precision ran)
HEAVY_KERNELS = {"Conv", "FusedConv", "NhwcFusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul", "QGemm",
                 "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
                 "DynamicQuantizeMatMul", "MatMulNBits", "NhwcQLinearConv", "QLinearConvTranspose"}


def _parse_device(device: str) -> tuple[str, int]:
    """'cuda:1' -> ('cuda', 1); 'cpu' -> ('cpu', 0)."""
    return split_device(device, "onnxruntime", tuple(_DEVICES))


def confirm_gpu(index: int) -> None:
    """Refuse a GPU device the host does not have. onnxruntime-gpu lists the CUDA and TensorRT providers
    whether or not a driver and a GPU exist (the list is what the wheel was built with), and a session
    created without one falls back to the CPU provider; so the driver is asked through NVML."""
    try:
        import pynvml
    except ImportError as exc:
        raise BackendUnavailable("onnxruntime", "gpu", detail="nvidia-ml-py is needed to confirm the GPU") from exc
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise ConfigError(f"no NVIDIA driver answers on this host (NVML: {exc}); fix: {_GPU_FIX}") from exc
    try:
        count = pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()
    if not 0 <= index < count:
        raise ConfigError(f"no NVIDIA GPU {index} on this host (NVML counts {count}); fix: "
                          + (f"use --device cuda:N with N in 0..{count - 1}" if count else _GPU_FIX))


def provider_options(provider: str, device_id: int) -> dict:
    """A GPU provider's options. The TensorRT EP keeps its engines and timing cache on disk (beside the
    TensorRT backend's, under its own folder), so each stream's session and each run reuse one build
    instead of building at every load (ORT's TensorRT EP options trt_engine_cache_*)."""
    options: dict = {"device_id": device_id}
    if provider == "TensorrtExecutionProvider":
        import os

        root = Path(os.environ.get("MLPERF_EXT_TENSORRT_CACHE", "~/.cache/mlperf-ext/tensorrt")).expanduser()
        options.update({"trt_engine_cache_enable": True, "trt_engine_cache_path": str(root / "ort-ep"),
                        "trt_timing_cache_enable": True, "trt_timing_cache_path": str(root / "ort-ep")})
    return options


def preload_cuda_libraries(ort) -> None:
    """Load CUDA and cuDNN from the nvidia-* wheels before a GPU session. On Linux the CUDA provider finds
    libcublas/libcudart/libcudnn only on the loader's path, which pip-installed CUDA is not on
    (onnxruntime-gpu >= 1.21: `preload_dlls`, "Preload DLLs" in ONNX Runtime's CUDA provider docs; a CPU wheel
    returns at once). A provider that still cannot load is refused as a fallback at the session, as before."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


def heavy_kernels_on_cpu(kernels: list[dict]) -> list[str]:
    """The compute-heavy kernels the profiler saw on the CPU provider (each event's `provider` and `op_name`):
    a GPU session hands nodes its provider cannot run to the CPU without saying so."""
    return [f"{k.get('op_name')}" for k in kernels
            if k.get("op_name") in HEAVY_KERNELS and k.get("provider") == "CPUExecutionProvider"]


def split_threads(threads: int | None, streams: int) -> list[int | None]:
    """Intra-op threads per stream session: `threads` (or the usable CPUs) shared out as evenly as possible,
    at least one each; [None] (ORT's default) for one stream without a thread count."""
    if streams == 1:
        return [threads]
    total = threads if threads is not None else len(os.sched_getaffinity(0))
    share, extra = divmod(max(total, streams), streams)
    return [share + (1 if k < extra else 0) for k in range(streams)]


#: MatMulNBits accuracy_level -> the datatype it computes in (ORT contrib-op spec, com.microsoft.MatMulNBits)
NBITS_ACCURACY = {0: "fp32", 1: "fp32", 2: "fp16", 3: "bf16", 4: "int8"}


def nbits_kernels(optimized) -> list[tuple[int, int]]:
    """(bits, accuracy_level) of every MatMulNBits node in ORT's optimized graph, in graph order."""
    from onnx import helper

    out = []
    for node in optimized.graph.node if optimized is not None else ():
        if node.op_type == "MatMulNBits":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            out.append((int(attrs.get("bits", 4)), int(attrs.get("accuracy_level", 0))))
    return out


def graph_changes(before: dict[str, int], optimized) -> dict:
    """How ORT's optimizations changed the graph: node counts, and each op type whose count changed."""
    if optimized is None:
        return {}
    after: dict[str, int] = {}
    for node in optimized.graph.node:
        after[node.op_type] = after.get(node.op_type, 0) + 1
    changed = {op: [before.get(op, 0), after.get(op, 0)] for op in sorted(set(before) | set(after))
               if before.get(op, 0) != after.get(op, 0)}
    return {"nodes_before": sum(before.values()), "nodes_after": sum(after.values()), "op_counts_changed": changed}


def _qdq_type(node, inits: dict) -> int | None:
    """The quantized element type of a Q/DQ node: its zero point's type, else (DequantizeLinear) its input's."""
    if len(node.input) > 2 and node.input[2] in inits:
        return inits[node.input[2]].data_type
    if node.op_type == "DequantizeLinear" and node.input[0] in inits:
        return inits[node.input[0]].data_type
    for attr in node.attribute:
        if attr.name == "output_dtype" and attr.i:
            return attr.i
    return None


def gpu_graph_refusal(path: Path) -> str | None:
    """Why ORT's CUDA/TensorRT providers cannot run this QDQ graph as built, found with `onnx` before a session
    starts; None when nothing is known against it. Refused: DequantizeLinear of an int32 tensor (a quantized
    bias, as quantize_static writes by default) and INT4 Q/DQ on activations (only weight-only INT4, a
    DequantizeLinear of an initializer, is taken)."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    int4 = {TensorProto.INT4, TensorProto.UINT4}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        kind, name = _qdq_type(node, inits), node.name or node.output[0]
        if node.op_type == "DequantizeLinear" and kind == TensorProto.INT32:
            return (f"DequantizeLinear '{name}' dequantizes an int32 bias, which the CUDA/TensorRT providers do not "
                    f"take; fix: quantize with extra_options QuantizeBias=False (float bias), or use --device cpu")
        weight_only = node.op_type == "DequantizeLinear" and node.input[0] in inits
        if kind in int4 and not weight_only:
            return (f"{node.op_type} '{name}' quantizes activations to INT4; the CUDA/TensorRT providers take INT4 "
                    f"weight-only (DequantizeLinear of an initializer); fix: quantize activations to int8 with int4 "
                    f"weights, or use --device cpu")
    return None


cached_gpu_graph_refusal = once_per_file_version(gpu_graph_refusal)


def executed_precision(kernels: list[dict], info: ModelInfo, optimized=None) -> tuple[str, str]:
    """(what executed, compute dtype) from ORT profiler kernel events (their `args`) and the optimized graph."""
    heavy: list[HeavyOp] = []
    dequantized: set[str] = set()
    nbits = iter(nbits_kernels(optimized))
    for args in kernels:
        op = args.get("op_name", "")
        types = [dtype_name(next(iter(t))) for t in args.get("input_type_shape", []) if t]
        if op == "DequantizeLinear" and types and types[0] not in ("fp32", "fp16", "bf16", ""):
            dequantized.add(types[0])
        if op == "MatMulNBits":
            bits, level = next(nbits, (4, 0))
            heavy.append(HeavyOp(op, NBITS_ACCURACY.get(level, "fp32"), f"int{bits}"))
        elif op in HEAVY_KERNELS and types:
            heavy.append(HeavyOp(op, types[0]))
    suffix = ""
    if dequantized and all(h.compute in ("fp32", "fp16") for h in heavy):
        suffix = f"{'/'.join(sorted(dequantized))} weights dequantized at run time"
    elif info.float_precision == "fp16" and heavy and all(h.compute == "fp32" for h in heavy):
        suffix = "fp16 weights upcast"
    return summarize(heavy, suffix)


class OnnxRuntimeBackend:
    """One ONNX model in one ORT InferenceSession per stream."""

    name = "onnxruntime"
    extra = "onnxruntime"
    runtime_module = "onnxruntime"
    runtime_packages = ("onnxruntime", "onnxruntime-gpu")
    exec_precisions = (MODEL_PRECISION,)  # ORT has no switch that changes the precision a graph runs in
    runtime_option_values = {"graph_optimization_level": tuple(GRAPH_OPTIMIZATION_LEVELS)}

    def __init__(self) -> None:
        self._ort = None
        self._sessions: list = []
        self._info: ModelInfo | None = None
        self._options: DeploymentOptions | None = None
        self._device_type = "cpu"
        self._device_id = 0
        self._threads: list[int | None] = []
        self._precision = ("", "")
        self._graph_changes: dict = {}
        self._single_input: str | None = None  # the input's name when the model has one (records otherwise)

    # -- facts ---------------------------------------------------------------------------------
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
        if kind != "cpu":
            confirm_gpu(_parse_device(device)[1])

    @classmethod
    def supports(cls, model: ModelInfo, options: DeploymentOptions) -> str | None:
        check_runtime_options(cls, options.runtime_options)
        reason = check_exec_precision(cls, options)
        if reason or _parse_device(options.device)[0] == "cpu":
            return reason
        return cls._gpu_refusal(model, options)

    @staticmethod
    def _gpu_refusal(model: ModelInfo, options: DeploymentOptions) -> str | None:
        """The QDQ graphs the CUDA/TensorRT providers cannot run (only a graph with Q/DQ nodes is read again)."""
        if not model.has_op("QuantizeLinear", "DequantizeLinear"):
            return None
        reason = cached_gpu_graph_refusal(model.path)
        return f"onnxruntime --device {options.device} cannot run {model.path.name}: {reason}" if reason else None

    # -- loading -------------------------------------------------------------------------------
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
        check_runtime_options(type(self), options.runtime_options)
        reason = check_exec_precision(type(self), options)
        if reason:
            raise ConfigError(reason)
        if kind != "cpu":
            refusal = self._gpu_refusal(info, options)
            if refusal:
                raise UnsupportedVariant(refusal)  # as TensorRT and OpenVINO refuse a graph they cannot run
        wanted, device_type = _DEVICES[kind]
        self.check_device(options.device)
        if kind != "cpu":
            preload_cuda_libraries(ort)
        providers: list = [(p, provider_options(p, device_id)) if p != "CPUExecutionProvider" else p for p in wanted]
        self._ort, self._info, self._options = ort, info, options
        self._single_input = info.input.name if len(info.inputs) == 1 else None
        self._device_type, self._device_id = device_type, device_id
        self._threads = split_threads(options.threads, options.streams)
        with tempfile.TemporaryDirectory() as scratch:
            self._sessions = [self._session(info, providers, wanted, threads, scratch if k == 0 else None)
                              for k, threads in enumerate(self._threads)]
            self._precision = self._profile(Path(scratch))

    def _session(self, info: ModelInfo, providers: list, wanted: list[str], threads: int | None, profile_dir):
        ort = self._ort
        so = ort.SessionOptions()
        if threads is not None:
            so.intra_op_num_threads = threads
        level = (self._options.runtime_options if self._options else {}).get("graph_optimization_level")
        if level is not None:
            so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPTIMIZATION_LEVELS[level])
        if profile_dir is not None:  # one profiled warm-up run says which kernels ran in which types
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(profile_dir) / "ort_profile")
            so.optimized_model_filepath = str(Path(profile_dir) / "optimized.onnx")
        try:
            session = ort.InferenceSession(str(info.path), sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises Fail/InvalidGraph/NotImplemented... for models it cannot load
            raise ModelError(f"onnxruntime cannot load model {info.path}: {first_line(exc)}; fix: check the model "
                             f"opset/operators against onnxruntime {ort.__version__} or re-export it") from exc
        in_use = session.get_providers()
        if in_use[: len(wanted)] != wanted:
            raise ConfigError(f"onnxruntime fell back to {', '.join(in_use)} instead of {', '.join(wanted)} "
                              f"(the provider failed to initialise); fix: {_GPU_FIX}")
        return session

    def _profile(self, scratch: Path) -> tuple[str, str]:
        """Run stream 0 once under the profiler, end profiling, and read the kernels that ran and the
        optimized graph they came from."""
        import onnx

        assert self._info is not None
        session = self._sessions[0]
        session.run(None, {spec.name: np.zeros([d if d is not None else 1 for d in spec.shape], dtype=spec.dtype)
                           for spec in self._info.inputs})
        path = Path(session.end_profiling())
        if not path.is_absolute():
            path = scratch / path.name if (scratch / path.name).exists() else Path.cwd() / path
        try:
            events = json.loads(path.read_text())
        finally:
            path.unlink(missing_ok=True)
        kernels = [e.get("args", {}) for e in events
                   if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
        kind, _ = _parse_device(self._options.device if self._options else "cpu")
        on_cpu = heavy_kernels_on_cpu(kernels) if kind != "cpu" else []
        if on_cpu:
            raise ConfigError(f"onnxruntime ran {len(on_cpu)} compute-heavy kernel(s) on the CPU although "
                              f"--device {self._options.device} was asked ({', '.join(on_cpu[:3])}"
                              f"{'...' if len(on_cpu) > 3 else ''}): a silent fallback; fix: use a model whose ops the "
                              "GPU provider supports, or --device cpu")
        optimized_path = scratch / "optimized.onnx"
        optimized = onnx.load(str(optimized_path), load_external_data=False) if optimized_path.exists() else None
        self._graph_changes = graph_changes(dict(self._info.op_counts), optimized)
        return executed_precision(kernels, self._info, optimized)

    def _require(self):
        if not self._sessions:
            raise RuntimeError("OnnxRuntimeBackend used before load()")
        return self._sessions

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> BackendDescription:
        sessions = self._require()
        assert self._options is not None and self._ort is not None and self._info is not None
        so = sessions[0].get_session_options()
        settings = {
            # 0 = ORT's default: one intra-op thread per physical core.
            "intra_op_num_threads": [s.get_session_options().intra_op_num_threads for s in sessions],
            "inter_op_num_threads": so.inter_op_num_threads,
            "execution_mode": str(so.execution_mode).rsplit(".", 1)[-1],
            "graph_optimization_level": str(so.graph_optimization_level).rsplit(".", 1)[-1],
            "streams": self._options.streams,
            "stream_sessions": len(sessions),
            "provider_options": sessions[0].get_provider_options(),
            "model_float_precision": self._info.float_precision,
            "model_weight_types": list(self._info.weight_types),
            "compute_boundary": "run_with_iobinding, input and outputs pre-bound on the device",
            "graph_changes": self._graph_changes,
        }
        text, dtype = self._precision
        notes = []
        bn = self._graph_changes.get("op_counts_changed", {}).get("BatchNormalization")
        if bn:
            notes.append(f"ORT's graph optimizations ({settings['graph_optimization_level']}) left {bn[1]} of the "
                         f"model's {bn[0]} BatchNormalization nodes (the rest fused into the preceding Conv)")
        return BackendDescription(runtime="onnxruntime", version=self._ort.__version__, device=self._options.device,
                                  providers=list(sessions[0].get_providers()), settings=settings,
                                  precision=text, compute_dtype=dtype, notes=notes)

    def input_spec(self) -> TensorSpec:
        self._require()
        assert self._info is not None
        return self._info.input

    def input_specs(self) -> tuple[TensorSpec, ...]:
        """Every model input (a model with several is fed records, a field per input)."""
        self._require()
        assert self._info is not None
        return self._info.inputs

    def _feeds(self, batch: np.ndarray | dict) -> dict[str, np.ndarray]:
        name = self._single_input
        return {name: batch} if name and not isinstance(batch, dict) else split_record(batch, self._info.input_names)

    # -- system path ---------------------------------------------------------------------------
    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        session = self._require()[stream]
        assert self._info is not None
        run_batch, keep = fit_batch(batch, self._info)
        # every output is fetched: asking for the first alone would let ORT prune the nodes of the others
        out = session.run(None, self._feeds(run_batch))[0]
        return out[:keep] if keep != run_batch.shape[0] else out

    def infer_outputs(self, batch: np.ndarray | dict, stream: int = 0) -> dict[str, np.ndarray]:
        """System path of a task that reads every output: `infer`, with each output by its name (and the inputs as
        a batch of samples, or as named arrays a task built)."""
        session = self._require()[stream]
        assert self._info is not None
        run_batch, keep = fit_batch(batch, self._info)
        values = session.run(None, self._feeds(run_batch))
        cut = keep != batch_rows(run_batch)
        return {name: value[:keep] if cut else value for name, value in zip(self._info.output_names, values)}

    # -- compute path --------------------------------------------------------------------------
    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        session = self._require()[stream]
        assert self._info is not None and self._ort is not None
        run_batch, _ = fit_batch(batch, self._info)
        feeds = self._feeds(run_batch)
        x = [self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feeds[name]), self._device_type,
                                                    self._device_id) for name in self._info.input_names]
        io = session.io_binding()
        for name, value in zip(self._info.input_names, x, strict=True):
            io.bind_ortvalue_input(name, value)
        for name in self._info.output_names:
            io.bind_output(name, self._device_type, self._device_id)
        session.run_with_iobinding(io)  # warm-up: ORT allocates the outputs once
        for name, value in zip(self._info.output_names, io.get_outputs(), strict=True):
            io.bind_ortvalue_output(name, value)
        run, clock = session.run_with_iobinding, time.perf_counter_ns

        def step() -> float:
            start = clock()
            run(io)
            return (clock() - start) * 1e-9

        step.keep_alive = (x, io)  # the bound buffers live as long as the step
        return step

    def close(self) -> None:
        self._sessions = []
