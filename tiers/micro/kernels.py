"""Kernel sweeps: GEMM and convolution at standard shapes, in every precision a backend runs.

Why: DeepBench's precedent (github.com/baidu-research/DeepBench, "benchmark operations that are
important to deep learning on different hardware platforms"): the kernels below a model, at a
documented list of shapes, timed through the libraries a deployment uses. Here each kernel is a
one-node ONNX model (``MatMul``, ``Conv``; the int8 and int4 kernels in their ONNX formulations) run
through the project's own backends (``sut.onnxruntime``, ``sut.openvino``), so a kernel is timed at
the same boundary as a whole model: ``compute_step`` (ORT ``run_with_iobinding`` with input and outputs
bound; OpenVINO's infer request with its input tensor preset). The level-0 host ceilings take their
GEMM peaks from this sweep (``tiers.level0.host_ceilings.measure``).

Shapes (``GEMM_*``, ``CONV_*``) come from DeepBench's inference sets, ``code/kernels/gemm_problems.h``
and ``code/kernels/conv_problems.h`` (``inference_server_set``, ``inference_device_set``):

* GEMM ``(M, N, K)``: DeepBench's C(M×N) = A(M×K)·B(K×N), N being the batch (or time steps × batch).
  Here the weights are the constant operand: ``Y[N, M] = X[N, K] · W[K, M]``, X the model's input.
  MACs = M·N·K.
* Convolution ``(W, H, C, N, K, S, R, pad_w, pad_h, stride_w, stride_h)`` in DeepBench's tuple order
  (S = filter width, R = filter height), NCHW, no bias. MACs = N·K·H_out·W_out·C·R·S.

The default lists run in about a minute on 2 cores; ``--full`` adds DeepBench's whole
``inference_device_set`` (the server set's largest shapes, K = 500000 or M·N·K > 10^11, would take
hours on a CPU).

Precisions and formulations (``FORMS``): fp32 ``MatMul``/``Conv``; fp16 and bf16 as that model
datatype (ONNX Runtime, which has no switch for the precision a graph runs in) or as OpenVINO's
``INFERENCE_PRECISION_HINT`` on the fp32 model; int8 as static QDQ (QuantizeLinear/DequantizeLinear
around the kernel and its output, per-tensor scales: the form ``quantize_static`` writes) on both, and
``MatMulInteger`` (u8 × s8 → s32) on ONNX Runtime; int4 as ``com.microsoft.MatMulNBits`` (bits 4,
block 32, accuracy_level 4: ORT's int8-compute path) on both (OpenVINO's ONNX frontend reads it).

Honesty: what executed is read back from the runtime (``describe()``: ORT's profiler kernels,
OpenVINO's runtime model), never taken from the label. A kernel is a ceiling for the precision asked
only when the runtime executed exactly that precision; otherwise its row keeps the measured time under
what executed, and the reason, and ``ceilings`` never offers it for the precision asked. Achieved
TOP/s = 2 × MACs / seconds / 10^12, seconds being the median of a timed loop after a warm-up; a kernel's
ceiling is its fastest execution (``best_tops``), as STREAM reports its best time: a ceiling is what the
host can do, and every slower execution is the host doing something else too.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.errors import BackendUnavailable, ConfigError, MlperfExtError

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")
RUNTIMES = ("onnxruntime", "openvino")
KINDS = ("gemm", "conv")
OPSET = 17  # QuantizeLinear/DequantizeLinear/MatMul/Conv as every runtime here reads them
IR_VERSION = 8  # opset 17 pairs with IR 8 (as the zoo's GraphBuilder writes)
BF16_OPSET, BF16_IR_VERSION = 22, 10  # Conv takes bfloat16 from opset 22 on (onnx/docs/Changelog.md, Conv-22)
NBITS_BLOCK = 32  # MatMulNBits block size (ORT's default for its int4 quantizer)
NBITS_ACCURACY_LEVEL = 4  # ORT contrib-op spec: 4 = int8 compute on the int4 weights
DEEPBENCH = "github.com/baidu-research/DeepBench code/kernels"


@dataclass(frozen=True)
class GemmShape:
    """One DeepBench GEMM: M outputs, N rows of the batch, K the reduction (Y[N, M] = X[N, K] · W[K, M])."""

    m: int
    n: int
    k: int
    source: str = ""  # the DeepBench set it comes from

    kind = "gemm"

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    @property
    def batch(self) -> int:
        return self.n

    @property
    def label(self) -> str:
        return f"M={self.m} N={self.n} K={self.k}"

    @property
    def slug(self) -> str:
        return f"gemm_m{self.m}_n{self.n}_k{self.k}"

    def dims(self) -> dict:
        return {"m": self.m, "n": self.n, "k": self.k}


@dataclass(frozen=True)
class ConvShape:
    """One DeepBench convolution, fields in DeepBench's tuple order (S = filter width, R = height)."""

    w: int
    h: int
    c: int
    n: int
    k: int
    s: int
    r: int
    pad_w: int
    pad_h: int
    stride_w: int
    stride_h: int
    source: str = ""

    kind = "conv"

    @property
    def out_h(self) -> int:
        return (self.h + 2 * self.pad_h - self.r) // self.stride_h + 1

    @property
    def out_w(self) -> int:
        return (self.w + 2 * self.pad_w - self.s) // self.stride_w + 1

    @property
    def macs(self) -> int:
        return self.n * self.k * self.out_h * self.out_w * self.c * self.r * self.s

    @property
    def batch(self) -> int:
        return self.n

    @property
    def label(self) -> str:
        return (f"{self.w}x{self.h}x{self.c} N={self.n} K={self.k} {self.s}x{self.r} "
                f"pad {self.pad_w},{self.pad_h} stride {self.stride_w},{self.stride_h}")

    @property
    def slug(self) -> str:
        return (f"conv_w{self.w}_h{self.h}_c{self.c}_n{self.n}_k{self.k}_s{self.s}_r{self.r}"
                f"_p{self.pad_w}x{self.pad_h}_st{self.stride_w}x{self.stride_h}")

    def dims(self) -> dict:
        return {f: getattr(self, f) for f in ("w", "h", "c", "n", "k", "s", "r", "pad_w", "pad_h", "stride_w",
                                              "stride_h")}


