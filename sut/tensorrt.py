"""TensorRT backend: an ONNX model built into a TensorRT engine for one NVIDIA GPU, behind the Backend protocol.

Runtime: the `tensorrt` wheel (11.x) for the engine, `cuda-python` (`cuda.bindings.runtime`) for memory,
streams and events; no pycuda, no torch. Both come with the pip extra `tensorrt`.

Engine. The ONNX parser fills a network that is strongly typed: TensorRT 11 removed the precision builder
flags (FP16, INT8, ...) and takes every tensor's type from the model, so an FP16 variant runs in fp16 and a
Q/DQ INT8 variant in int8 (docs.nvidia.com/deeplearning/tensorrt/11.0.0/api/migration/
tensorrt-10x-to-11x-python-api.html; the STRONGLY_TYPED creation flag is "deprecated in TensorRT 11.0.
Strongly typed mode is always enabled", docs.nvidia.com/deeplearning/tensorrt/11.0.0/_static/python-api/
infer/Core/Builder.html). An older TensorRT is refused at import (`check_tensorrt_version`): the extra pins
tensorrt>=11 and cuda-python>=13, and nothing here was run on 10. `exec_precision` is `model`, or `tf32`.
TF32: TensorRT enables BuilderFlag.TF32 by default ("Enabled by default" in the 11.4 bindings' docstring), so
fp32 layers would round their inner-product inputs to 10-bit mantissas while reporting fp32, and Level 0 would
predict them against the fp32 peak. The flag is cleared unless `--exec-precision tf32` asks for it; then fp32
layers on TF32 tactics report tf32, and the engine cache key says whether TF32 was allowed. The engine is built with ProfilingVerbosity.DETAILED so that the engine inspector can
report every layer's formats (EngineInspector docs: with the default LAYER_NAMES_ONLY only names print).

Shapes: one optimisation profile over the batch dimension, min 1, opt = max = the point's batch
(`DeploymentOptions.max_batch`). Every other dimension must be fixed in the model.

Engine cache: built engines are kept under `$MLPERF_EXT_TENSORRT_CACHE`, else `~/.cache/mlperf-ext/tensorrt`,
as `<key>.engine` with a `<key>.json` that says what the key was made of. The key is a sha256 over the
model file's sha256, the TensorRT version, the GPU's name and compute capability, the profile and this
module's build recipe (`BUILD_RECIPE`). A hit and a (re)build are both logged to stderr and to
describe().notes; an engine that no longer deserializes is rebuilt, and that is logged too.

Streams: one execution context and one non-blocking CUDA stream per stream (`DeploymentOptions.streams`),
each with its own pinned host buffers (cudaMallocHost), device buffers (cudaMalloc) and pair of events.
Stream k is only ever used by one thread at a time (the dispatcher's worker k; the compute timer's thread k).

System path, `infer(batch, k)`: copy into stream k's pinned input, H2D on its stream, set the input shape,
`execute_async_v3`, D2H of the output the harness reads, synchronise the stream, return a copy of the valid
rows: trtexec's "Host Latency" (H2D + compute + D2H) plus the host copies a deployment does.
Compute path, `compute_step(batch, k)`: the batch is copied to stream k's device input once; the step
records a CUDA event, enqueues `execute_async_v3`, records a second event on the same stream, waits for it
and returns `cudaEventElapsedTime` in seconds: trtexec's "GPU Compute Time" (the GPU time of one
execution's kernels; NVIDIA/TensorRT samples/trtexec/README.md and the developer guide's "Benchmarking
Network"). The runner runs the steps of all streams at once from threads, as the system path runs them.

Refusals, before anything runs: a device other than cuda / cuda:N; no tensorrt or cuda-python (the extra
`tensorrt`); no driver, no GPU, or an index beyond the GPUs CUDA sees (one line each, with the fix). Model
variants TensorRT cannot build are refused in `supports` with the reason (see `graph_refusal`).
This project's machines have no GPU: the GPU paths here have not been run by its test suite there.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
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
)
from sut.model_file import (
    ModelInfo,
    first_line,
    fit_batch,
    inspect_model,
    multi_input_refusal,
    once_per_file_version,
    refuse_batch,
)
from sut.precision import HeavyOp, summarize

#: environment variable naming the engine cache directory
CACHE_ENV = "MLPERF_EXT_TENSORRT_CACHE"
DEFAULT_CACHE_DIR = "~/.cache/mlperf-ext/tensorrt"
#: bump when the build settings in `_build_engine` change what an engine holds
BUILD_RECIPE = 2  # 2: BuilderFlag.TF32 cleared unless --exec-precision tf32
#: the oldest TensorRT this module is written for (the extra pins tensorrt>=11, cuda-python>=13)
MIN_TENSORRT = 11
#: the oldest CUDA a driver must support for cuda-python>=13 (the extra's pin)
MIN_CUDA_DRIVER = 13000  # as cudaDriverGetVersion encodes it: 1000 * major + 10 * minor
#: --exec-precision that lets fp32 layers run on TF32 tensor cores (TensorRT's BuilderFlag.TF32)
TF32 = "tf32"
GPU_FIX = ("fix: run on a host with an NVIDIA GPU and its driver (nvidia-smi lists the GPU), or use another "
           "backend such as --backend onnxruntime --device cpu")
_EXTRA = "tensorrt"
#: TensorRT layer parameter types that carry the arithmetic (the engine inspector's "ParameterType"), lower case
HEAVY_PARAMETER_TYPES = {"convolution", "deconvolution", "matrixmultiply", "fullyconnected", "gemm", "einsum"}
#: words in a layer's "LayerType" that name such a layer, matched case-insensitively: TensorRT 10/11 write
#: CaskConvolution, CaskDeconvolution, CaskGemmConvolution, CaskGemmMatrixMultiply, MatrixMultiply, and name
#: fused matrix-multiply layers "gemm" in lower case
_HEAVY_LAYER_WORDS = ("convolution", "gemm", "matrixmultiply", "matmul", "fullyconnected", "einsum")
#: words in a fused (Myelin) layer's name or metadata that say it holds such an op
_HEAVY_WORDS = re.compile(r"MatMul|Gemm|Conv|Einsum|FullyConnected", re.IGNORECASE)
#: datatype words of the inspector's "Format/Datatype" strings (e.g. "Row major linear FP32",
#: "Channel major FP16 format where channel % 8 == 0", "Half") -> project names; longest first
_FORMAT_WORDS = (("bfloat16", "bf16"), ("uint8", "int8"), ("int8", "int8"), ("int4", "int4"), ("fp32", "fp32"),
                 ("float", "fp32"), ("fp16", "fp16"), ("half", "fp16"), ("fp8", "fp8"), ("fp4", "fp4"),
                 ("int32", "int32"), ("int64", "int64"), ("bool", "bool"))
#: weight "Type" spellings of the inspector (trex parses "Int8", "Half", "Float", "FP16", "FP32")
_WEIGHT_TYPES = {"float": "fp32", "fp32": "fp32", "half": "fp16", "fp16": "fp16", "int8": "int8", "int4": "int4",
                 "bfloat16": "bf16", "bf16": "bf16", "fp8": "fp8", "fp4": "fp4"}
#: ONNX operator domains TensorRT's parser implements (onnx-tensorrt's operators.md lists ONNX-domain ops;
#: com.microsoft ops such as MatMulNBits are ONNX Runtime's contrib operators)
_ONNX_DOMAINS = ("", "ai.onnx")


# -- imports ----------------------------------------------------------------------------------------
def import_tensorrt():
    """The tensorrt module, or BackendUnavailable naming the extra (a missing wheel or missing libraries)."""
    try:
        import tensorrt
    except (ImportError, OSError) as exc:
        raise BackendUnavailable("tensorrt", _EXTRA, f"python module 'tensorrt': {first_line(exc)}") from None
    return check_tensorrt_version(tensorrt)


def check_tensorrt_version(trt):
    """`trt`, or BackendUnavailable for a TensorRT older than 11: the engine recipe relies on 11's always
    strongly typed networks, and no older TensorRT was ever run with this module."""
    major = str(trt.__version__).split(".")[0]
    if not major.isdigit() or int(major) < MIN_TENSORRT:
        raise BackendUnavailable("tensorrt", _EXTRA, f"TensorRT {trt.__version__} is older than {MIN_TENSORRT} "
                                 f"(the extra pins tensorrt>={MIN_TENSORRT})")
    return trt


def set_tf32(trt, config, allowed: bool) -> None:
    """TF32 off unless asked for: TensorRT enables BuilderFlag.TF32 by default, and fp32 layers on TF32 tensor
    cores would be reported as fp32 and predicted against the (far lower) fp32 peak."""
    if allowed:
        config.set_flag(trt.BuilderFlag.TF32)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)


#: TensorRT DataType member names -> numpy dtypes (our own table: trt.nptype raises TypeError for BF16/FP8)
_NUMPY_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32,
                 "INT64": np.int64, "BOOL": np.bool_}


def numpy_dtype(trt, dtype, tensor: str) -> np.dtype:
    """The numpy dtype of an engine I/O tensor, or ModelError naming the tensor and the fix (bf16, fp8, int4,
    fp4 have no numpy dtype the harness can feed)."""
    name = getattr(dtype, "name", str(dtype).rsplit(".", 1)[-1]).upper()
    if name not in _NUMPY_DTYPES:
        raise ModelError(f"engine tensor '{tensor}' is {name.lower()}, which has no numpy dtype the harness can feed "
                         f"or read; fix: export the model with fp32 or fp16 inputs and outputs")
    return np.dtype(_NUMPY_DTYPES[name])


def import_cuda_runtime():
    """cuda-python's runtime bindings, or BackendUnavailable naming the extra."""
    try:
        from cuda.bindings import runtime
    except (ImportError, OSError) as exc:
        raise BackendUnavailable("tensorrt", _EXTRA, f"cuda-python (cuda.bindings.runtime): {first_line(exc)}") \
            from None
    return runtime


# -- CUDA helpers -----------------------------------------------------------------------------------
class CudaError(RuntimeError):
    """A CUDA runtime call that failed while the backend was running (not a user's error)."""


def _error_name(rt, err) -> str:
    try:
        name = rt.cudaGetErrorName(err)[1]
        text = rt.cudaGetErrorString(err)[1]
        name = name.decode() if isinstance(name, bytes) else str(name)
        text = text.decode() if isinstance(text, bytes) else str(text)
        return f"{name}: {text}"
    except Exception:  # noqa: BLE001 - the name is a courtesy; the code is what counts
        return str(err)


def cuda_call(rt, result, call: str):
    """cuda-python returns (error, *values): raise CudaError on an error, else the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise CudaError(f"{call} failed ({_error_name(rt, err)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_version(encoded: int) -> str:
    """CUDA's version integers (1000 * major + 10 * minor) as 'major.minor'; 13040 -> '13.4'; 0 -> 'none'."""
    if not encoded:
        return "none"
    return f"{encoded // 1000}.{(encoded % 1000) // 10}"


def parse_device(device: str) -> int:
    """'cuda' -> 0, 'cuda:2' -> 2; any other device is refused (TensorRT runs on NVIDIA GPUs only)."""
    kind, sep, index = device.strip().lower().partition(":")
    if kind != "cuda":
        raise ConfigError(f"tensorrt runs on NVIDIA GPUs only, not on device '{device}'; fix: use --device cuda "
                          f"(or cuda:N), or another backend for {device}")
    if sep and not index.isdigit():
        raise ConfigError(f"device index in '{device}' is not a number; fix: use --device cuda or cuda:N (N = 0, 1, ...)")
    return int(index or 0)