Shape = GemmShape | ConvShape

_SERVER = f"DeepBench inference_server_set ({DEEPBENCH})"
_DEVICE = f"DeepBench inference_device_set ({DEEPBENCH})"

_CEILING = "mlperf-ext ceiling shape"
#: `platforms detect --quick`: the GEMMs at which a CPU's kernel libraries come closest to the arithmetic
#: peak (milliseconds per run on 2 cores): operands resident in L2 (512^3), DeepBench's compute-bound
#: 1024x700x512, and the zoo MLP's 2048-wide layer at batch 256. On a 2-core EPYC (AVX-512) each precision's
#: best was one of these, up to 10 % above DeepBench's larger GEMMs (docs/level0.md).
GEMM_QUICK = (GemmShape(512, 512, 512, f"{_CEILING}: operands resident in L2"), GemmShape(1024, 700, 512, _SERVER),
              GemmShape(2048, 256, 2048, f"{_CEILING}: the zoo MLP's 2048-wide layer at batch 256"))
#: `platforms detect`'s convolutions: the zoo ResNet-50's two deepest 3x3 convolutions at batch 4 (the deployment
#: the ceilings test runs it at). A convolution is a kernel a CNN executes as much as a GEMM is: in one
#: `detect --quick` on a 2-core EPYC (2026-12-07) the 7x7x512 one ran 8 % above every quick GEMM in fp32 and 6 %
#: in bf16, so ceilings from GEMMs alone were not the host's best (CI saw ResNet-50 bf16 above them).
CONV_QUICK = (ConvShape(14, 14, 256, 4, 256, 3, 3, 1, 1, 1, 1, f"{_CEILING}: ResNet-50's 14x14 3x3 at batch 4"),
              ConvShape(7, 7, 512, 4, 512, 3, 3, 1, 1, 1, 1, f"{_CEILING}: ResNet-50's 7x7 3x3 at batch 4"))