@dataclass(frozen=True)
class GpuInfo:
    """The GPU a backend runs on, as CUDA reports it."""

    index: int
    name: str
    compute_capability: str  # "9.0"
    memory_bytes: int
    multiprocessors: int
    cuda_runtime: str  # cuda-python's runtime version, "13.4"
    cuda_driver: str  # the newest CUDA the driver supports, "13.0"


def probe_gpu(index: int, rt=None) -> GpuInfo:
    """The GPU `index` names, or one ConfigError line saying what is missing (driver, GPU, index)."""
    rt = rt or import_cuda_runtime()
    driver_code = int(rt.cudaDriverGetVersion()[1] or 0)
    driver = cuda_version(driver_code)
    runtime = cuda_version(int(rt.cudaRuntimeGetVersion()[1] or 0))
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0:
        reason = _error_name(rt, err)
        if driver == "none":
            raise ConfigError(f"no NVIDIA driver on this host (CUDA says {reason}); {GPU_FIX}")
        if driver_code < MIN_CUDA_DRIVER:
            needed = cuda_version(MIN_CUDA_DRIVER)
            raise ConfigError(f"this host's NVIDIA driver supports CUDA {driver}, but the tensorrt extra (cuda-python>=13, "
                              f"tensorrt>=11) needs a driver for CUDA {needed} or newer ({reason}); fix: install "
                              f"an NVIDIA driver for CUDA {needed} or newer, or use another backend")
        raise ConfigError(f"CUDA cannot use this host's GPUs ({reason}; the driver supports CUDA {driver}, cuda-python's "
                          f"runtime is {runtime}); fix: install a driver for CUDA {runtime} or newer, or "
                          f"reinstall the extra (pip install 'mlperf-ext[tensorrt]'), or use another backend")
    if not count:
        raise ConfigError(f"CUDA sees no NVIDIA GPU on this host (driver for CUDA {driver}); {GPU_FIX}")
    if not 0 <= index < count:
        raise ConfigError(f"no CUDA device {index} (this host has {count}: 0..{count - 1}); fix: use --device cuda:N "
                          f"with N in 0..{count - 1}")
    props = cuda_call(rt, rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name
    name = (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()
    return GpuInfo(index=index, name=name, compute_capability=f"{props.major}.{props.minor}",
                   memory_bytes=int(props.totalGlobalMem), multiprocessors=int(props.multiProcessorCount),
                   cuda_runtime=runtime, cuda_driver=driver)


# -- pure parts (tested without a GPU) ---------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """The optimisation profile of the single input: shapes at min / opt / max batch."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def profile_shapes(spec: TensorSpec, max_batch: int) -> Profile:
    """Min 1, opt = max = `max_batch` over the leading dimension; a fixed batch is its own profile.

    The other dimensions must be fixed: TensorRT needs them to choose kernels, and a profile over them would
    be a guess."""
    if max_batch < 1:
        raise ConfigError(f"batch must be >= 1, got {max_batch}; fix: pass --batch 1 or more")
    if not spec.shape:
        raise ModelError(f"input '{spec.name}' is a scalar; fix: export the model with a batch dimension")
    rest = spec.shape[1:]
    if any(d is None for d in rest):
        shown = "x".join("?" if d is None else str(d) for d in spec.shape)
        raise ModelError(f"input '{spec.name}' has dynamic dimensions besides the batch ({shown}); fix: export the "
                         f"model with every dimension but the first fixed")
    fixed = spec.shape[0]
    if fixed is not None:
        shape = (fixed, *rest)
        return Profile(spec.name, shape, shape, shape)
    return Profile(spec.name, (1, *rest), (max_batch, *rest), (max_batch, *rest))


def engine_key_inputs(model_sha256: str, tensorrt_version: str, gpu_name: str, compute_capability: str,
                      profile: Profile, recipe: int = BUILD_RECIPE, tf32_allowed: bool = False) -> dict:
    """Everything an engine depends on (hashed into its cache key, and written beside it)."""
    return {"model_sha256": model_sha256, "tensorrt": tensorrt_version, "gpu": gpu_name,
            "compute_capability": compute_capability, "profile": asdict(profile), "recipe": recipe,
            "tf32_allowed": tf32_allowed}


def engine_cache_key(key_inputs: dict) -> str:
    """sha256 over an engine's `engine_key_inputs`: change any input and the key changes."""
    return hashlib.sha256(json.dumps(key_inputs, sort_keys=True).encode()).hexdigest()


def cache_dir(environ=None) -> Path:
    """Where engines are kept: $MLPERF_EXT_TENSORRT_CACHE, else ~/.cache/mlperf-ext/tensorrt."""
    environ = os.environ if environ is None else environ
    return Path(environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def graph_refusal(path: Path) -> str | None:
    """Why TensorRT cannot build this ONNX graph, found without TensorRT; None when nothing is known against it.

    Sources: TensorRT's quantized types are INT8, FP8, INT4 (weight-only) and FP4, quantization is symmetric
    (docs.nvidia.com/deeplearning/tensorrt/11.0.0/inference-library/work-quantized-types.html); the ONNX parser
    asserts "Non-zero zero point is not supported" (NVIDIA/TensorRT#4698, #2774); contrib operators of other
    domains (com.microsoft.MatMulNBits) are not ONNX operators. None of these was seen failing in the real
    parser on this project's machines (no GPU): they are the documented limits, checked before a child runs.
    """
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    two_bit = {TensorProto.DataType.Value(n) for n in ("INT2", "UINT2") if n in TensorProto.DataType.keys()}
    if any(t.data_type in two_bit for t in model.graph.initializer):
        return ("TensorRT has no 2-bit type (its quantized types are INT8, FP8, INT4 weight-only and FP4), so the "
                "INT2 weights cannot be imported; fix: use onnxruntime for INT2 variants")
    foreign = sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain not in _ONNX_DOMAINS})
    if foreign:
        return (f"the graph uses {', '.join(foreign)}, which are not ONNX operators (ONNX Runtime contrib ops), so "
                f"TensorRT's ONNX parser cannot import them; fix: use onnxruntime for this variant, or export its "
                f"int4 weights as DequantizeLinear (weight-only, symmetric)")
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3 or not node.input[2]:
            continue
        zero_point = inits.get(node.input[2])
        if zero_point is not None and np.any(numpy_helper.to_array(zero_point) != 0):
            return (f"{node.op_type} '{node.name or node.output[0]}' has a non-zero zero point (asymmetric "
                    f"quantization, e.g. ONNX Runtime's QUInt8 activations); TensorRT quantizes symmetrically only; "
                    f"fix: quantize with signed int8 and symmetric activations (zero points 0) for TensorRT")
    return None


cached_graph_refusal = once_per_file_version(graph_refusal)


def format_dtype(text: str) -> str:
    """The datatype in an inspector "Format/Datatype" string ('' when none is named)."""
    low = text.lower()
    for word, name in _FORMAT_WORDS:
        if word in low:
            return name
    return ""


def _is_fused(layer: dict) -> bool:
    """A Myelin (fused) region: the inspector shows its inputs and outputs, not the types inside it."""
    return str(layer.get("LayerType", "")).lower() in ("myelin", "kgen") or "ForeignNode" in str(layer.get("Name", ""))


def _is_heavy(layer: dict) -> bool:
    """A layer that carries arithmetic; case-insensitive, since TensorRT spells the same layer "Gemm" or "gemm"."""
    if str(layer.get("ParameterType", "")).lower() in HEAVY_PARAMETER_TYPES:
        return True
    kind = str(layer.get("LayerType", "")).lower()
    return any(w in kind for w in _HEAVY_LAYER_WORDS)


def tensor_dtype(tensor: dict) -> str:
    """A layer input's datatype, from either inspector schema: TensorRT 10's one "Format/Datatype" string, or
    TensorRT 11's separate "DataType" (e.g. "Float", "Half", "Int8") and "Format" keys (docs.nvidia.com/
    deeplearning/tensorrt/11.0.0/api/migration/tensorrt-10x-to-11x-IEngineInspector.html)."""
    if not isinstance(tensor, dict):
        return ""
    for key in ("Format/Datatype", "DataType", "Datatype", "Format"):
        dtype = format_dtype(str(tensor.get(key, "")))
        if dtype:
            return dtype
    return ""


def inspect_layers(engine_json: str, tf32_allowed: bool = False) -> tuple[list[HeavyOp], dict]:
    """(heavy layers as HeavyOps, facts) from the engine inspector's JSON (LayerInformationFormat.JSON).

    The JSON holds {"Layers": [{"Name", "LayerType", "ParameterType", "Inputs": [{"Format/Datatype"}] (TensorRT 10;
    11 writes "DataType" and "Format" instead, see `tensor_dtype`),
    "Weights": {"Type"}, "TacticName", ...}], "Bindings": [...]} when the engine was built with
    ProfilingVerbosity.DETAILED; with less verbosity "Layers" holds names only (NVIDIA/TensorRT
    tools/experimental/trt-engine-explorer/trex/parser.py reads the same keys and says so). A heavy layer
    computes in the datatype of its first input (as trex takes a layer's precision). A fused Myelin region
    is counted, never guessed: its input format is that of its boundary (an FP16 model with float32 I/O
    enters its region in fp32), not of the matrix products inside it. With `tf32_allowed`, an fp32 layer on a
    TF32 tactic computed in tf32, and says so."""
    try:
        data = json.loads(engine_json)
    except json.JSONDecodeError:
        return [], {"layers": 0, "error": "the engine inspector returned no JSON"}
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    if layers and not isinstance(layers[0], dict):
        return [], {"layers": len(layers), "error": "layer names only (the engine was not built with DETAILED "
                                                   "profiling verbosity)"}
    heavy: list[HeavyOp] = []
    kinds: Counter[str] = Counter()
    precisions: Counter[str] = Counter()
    tf32 = fused = fused_heavy = 0
    for layer in layers:
        kind = str(layer.get("ParameterType") or layer.get("LayerType") or "?")
        kinds[kind] += 1
        if _is_fused(layer):
            fused += 1
            fused_heavy += bool(_HEAVY_WORDS.search(f"{layer.get('Name', '')} {layer.get('Metadata', '')}"))
            continue
        if not _is_heavy(layer):
            continue
        inputs = layer.get("Inputs") or [{}]
        compute = tensor_dtype(inputs[0])
        on_tf32 = compute == "fp32" and "tf32" in str(layer.get("TacticName", "")).lower()
        if on_tf32 and tf32_allowed:
            compute = "tf32"
        weights = layer.get("Weights")
        stored = _WEIGHT_TYPES.get(str(weights.get("Type", "")).lower()) if isinstance(weights, dict) else None
        same = stored == compute or (stored, compute) == ("fp32", "tf32")  # tf32 reads fp32 weights
        op = HeavyOp(kind, compute, None if same or not stored else stored)
        heavy.append(op)
        precisions[f"{kind} {op.words}"] += 1
        tf32 += on_tf32
    facts = {"layers": len(layers), "layer_types": dict(sorted(kinds.items())),
             "heavy_layer_precisions": dict(sorted(precisions.items())), "tf32_tactics": tf32,
             "fused_regions": fused, "fused_regions_naming_heavy_ops": fused_heavy}
    return heavy, facts


def executed_precision(heavy: list[HeavyOp], facts: dict) -> tuple[str, str]:
    """(what executed, compute dtype): the heavy layers' types, with what the inspector could not show."""
    fused = facts.get("fused_regions", 0)
    hidden = f"{fused} fused Myelin regions whose inner types the engine inspector does not show" if fused else ""
    if not any(op.compute for op in heavy):
        reason = hidden or facts.get("error") or "the engine inspector reported no compute-heavy layer"
        return f"unknown ({reason})", ""
    notes = [n for n in (f"{facts['tf32_tactics']} fp32 layers on TF32 tensor-core kernels"
                         if facts.get("tf32_tactics") else "", f"plus {hidden}" if hidden else "") if n]
    return summarize(heavy, "; ".join(notes))


# -- the backend ------------------------------------------------------------------------------------
@dataclass
class _Buffer:
    """One tensor's pinned host buffer and device buffer, both sized for the largest batch."""

    name: str
    dtype: np.dtype
    max_shape: tuple[int, ...]
    host_ptr: int = 0
    device_ptr: int = 0
    host: np.ndarray | None = None  # a numpy view of the pinned memory, shaped max_shape

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.max_shape[1:], dtype=np.int64)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.row_bytes * self.max_shape[0]