#: default GEMMs: compute-bound (the first two), a GEMV at batch 1 and a 4-row GEMM on 79 MB of fp32 weights
GEMM_DEFAULT = (
    GemmShape(1024, 700, 512, _SERVER),
    GemmShape(3072, 1500, 1024, _DEVICE),
    GemmShape(3072, 1, 1024, _DEVICE),
    GemmShape(7680, 4, 2560, _SERVER),
)
#: default convolutions at batch 1: ResNet-50's 3x3, 1x1 and 7x7 stem; a GoogLeNet 1x1 on 7x7 maps
CONV_DEFAULT = (
    ConvShape(56, 56, 64, 1, 64, 3, 3, 1, 1, 1, 1, _SERVER),
    ConvShape(28, 28, 128, 1, 512, 1, 1, 0, 0, 1, 1, _DEVICE),
    ConvShape(224, 224, 3, 1, 64, 7, 7, 3, 3, 2, 2, _SERVER),
    ConvShape(7, 7, 832, 1, 256, 1, 1, 0, 0, 1, 1, _SERVER),
)
#: DeepBench's whole inference_device_set for GEMM (13 shapes)
GEMM_DEVICE_SET = tuple(GemmShape(m, n, k, _DEVICE) for m, n, k in (
    (5124, 700, 2048), (35, 700, 2048), (3072, 1, 1024), (64, 1, 1216), (3072, 1500, 1024), (128, 1500, 1280),
    (3072, 1500, 128), (128, 1, 1024), (3072, 1, 128), (176, 1500, 1408), (4224, 1500, 176), (128, 1, 1408),
    (4224, 1, 128)))
#: DeepBench's whole inference_device_set for convolution (15 shapes; it comments out (7,7,512,1,512,3,3,...))
CONV_DEVICE_SET = tuple(ConvShape(*t, _DEVICE) for t in (
    (151, 40, 1, 1, 32, 20, 5, 8, 8, 8, 2), (112, 112, 64, 1, 64, 1, 1, 0, 0, 1, 1),
    (56, 56, 64, 1, 256, 1, 1, 0, 0, 1, 1), (56, 56, 256, 1, 64, 1, 1, 0, 0, 1, 1),
    (56, 56, 256, 1, 128, 1, 1, 0, 0, 2, 2), (28, 28, 128, 1, 512, 1, 1, 0, 0, 1, 1),
    (28, 28, 512, 1, 128, 1, 1, 0, 0, 1, 1), (28, 28, 512, 1, 256, 1, 1, 0, 0, 2, 2),
    (14, 14, 256, 1, 1024, 1, 1, 0, 0, 1, 1), (28, 28, 512, 1, 1024, 1, 1, 0, 0, 2, 2),
    (14, 14, 1024, 1, 256, 1, 1, 0, 0, 1, 1), (14, 14, 1024, 1, 512, 1, 1, 0, 0, 2, 2),
    (7, 7, 512, 1, 2048, 1, 1, 0, 0, 1, 1), (14, 14, 1024, 1, 2048, 1, 1, 0, 0, 2, 2),
    (7, 7, 2048, 1, 512, 1, 1, 0, 0, 1, 1)))


def _union(*lists: Iterable[Shape]) -> tuple[Shape, ...]:
    """Shapes in order of first appearance, each once (the same dims from two sets count once)."""
    seen: dict[str, Shape] = {}
    for shapes in lists:
        for s in shapes:
            seen.setdefault(s.slug, s)
    return tuple(seen.values())


GEMM_FULL = _union(GEMM_DEFAULT, GEMM_DEVICE_SET)
CONV_FULL = _union(CONV_DEFAULT, CONV_DEVICE_SET)


def default_shapes(full: bool = False) -> tuple[Shape, ...]:
    return (GEMM_FULL + CONV_FULL) if full else (GEMM_DEFAULT + CONV_DEFAULT)


# ---- formulations ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    """How one (runtime, kind, precision) is asked for: the model built and the backend's exec_precision."""

    name: str  # what the table shows, e.g. "QDQ MatMul"
    model: str  # builder key: fp32 | fp16 | bf16 (float models), qdq, integer, nbits
    exec_precision: str = "model"  # sut.base.DeploymentOptions.exec_precision


_F32 = {"gemm": "MatMul", "conv": "Conv"}


def _float_forms(kind: str, runtime: str, precision: str) -> tuple[Form, ...]:
    op = _F32[kind]
    if runtime == "openvino":  # the hint on the fp32 model: OpenVINO's way to ask for a precision
        return (Form(f"{op} + INFERENCE_PRECISION_HINT {precision}", "fp32", precision),)
    return (Form(op if precision == "fp32" else f"{op} {precision} model", precision),)


def forms(runtime: str, kind: str, precision: str) -> tuple[tuple[Form, ...], str]:
    """(formulations to time, reason when there are none) for one runtime, kernel kind and precision."""
    if precision in ("fp32", "fp16", "bf16"):
        return _float_forms(kind, runtime, precision), ""
    if precision == "int8":
        qdq = Form(f"QDQ {_F32[kind]}", "qdq")
        if runtime == "onnxruntime" and kind == "gemm":
            return (qdq, Form("MatMulInteger", "integer")), ""
        return (qdq,), ""
    if precision == "int4":
        if kind == "gemm":
            return (Form(f"MatMulNBits bits=4 accuracy_level={NBITS_ACCURACY_LEVEL}", "nbits"),), ""
        return (), ("no int4 convolution is swept: the one sub-byte kernel here is com.microsoft.MatMulNBits, "
                    "a GEMM")
    raise ConfigError(f"unknown kernel precision '{precision}'; fix: use any of {', '.join(PRECISIONS)}")


# ---- models ----------------------------------------------------------------------------------------
_ELEM = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}


def _np_float(precision: str):
    if precision == "bf16":
        import ml_dtypes  # an onnx dependency: numpy has no bfloat16

        return ml_dtypes.bfloat16
    return {"fp32": np.float32, "fp16": np.float16}[precision]


def _io(shape: Shape) -> tuple[list[int], list[int], list[int]]:
    """(input dims, weight dims, output dims) of the kernel."""
    if isinstance(shape, GemmShape):
        return [shape.n, shape.k], [shape.k, shape.m], [shape.n, shape.m]
    return ([shape.n, shape.c, shape.h, shape.w], [shape.k, shape.c, shape.r, shape.s],
            [shape.n, shape.k, shape.out_h, shape.out_w])


def _kernel_node(shape: Shape, x: str, w: str, y: str) -> onnx.NodeProto:
    if isinstance(shape, GemmShape):
        return helper.make_node("MatMul", [x, w], [y], name="kernel")
    return helper.make_node("Conv", [x, w], [y], name="kernel", kernel_shape=[shape.r, shape.s],
                            pads=[shape.pad_h, shape.pad_w, shape.pad_h, shape.pad_w],
                            strides=[shape.stride_h, shape.stride_w])


def _fan_in(shape: Shape) -> int:
    return shape.k if isinstance(shape, GemmShape) else shape.c * shape.r * shape.s