@dataclass
class _Stream:
    """What stream k owns: its execution context, CUDA stream, buffers and timing events."""

    context: object
    stream: object
    handle: int
    input: _Buffer
    outputs: list[_Buffer]
    primary: _Buffer  # the output the harness reads (the model's first)
    start: object
    end: object
    rows: int = 0  # batch rows the context's input shape is set to (0: not set yet)
    out_shapes: dict[int, tuple[int, ...]] = field(default_factory=dict)  # rows -> primary output shape


class TensorRtBackend:
    """One ONNX model built into a TensorRT engine, with one execution context and CUDA stream per stream."""

    name = "tensorrt"
    extra = _EXTRA
    runtime_module = "tensorrt"
    runtime_packages = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "cuda-python", "cuda-bindings")
    # TensorRT 11 takes every type from the model (strongly typed); tf32 only lets fp32 layers use TF32
    exec_precisions = (MODEL_PRECISION, TF32)
    runtime_option_values: dict[str, tuple] = {}

    def __init__(self) -> None:
        self._trt = None
        self._rt = None
        self._engine = None
        self._runtime = None
        self._streams: list[_Stream] = []
        self._info: ModelInfo | None = None
        self._options: DeploymentOptions | None = None
        self._gpu: GpuInfo | None = None
        self._profile: Profile | None = None
        self._primary = ""
        self._cache: dict = {}
        self._notes: list[str] = []
        self._precision = ("", "")
        self._layer_facts: dict = {}
        self._allocated: list[_Buffer] = []
        self._thread = threading.local()

    @property
    def _tf32_allowed(self) -> bool:
        return self._options is not None and self._options.exec_precision == TF32

    # -- facts ---------------------------------------------------------------------------------
    @staticmethod
    def check_device(device: str) -> None:
        """Refuse, before anything runs: a device that is no CUDA GPU, missing cuda-python, no driver, no GPU,
        an index out of range, then a missing tensorrt wheel."""
        index = parse_device(device)
        rt = import_cuda_runtime()
        probe_gpu(index, rt)
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailable("tensorrt", _EXTRA, "python module 'tensorrt' not found")

    @classmethod
    def supports(cls, model: ModelInfo, options: DeploymentOptions) -> str | None:
        check_runtime_options(cls, options.runtime_options)
        reason = check_exec_precision(cls, options) or multi_input_refusal(cls.name, model)
        if reason:
            return reason
        reason = cached_graph_refusal(model.path)
        return f"tensorrt cannot build {model.path.name}: {reason}" if reason else None

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        index = parse_device(options.device)
        trt = import_tensorrt()
        rt = import_cuda_runtime()
        info = inspect_model(model_path)
        refuse_batch(info, options.max_batch)
        reason = check_exec_precision(type(self), options)
        if reason:
            raise ConfigError(reason)
        check_runtime_options(type(self), options.runtime_options)
        refusal = cached_graph_refusal(info.path)
        if refusal:
            raise UnsupportedVariant(f"tensorrt cannot build {info.path}: {refusal}")
        gpu = probe_gpu(index, rt)
        cuda_call(rt, rt.cudaSetDevice(index), "cudaSetDevice")
        self._thread.device = index
        profile = profile_shapes(info.input, options.max_batch)
        self._trt, self._rt, self._info, self._options, self._gpu, self._profile = trt, rt, info, options, gpu, profile
        self._primary = info.output_names[0]
        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(logger)
        try:
            self._engine = self._cached_engine(logger)
            self._streams = [self._make_stream() for _ in range(options.streams)]
            self._precision, self._layer_facts = self._read_precision()
        except BaseException:
            self.close()
            raise

    def _cached_engine(self, logger):
        """Deserialize the cached engine for this key, or build (and cache) it; both are logged."""
        from mlperf_ext.config import file_sha256

        assert self._info is not None and self._gpu is not None and self._profile is not None
        trt = self._trt
        key_inputs = engine_key_inputs(file_sha256(self._info.path), trt.__version__, self._gpu.name,
                                       self._gpu.compute_capability, self._profile, tf32_allowed=self._tf32_allowed)
        key = engine_cache_key(key_inputs)
        directory = cache_dir()
        plan, sidecar = directory / f"{key}.engine", directory / f"{key}.json"
        self._cache = {"dir": str(directory), "key": key, "hit": False}
        if plan.is_file():
            engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
            if engine is not None:
                meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
                self._cache.update(hit=True, build=meta.get("build", {}))
                self._log(f"engine cache hit: {plan} (built {meta.get('built_at', 'at an unknown time')})")
                return engine
            self._log(f"cached engine {plan} did not deserialize with TensorRT {trt.__version__}; rebuilding it")
        else:
            self._log(f"no cached engine for key {key[:16]}... in {directory}; building it")
        start = time.perf_counter()
        data, build = self._build_engine(logger)
        build["seconds"] = round(time.perf_counter() - start, 2)
        self._cache["build"] = build
        directory.mkdir(parents=True, exist_ok=True)
        for path, content in ((plan, data), (sidecar, json.dumps({
                "model": str(self._info.path), "key_inputs": key_inputs,
                "build": build, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1).encode())):
            tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
        self._log(f"built engine in {build['seconds']} s and cached it: {plan}")
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise ModelError(f"TensorRT {trt.__version__} built an engine for {self._info.path} that it cannot "
                             f"deserialize; fix: see the TensorRT log above, and delete {plan}")
        return engine

    def _build_engine(self, logger) -> tuple[bytes, dict]:
        trt = self._trt
        assert self._info is not None and self._profile is not None
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # TensorRT 11 is always strongly typed
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(self._info.path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            first = first_line(RuntimeError(errors[0])) if errors else "no error reported"
            raise UnsupportedVariant(f"TensorRT {trt.__version__}'s ONNX parser cannot import {self._info.path} "
                                     f"({len(errors)} errors; first: {first}); fix: use onnxruntime for this model, "
                                     f"or export it with operators and types TensorRT supports")
        config = builder.create_builder_config()
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector then reports every layer
        set_tf32(trt, config, self._tf32_allowed)
        p = self._profile
        profile = builder.create_optimization_profile()
        profile.set_shape(p.input, p.min, p.opt, p.max)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelError(f"TensorRT {trt.__version__} could not build an engine for {self._info.path} at batch "
                             f"{p.max[0]}; fix: see the TensorRT log above (a smaller --batch needs less memory)")
        return bytes(serialized), {"tf32_allowed": bool(config.get_flag(trt.BuilderFlag.TF32)),
                                   "profiling_verbosity": "DETAILED", "strongly_typed": True}

    def _make_stream(self) -> _Stream:
        trt, rt, engine = self._trt, self._rt, self._engine
        assert self._profile is not None
        context = engine.create_execution_context()
        if context is None:
            raise ModelError("TensorRT could not create an execution context (out of GPU memory?); fix: use fewer "
                             "--streams or a smaller --batch")
        stream = cuda_call(rt, rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [self._profile.input]:
            raise ModelError(f"the engine's inputs are {inputs}, not ['{self._profile.input}']; fix: export the model "
                             f"with one input")
        if not context.set_input_shape(self._profile.input, self._profile.max):
            raise ModelError(f"TensorRT refused input shape {self._profile.max}; fix: check the model's input")
        buffers = []
        for name in [inputs[0]] + [n for n in names if n not in inputs]:
            shape = tuple(int(d) for d in context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ModelError(f"TensorRT cannot size output '{name}' ({shape}) from the input shape; fix: export "
                                 f"the model with output shapes that follow from the input")
            buffers.append(self._allocate(name, numpy_dtype(trt, engine.get_tensor_dtype(name), name), shape))
            if not context.set_tensor_address(name, buffers[-1].device_ptr):
                raise ModelError(f"TensorRT refused the device address of tensor '{name}'")
        start = cuda_call(rt, rt.cudaEventCreate(), "cudaEventCreate")
        end = cuda_call(rt, rt.cudaEventCreate(), "cudaEventCreate")
        primary = [b for b in buffers[1:] if b.name == self._primary]
        if not primary:
            raise ModelError(f"the engine has no output '{self._primary}'; fix: re-export the model")
        return _Stream(context=context, stream=stream, handle=int(stream), input=buffers[0], outputs=buffers[1:],
                       primary=primary[0], start=start, end=end, rows=self._profile.max[0])

    def _allocate(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> _Buffer:
        rt = self._rt
        buf = _Buffer(name, dtype, shape)
        size = max(buf.nbytes, 1)
        buf.host_ptr = int(cuda_call(rt, rt.cudaMallocHost(size), "cudaMallocHost"))
        buf.device_ptr = int(cuda_call(rt, rt.cudaMalloc(size), "cudaMalloc"))
        raw = (ctypes.c_byte * size).from_address(buf.host_ptr)
        buf.host = np.frombuffer(raw, dtype=np.uint8, count=buf.nbytes).view(dtype).reshape(shape)
        self._allocated.append(buf)
        return buf

    def _read_precision(self) -> tuple[tuple[str, str], dict]:
        """What executed, from the engine inspector (stream 0's context: its shapes are concrete)."""
        trt = self._trt
        assert self._info is not None
        inspector = self._engine.create_engine_inspector()
        inspector.execution_context = self._streams[0].context
        heavy, facts = inspect_layers(inspector.get_engine_information(trt.LayerInformationFormat.JSON),
                                      tf32_allowed=self._tf32_allowed)
        return executed_precision(heavy, facts), facts

    def _log(self, message: str) -> None:
        self._notes.append(f"tensorrt: {message}")
        print(f"tensorrt: {message}", file=sys.stderr, flush=True)

    def _require(self) -> list[_Stream]:
        if not self._streams:
            raise RuntimeError("TensorRtBackend used before load()")
        return self._streams

    def _bind_thread(self) -> None:
        """CUDA's current device is per host thread: set it once in every thread that runs a stream."""
        assert self._gpu is not None
        if getattr(self._thread, "device", None) != self._gpu.index:
            cuda_call(self._rt, self._rt.cudaSetDevice(self._gpu.index), "cudaSetDevice")
            self._thread.device = self._gpu.index

    def _set_rows(self, slot: _Stream, rows: int) -> None:
        assert self._profile is not None
        if slot.rows == rows:
            return
        if not slot.context.set_input_shape(self._profile.input, (rows, *self._profile.max[1:])):
            raise ModelError(f"TensorRT refused batch {rows} (profile {self._profile.min[0]}..{self._profile.max[0]}); "
                             f"fix: keep batches within --batch")
        slot.rows = rows

    def _output_shape(self, slot: _Stream, rows: int) -> tuple[int, ...]:
        shape = slot.out_shapes.get(rows)
        if shape is None:
            shape = tuple(int(d) for d in slot.context.get_tensor_shape(self._primary))
            slot.out_shapes[rows] = shape
        return shape

    def _staged(self, slot: _Stream, batch: np.ndarray) -> int:
        """Copy `batch` into the stream's pinned input buffer; returns its rows."""
        assert self._info is not None
        rows = batch.shape[0]
        if rows > slot.input.max_shape[0]:
            raise ModelError(f"batch of {rows} exceeds the engine's largest batch {slot.input.max_shape[0]}; fix: "
                             f"use --batch {rows} or more")
        slot.input.host[:rows] = batch
        return rows

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> BackendDescription:
        streams = self._require()
        assert self._options is not None and self._info is not None and self._gpu is not None
        gpu, build = self._gpu, self._cache.get("build", {})
        settings = {
            "gpu": gpu.name, "gpu_index": gpu.index, "compute_capability": gpu.compute_capability,
            "gpu_memory_gib": round(gpu.memory_bytes / 2**30, 1), "multiprocessors": gpu.multiprocessors,
            "tensorrt": self._trt.__version__, "cuda_runtime": gpu.cuda_runtime, "cuda_driver": gpu.cuda_driver,
            "streams": self._options.streams, "execution_contexts": len(streams),
            "profile": asdict(self._profile) if self._profile else {},
            "engine_cache": {"dir": self._cache.get("dir"), "key": self._cache.get("key"),
                             "hit": self._cache.get("hit")},
            "strongly_typed": True, "tf32_allowed": build.get("tf32_allowed"),
            "profiling_verbosity": build.get("profiling_verbosity", "DETAILED"),
            "model_float_precision": self._info.float_precision,
            "model_weight_types": list(self._info.weight_types),
            "engine_layers": self._layer_facts,
            "compute_boundary": "CUDA events around execute_async_v3 on resident device buffers (GPU compute time)",
            "system_path": "pinned host copy, H2D, execute_async_v3, D2H, stream synchronize",
        }
        notes = list(self._notes)
        if self._options.threads is not None:
            notes.append(f"threads={self._options.threads} was not given to TensorRT (it has no intra-op thread "
                         f"setting); each stream runs on its own host thread")
        if build.get("tf32_allowed"):
            notes.append("TensorRT may run fp32 layers on TF32 tensor cores (--exec-precision tf32 set BuilderFlag.TF32)")
        text, dtype = self._precision
        return BackendDescription(runtime="tensorrt", version=self._trt.__version__, device=f"cuda:{gpu.index}",
                                  providers=[f"TensorRT on {gpu.name}"], settings=settings, precision=text,
                                  compute_dtype=dtype, notes=notes)

    def input_spec(self) -> TensorSpec:
        self._require()
        assert self._info is not None
        return self._info.input

    # -- system path ---------------------------------------------------------------------------
    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        slot = self._require()[stream]
        assert self._info is not None
        self._bind_thread()
        rt = self._rt
        run_batch, keep = fit_batch(batch, self._info)
        rows = self._staged(slot, run_batch)
        cuda_call(rt, rt.cudaMemcpyAsync(slot.input.device_ptr, slot.input.host_ptr, rows * slot.input.row_bytes,
                                         rt.cudaMemcpyKind.cudaMemcpyHostToDevice, slot.stream), "cudaMemcpyAsync H2D")
        self._set_rows(slot, rows)
        if not slot.context.execute_async_v3(slot.handle):
            raise CudaError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        out = slot.primary
        shape = self._output_shape(slot, rows)
        nbytes = int(np.prod(shape, dtype=np.int64)) * out.dtype.itemsize
        cuda_call(rt, rt.cudaMemcpyAsync(out.host_ptr, out.device_ptr, nbytes,
                                         rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, slot.stream), "cudaMemcpyAsync D2H")
        cuda_call(rt, rt.cudaStreamSynchronize(slot.stream), "cudaStreamSynchronize")
        flat = out.host.reshape(-1)[: int(np.prod(shape, dtype=np.int64))]
        return flat.reshape(shape)[:keep].copy()  # the pinned buffer is reused by the next batch

    # -- compute path --------------------------------------------------------------------------
    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        slot = self._require()[stream]
        assert self._info is not None
        self._bind_thread()
        rt = self._rt
        run_batch, _ = fit_batch(batch, self._info)
        rows = self._staged(slot, np.ascontiguousarray(run_batch))
        cuda_call(rt, rt.cudaMemcpyAsync(slot.input.device_ptr, slot.input.host_ptr, rows * slot.input.row_bytes,
                                         rt.cudaMemcpyKind.cudaMemcpyHostToDevice, slot.stream), "cudaMemcpyAsync H2D")
        cuda_call(rt, rt.cudaStreamSynchronize(slot.stream), "cudaStreamSynchronize")
        self._set_rows(slot, rows)
        handle, start, end = slot.handle, slot.start, slot.end
        record, wait, elapsed = rt.cudaEventRecord, rt.cudaEventSynchronize, rt.cudaEventElapsedTime
        cuda_stream, bind = slot.stream, self._bind_thread

        def step() -> float:
            bind()
            if slot.rows != rows:  # the system path ran another batch size on this context meanwhile
                self._set_rows(slot, rows)
            cuda_call(rt, record(start, cuda_stream), "cudaEventRecord")
            # slot.context, not a captured copy: close() drops it before the engine, as TensorRT requires
            if not slot.context.execute_async_v3(handle):
                raise CudaError("TensorRT execute_async_v3 failed (see the TensorRT log)")
            cuda_call(rt, record(end, cuda_stream), "cudaEventRecord")
            cuda_call(rt, wait(end), "cudaEventSynchronize")
            return float(cuda_call(rt, elapsed(start, end), "cudaEventElapsedTime")) * 1e-3

        step()  # warm-up: the first execution of a shape pays TensorRT's one-off setup
        step.keep_alive = slot
        return step

    def close(self) -> None:
        """Contexts go before the engine, the engine before the runtime; CUDA objects are freed last."""
        rt = self._rt
        for slot in self._streams:
            if rt is not None:
                rt.cudaStreamSynchronize(slot.stream)
            slot.context = None
        self._streams, streams = [], self._streams
        self._engine = None
        self._runtime = None
        if rt is None:
            return
        for slot in streams:
            rt.cudaEventDestroy(slot.start)
            rt.cudaEventDestroy(slot.end)
            rt.cudaStreamDestroy(slot.stream)
        for buf in self._allocated:
            buf.host = None
            rt.cudaFreeHost(buf.host_ptr)
            rt.cudaFree(buf.device_ptr)
        self._allocated = []