def _scalar(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def build_model(shape: Shape, model: str, seed: int = 0) -> onnx.ModelProto:
    """The kernel as a fully checked one-input ONNX model with constant weights (``model``: a Form's builder
    key).

    Weights are seeded draws scaled by 1/sqrt(fan-in), so outputs stay near unit size (no fp16 overflow);
    int8 scales are per tensor: input 4/127 around zero point 128 (u8), weights 1/127 (s8, zero point 0).
    """
    rng = np.random.default_rng(seed)
    xd, wd, yd = _io(shape)
    fan = _fan_in(shape)
    domains = [helper.make_opsetid("", BF16_OPSET if model == "bf16" else OPSET)]
    if model in ("fp32", "fp16", "bf16"):
        w = (rng.standard_normal(wd, dtype=np.float32) / np.float32(math.sqrt(fan))).astype(_np_float(model))
        nodes, inits = [_kernel_node(shape, "X", "W", "Y")], [numpy_helper.from_array(w, "W")]
        x_t = y_t = _ELEM[model]
    elif model == "qdq":
        y_scale = 4 / math.sqrt(3) / 127  # weights uniform in ±1/sqrt(fan), inputs N(0, 1): y has sd 1/sqrt(3)
        inits = [_scalar("x_scale", 4 / 127, np.float32), _scalar("x_zero", 128, np.uint8),
                 _scalar("w_scale", 1 / 127 / math.sqrt(fan), np.float32), _scalar("w_zero", 0, np.int8),
                 _scalar("y_scale", y_scale, np.float32), _scalar("y_zero", 128, np.uint8),
                 numpy_helper.from_array(rng.integers(-127, 128, wd, dtype=np.int8), "W_q")]
        nodes = [helper.make_node("QuantizeLinear", ["X", "x_scale", "x_zero"], ["X_q"]),
                 helper.make_node("DequantizeLinear", ["X_q", "x_scale", "x_zero"], ["X_dq"]),
                 helper.make_node("DequantizeLinear", ["W_q", "w_scale", "w_zero"], ["W_dq"]),
                 _kernel_node(shape, "X_dq", "W_dq", "Y_f"),
                 helper.make_node("QuantizeLinear", ["Y_f", "y_scale", "y_zero"], ["Y_q"]),
                 helper.make_node("DequantizeLinear", ["Y_q", "y_scale", "y_zero"], ["Y"])]
        x_t = y_t = TensorProto.FLOAT
    elif model == "integer":
        if not isinstance(shape, GemmShape):
            raise ConfigError("MatMulInteger is a GEMM formulation; fix: use the QDQ form for convolutions")
        nodes = [helper.make_node("MatMulInteger", ["X", "W"], ["Y"], name="kernel")]
        inits = [numpy_helper.from_array(rng.integers(-127, 128, wd, dtype=np.int8), "W")]
        x_t, y_t = TensorProto.UINT8, TensorProto.INT32
    elif model == "nbits":
        if not isinstance(shape, GemmShape):
            raise ConfigError("MatMulNBits is a GEMM kernel; fix: sweep int4 on GEMM shapes only")
        blocks = -(-shape.k // NBITS_BLOCK)
        packed = rng.integers(0, 256, (shape.m, blocks, NBITS_BLOCK // 2), dtype=np.uint8)  # two 4-bit codes a byte
        scales = np.full(shape.m * blocks, 1 / 8 / math.sqrt(fan), dtype=np.float32)  # codes 0..15 around 8
        nodes = [helper.make_node("MatMulNBits", ["X", "B", "scales"], ["Y"], name="kernel", domain="com.microsoft",
                                  K=shape.k, N=shape.m, bits=4, block_size=NBITS_BLOCK,
                                  accuracy_level=NBITS_ACCURACY_LEVEL)]
        inits = [numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales, "scales")]
        x_t = y_t = TensorProto.FLOAT
        domains.append(helper.make_opsetid("com.microsoft", 1))
    else:
        raise ConfigError(f"unknown kernel model '{model}'; fix: use fp32, fp16, bf16, qdq, integer or nbits")
    graph = helper.make_graph(nodes, shape.slug, [helper.make_tensor_value_info("X", x_t, xd)],
                              [helper.make_tensor_value_info("Y", y_t, yd)], inits)
    m = helper.make_model(graph, opset_imports=domains, producer_name="mlperf-ext kernels")
    m.ir_version = BF16_IR_VERSION if model == "bf16" else IR_VERSION
    onnx.checker.check_model(m, full_check=True)  # types and shapes too: the model is valid ONNX, not just parseable
    return m


def kernel_input(model: onnx.ModelProto, seed: int = 0) -> np.ndarray:
    """A seeded synthetic input for the kernel model (tiers.micro.inputs: N(0,1) floats, full-range u8)."""
    from tiers.micro.inputs import synthetic_inputs
    from tiers.micro.source import tensor_spec

    spec = tensor_spec(model.graph.input[0])
    return synthetic_inputs([spec], batch=spec.shape[0], seed=seed)[spec.name]


# ---- results ---------------------------------------------------------------------------------------
def achieved_tops(macs: int, seconds: float) -> float:
    """2 ops per MAC over the seconds of one execution, in TOP/s."""
    return 2 * macs / seconds / 1e12


@dataclass
class KernelResult:
    """One kernel at one shape, precision and formulation on one runtime."""

    kind: str  # gemm | conv
    shape: str  # the shape's label
    dims: dict
    source: str
    runtime: str
    precision: str  # asked
    form: str  # formulation (Form.name)
    macs: int
    threads: int = 0  # intra-op threads over all streams
    streams: int = 1  # concurrent executions (each with its share of the threads)
    executed: str = ""  # what ran, read back (describe().precision)
    compute_dtype: str = ""  # the datatype the heavy op ran in (describe().compute_dtype)
    seconds: float | None = None  # median seconds of one execution
    runs: int = 0
    tops: float | None = None  # achieved TOP/s of what executed (median execution)
    best_seconds: float | None = None  # the fastest execution
    best_tops: float | None = None  # TOP/s of the fastest execution: the kernel's ceiling
    ceiling: bool = False  # True only when the runtime executed exactly the precision asked
    reason: str = ""  # why no ceiling (not run, refused, failed, or another precision executed)
    notes: list[str] = field(default_factory=list)

    @property
    def ceiling_tops(self) -> float | None:
        """This kernel's fastest TOP/s as a ceiling of the precision asked, or None (see ``reason``)."""
        return self.best_tops if self.ceiling else None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class KernelSweep:
    """Every kernel row of one sweep, and the runtimes that could not run at all."""

    results: list[KernelResult] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # runtime -> why it did not run at all
    versions: dict[str, str] = field(default_factory=dict)
    threads: int = 0
    seconds: float = 0.0  # wall time of the whole sweep


def ceiling_reason(runtime: str, precision: str, executed: str, compute_dtype: str) -> str:
    """Why a kernel is no ``precision`` ceiling ("" when it is one): the runtime's read-back must name
    exactly that precision, with no other weight type, upcast or mix."""
    if compute_dtype == precision and executed == precision:
        return ""
    return f"{runtime} executed {executed or 'an unreported precision'}, not {precision}: no {precision} ceiling"


def ceilings(results: Iterable[KernelResult], kinds: Sequence[str] = ("gemm",)) -> dict[str, KernelResult]:
    """Per precision, the fastest kernel (TOP/s) of ``kinds`` that really executed in that precision.

    GEMMs only by default: a convolution's TOP/s counts its direct MACs, and a runtime may compute it with
    fewer multiplications (Winograd; OpenVINO's CPU plugin lists WINOGRAD in OPTIMIZATION_CAPABILITIES), so
    a convolution's rate is no bound of the arithmetic units.
    """
    best: dict[str, KernelResult] = {}
    for r in results:
        if r.kind not in kinds or not r.ceiling or not r.best_tops:
            continue
        current = best.get(r.precision)
        if current is None or r.best_tops > (current.best_tops or 0.0):
            best[r.precision] = r
    return best


# ---- timing ----------------------------------------------------------------------------------------
def time_step(step: Callable[[], float], budget_s: float, warmup: int = 2, min_runs: int = 5,
              max_runs: int = 2000) -> tuple[float, int, float]:
    """(median seconds, runs, fastest seconds) of a backend compute step: ``warmup`` untimed runs, then at
    least ``min_runs`` until ``budget_s`` of wall time is spent; the collector is off while timing (as in
    the point runner)."""
    for _ in range(warmup):
        step()
    enabled = gc.isenabled()
    gc.disable()
    try:
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < max_runs):
            times.append(step())
    finally:
        if enabled:
            gc.enable()
    return statistics.median(times), len(times), min(times)


def _first_line(exc: BaseException, scratch: Path) -> str:
    from sut.model_file import first_line

    return first_line(exc, 300).replace(str(scratch) + os.sep, "")


def _backend(runtime: str):
    """The backend class, or BackendUnavailable naming the pip extra (sut.registry, no runtime imported)."""
    from sut.registry import check_backend

    return check_backend(runtime)


def run_kernel(shape: Shape, runtime: str, precision: str, form: Form, path: Path, threads: int,
               budget_s: float, backend_cls=None, streams: int = 1) -> KernelResult:
    """Load the kernel model on the runtime, read back what it executes, and time its compute step.

    With several streams (the threads shared among them, as a deployment shares them) every stream runs
    the kernel at once, timed as the point runner times compute (``tiers.runner.compute``): its seconds
    are then the batch over the samples/s of all streams, the median window and the fastest one."""
    from sut.base import DeploymentOptions

    res = KernelResult(shape.kind, shape.label, shape.dims(), shape.source, runtime, precision, form.name, shape.macs,
                       threads=threads, streams=streams)
    backend = (backend_cls or _backend(runtime))()
    try:
        backend.load(path, DeploymentOptions(threads=threads, streams=streams, max_batch=shape.batch,
                                             exec_precision=form.exec_precision))
    except Exception as exc:  # noqa: BLE001 - refused (no such kernel or precision) or the runtime failed
        kind = "" if isinstance(exc, MlperfExtError) else f"{type(exc).__name__}: "
        res.reason = f"not run: {kind}{_first_line(exc, path.parent)}"
        return res
    try:
        desc = backend.describe()
        res.executed, res.compute_dtype = desc.precision, desc.compute_dtype
        res.notes = list(desc.notes)
        if runtime == "openvino" and form.model == "nbits":
            group, where = _ov_dynamic_quantization(desc)
            if group:
                res.notes.append(f"OpenVINO DYNAMIC_QUANTIZATION_GROUP_SIZE {group} ({where}): the CPU plugin may "
                                 "quantize the activations of compressed-weight layers at run time, which the "
                                 "runtime model's input types (reported as executed) do not show")
        if form.model == "qdq":
            res.notes.append("QDQ: the time includes quantizing the input and requantizing the output, as a QDQ "
                             "model runs")
        x = kernel_input(onnx.load(str(path), load_external_data=False))
        if streams == 1:
            res.seconds, res.runs, res.best_seconds = time_step(backend.compute_step(x, 0), budget_s)
        else:
            from tiers.runner.compute import measure_compute

            timing = measure_compute(backend, x, streams, budget_s)
            res.seconds, res.runs = shape.batch / timing.throughput, len(timing.latencies_s)
            res.best_seconds = shape.batch / max(timing.window_throughputs)
    except Exception as exc:  # noqa: BLE001 - one failing kernel must not end the sweep; its row says why
        res.reason = f"failed: {_first_line(exc, path.parent)}"
        return res
    finally:
        backend.close()
    res.tops = achieved_tops(shape.macs, res.seconds)
    res.best_tops = achieved_tops(shape.macs, res.best_seconds)
    res.reason = ceiling_reason(runtime, precision, res.executed, res.compute_dtype)
    res.ceiling = not res.reason
    return res


def _ov_dynamic_quantization(desc) -> tuple[int | None, str]:
    """(OpenVINO's DYNAMIC_QUANTIZATION_GROUP_SIZE for the loaded model, where it was read): the backend's
    read-back settings when they report it, else the CPU plugin's value (the backend does not set it, so the
    plugin's applies)."""
    value = desc.settings.get("DYNAMIC_QUANTIZATION_GROUP_SIZE")
    if value is not None:
        return (int(value) or None), "read back from the compiled model"
    try:
        import openvino as ov

        core = ov.Core()
        if "DYNAMIC_QUANTIZATION_GROUP_SIZE" not in core.get_property("CPU", "SUPPORTED_PROPERTIES"):
            return None, ""
        value = core.get_property("CPU", "DYNAMIC_QUANTIZATION_GROUP_SIZE")
    except Exception:  # noqa: BLE001 - an older plugin without the property: nothing to say
        return None, ""
    return (int(value) or None), "the CPU plugin's setting"


def _quiet_ort():
    """ORT's default logger prints a warning per session (serializing the optimized model the backend reads
    back) and an error for each refused load (no profile to write); every failure reaches the sweep as an
    exception and becomes its row's reason, so the log is turned down to fatal while sweeping. Returns the
    function that restores ORT's default level (2, warnings)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return lambda: None
    ort.set_default_logger_severity(4)
    return lambda: ort.set_default_logger_severity(2)


def usable_cpus() -> int:
    """The logical CPUs this process may run on (the threads a kernel gets by default)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def sweep(shapes: Sequence[Shape] | None = None, runtimes: Sequence[str] = RUNTIMES,
          precisions: Sequence[str] = PRECISIONS, threads: int | None = None, budget_s: float = 0.3,
          progress: Callable[[KernelResult], None] | None = None, backend_classes: dict | None = None,
          streams: Sequence[int] = (1,)) -> KernelSweep:
    """Every shape × runtime × precision × formulation × stream count; kernels a runtime has no formulation
    for get a row with the reason, and a runtime that is not installed is listed in ``unavailable``."""
    start = time.perf_counter()
    shapes = default_shapes() if shapes is None else tuple(shapes)
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"unknown kernel precision(s) {', '.join(bad)}; fix: use any of {', '.join(PRECISIONS)}")
    threads = threads or usable_cpus()
    out = KernelSweep(threads=threads)
    classes: dict[str, object] = {}
    for runtime in runtimes:
        try:
            classes[runtime] = (backend_classes or {}).get(runtime) or _backend(runtime)
        except (BackendUnavailable, ConfigError) as exc:
            out.unavailable[runtime] = str(exc)
    restore = _quiet_ort()
    try:
        with tempfile.TemporaryDirectory(prefix="mlperf-ext-kernels-") as scratch:
            for shape in shapes:
                paths: dict[str, Path] = {}
                for runtime, cls in classes.items():
                    for precision in precisions:
                        todo, why = forms(runtime, shape.kind, precision)
                        if not todo:
                            r = KernelResult(shape.kind, shape.label, shape.dims(), shape.source, runtime, precision,
                                             "-", shape.macs, reason=f"not run: {why}")
                            out.results.append(r)
                            if progress:
                                progress(r)
                        for form in todo:
                            if form.model not in paths:
                                paths[form.model] = Path(scratch) / f"{shape.slug}-{form.model}.onnx"
                                onnx.save(build_model(shape, form.model), str(paths[form.model]))
                            for n in streams:
                                r = run_kernel(shape, runtime, precision, form, paths[form.model], threads, budget_s,
                                               cls, n)
                                out.results.append(r)
                                if progress:
                                    progress(r)
                for p in paths.values():
                    p.unlink(missing_ok=True)
    finally:
        restore()
    out.versions = _versions(list(classes))
    out.seconds = time.perf_counter() - start
    return out


def _versions(runtimes: list[str]) -> dict[str, str]:
    from importlib import metadata

    found = {}
    for runtime in runtimes:
        for dist in (runtime, f"{runtime}-gpu"):
            try:
                found[runtime] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


# ---- table and command -----------------------------------------------------------------------------
TABLE_COLUMNS = ("kernel", "shape", "runtime", "asked", "form", "executed", "ms", "TOP/s", "best-TOP/s", "ceiling")


def _ceiling_cell(r: KernelResult) -> str:
    if r.ceiling:
        return "yes"
    if r.reason.startswith(("not run", "failed")):
        return "no: " + r.reason.split(":")[0]
    return f"no: not {r.precision}"


def table_rows(results: Iterable[KernelResult]) -> list[list[str]]:
    return [[r.kind, r.shape, r.runtime, r.precision, r.form, r.executed or "-",
             "-" if r.seconds is None else f"{r.seconds * 1e3:.4g}", "-" if r.tops is None else f"{r.tops:.4g}",
             "-" if r.best_tops is None else f"{r.best_tops:.4g}", _ceiling_cell(r)] for r in results]


def format_table(results: Iterable[KernelResult]) -> str:
    """The rows as a text table, then each distinct reason a kernel did not run and each note, once."""
    results = list(results)
    rows = [list(TABLE_COLUMNS)] + table_rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    said: set[str] = set()
    for r in results:
        for text in ([r.reason] if r.reason.startswith(("not run", "failed")) else []) + r.notes:
            line = f"{r.runtime} {r.kind} {r.precision} {r.form}: {text}"
            key = f"{r.runtime} {r.kind} {r.precision} {r.form} {text.split(':')[0]}"
            if key not in said:
                said.add(key)
                lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tiers.micro.kernels [--full] [--runtime R ...] [--precision P ...] [--json FILE]``."""
    import json

    p = argparse.ArgumentParser(prog="python -m tiers.micro.kernels", description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="DeepBench's whole inference_device_set too (minutes)")
    p.add_argument("--kind", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--runtime", nargs="+", default=list(RUNTIMES))
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--threads", type=int, help="intra-op threads (default: the usable CPUs)")
    p.add_argument("--budget", type=float, default=0.3, help="seconds of timed runs per kernel (default 0.3)")
    p.add_argument("--json", type=Path, help="write every row to this JSON file")
    args = p.parse_args(argv)
    shapes = [s for s in default_shapes(args.full) if s.kind in args.kind]
    result = sweep(shapes, args.runtime, args.precision, args.threads, args.budget,
                   progress=lambda r: print(f"  {r.runtime} {r.kind} {r.shape} {r.precision} {r.form}: "
                                            f"{'-' if r.tops is None else f'{r.tops:.4g} TOP/s'}", file=sys.stderr))
    print(format_table(result.results))
    for runtime, why in result.unavailable.items():
        print(f"{runtime}: not run ({why})")
    for dtype, r in ceilings(result.results, args.kind).items():
        print(f"ceiling {dtype}: {r.best_tops:.4g} TOP/s ({r.runtime}, {r.kind} {r.shape}, {r.form}; fastest execution)")
    print(f"{len(result.results)} kernels in {result.seconds:.1f} s on {result.threads} threads "
          f"({', '.join(f'{k} {v}' for k, v in result.versions.items())})")
    if args.json:
        args.json.write_text(json.dumps({"results": [r.to_dict() for r in result.results],
                                         "unavailable": result.unavailable, "versions": result.versions,
                                         "threads": result.threads}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
