"""Precision variants of any FP32 ONNX model (MLP, CNV, standard architectures).

Each builder takes an FP32 `onnx.ModelProto` and returns `(variant, producer)`, where `producer`
is the dict stored in the artifact's metadata saying exactly how the variant was made.

Recipes (measured with ORT 1.32 / OpenVINO 2026.4; docs/models.md):
- fp16: onnxconverter_common float16 with float32 I/O kept.
- int8: ORT static QDQ, per-channel QInt8 weights, QUInt8 activations, calibrated on training samples.
  ORT's fastest CPU path for these models (e.g. 68 k vs 24 k img/s for the 1024-wide MLP).
- int4: weight-only `com.microsoft.MatMulNBits` (4-bit, block 32, symmetric) after rewriting Gemm
  to MatMul + Add (the quantizer only touches MatMul). The 4-bit MatMulNBits kernel is ORT's fast
  MLAS path, while int4 QDQ falls back to dequantize-at-run-time (4.4 ms vs 0.15 ms at batch 1);
  OpenVINO reads MatMulNBits. Models whose weights sit in Conv get `to_int4_qdq` instead.
- int2: per-channel narrow-range INT2 weight initializers -> DequantizeLinear (opset 25, IR 11).
  ORT 1.32 runs it; OpenVINO 2026.4 cannot read INT2 tensors. Post-training 2-bit collapses
  (CNV 83 %, MLP 88 %), so a family should fine-tune with QAT first and pass weights already on the
  2-bit grid (`scale_rule="max"` is then exact); `scale_rule="twn"` is the plain PTQ data point.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.zoo.metadata import PRECISIONS

INT8_CALIBRATION_SAMPLES = 256  # as in the notes' recipe (§4); more changed nothing measurable there
INT4_BLOCK_SIZE = 32
INT2_OPSET = 25  # DequantizeLinear-25 is the first to accept INT2/UINT2 inputs
INT2_IR_VERSION = 11  # IR 11 introduced the 2-bit element types


@contextlib.contextmanager
def _quiet_ort_logs():
    """ORT's quantizers log every node at INFO; keep build output to our own progress lines."""
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.startswith("onnxruntime")]
    loggers.append(logging.root)
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


def _tool_version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------------------------------------- graph edits

def gemm_to_matmul(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Rewrite Gemm(A, B const, C) with transA=0 into MatMul(A, B') [+ Add(C')] so that
    MatMulNBits can take it; alpha/beta and transB are folded into the constants.
    Returns the new model and how many Gemm nodes were rewritten."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name: t for t in m.graph.initializer}
    new_nodes, count = [], 0
    for node in m.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "Gemm" or attrs.get("transA", 0) or node.input[1] not in inits:
            new_nodes.append(node)
            continue
        b = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            b = b.T
        b = np.ascontiguousarray(b * np.float32(attrs.get("alpha", 1.0))).astype(b.dtype)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(b, node.input[1]))
        out = node.output[0]
        has_c = len(node.input) > 2 and node.input[2] != ""
        mm_out = f"{out}_matmul" if has_c else out
        new_nodes.append(helper.make_node("MatMul", [node.input[0], node.input[1]], [mm_out],
                                          name=f"{node.name or out}_MatMul"))
        if has_c:
            c_name = node.input[2]
            beta = np.float32(attrs.get("beta", 1.0))
            if beta != 1.0 and c_name in inits:
                c = numpy_helper.to_array(inits[c_name]) * beta
                inits[c_name].CopyFrom(numpy_helper.from_array(c.astype(np.float32), c_name))
            elif beta != 1.0:
                raise ValueError(f"Gemm {node.name}: beta={beta} with a non-constant C is not supported")
            new_nodes.append(helper.make_node("Add", [mm_out, c_name], [out], name=f"{node.name or out}_Add"))
        count += 1
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    onnx.checker.check_model(m)
    return m, count


def _weight_axes(model: onnx.ModelProto) -> dict[str, int]:
    """Float weight initializers of Conv/Gemm/MatMul -> their output-channel axis."""
    inits = {t.name: t for t in model.graph.initializer}
    axes: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.input[1]
        if name not in inits or inits[name].data_type != TensorProto.FLOAT:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            axes[name] = 0
        elif node.op_type == "Gemm":
            axes[name] = 0 if attrs.get("transB", 0) else 1
        elif len(inits[name].dims) == 2:
            axes[name] = 1
    return axes


# ---------------------------------------------------------------------------------------------- builders

def to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    from onnxconverter_common import float16

    with warnings.catch_warnings():  # one UserWarning per tiny weight clamped to fp16's 1e-7 floor
        warnings.simplefilter("ignore", UserWarning)
        out = float16.convert_float_to_float16(model, keep_io_types=True)
    return out, {"tool": f"onnxconverter-common {_tool_version('onnxconverter-common')}",
                 "recipe": "float16.convert_float_to_float16(keep_io_types=True)",
                 "weights": "fp16", "activations": "fp16 (fp32 I/O)", "method": "cast",
                 "weight_bits": 16, "activation_bits": 16, "block_size": None, "calibration_samples": 0}


class _ArrayReader:
    """onnxruntime.quantization.CalibrationDataReader over an in-memory array, in batches."""

    def __init__(self, input_name: str, data: np.ndarray, batch: int = 32):
        self._batches = iter([{input_name: data[i:i + batch]} for i in range(0, len(data), batch)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def _static_qdq(model: onnx.ModelProto, calib: np.ndarray, input_name: str, weight_type: str,
                activation_type: str) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_ArrayReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory() as tmp, _quiet_ort_logs():
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "q.onnx")
        onnx.save(model, src)
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(dst), Reader(input_name, calib.astype(np.float32)),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=getattr(QuantType, weight_type),
                        activation_type=getattr(QuantType, activation_type))
        return onnx.load(str(dst))


def _static_qdq_variant(model: onnx.ModelProto, calib: np.ndarray, input_name: str,
                        weight_bits: int) -> tuple[onnx.ModelProto, dict]:
    weight_type = f"QInt{weight_bits}"
    out = _static_qdq(model, calib, input_name, weight_type, "QUInt8")
    return out, {"tool": f"onnxruntime.quantization {_tool_version('onnxruntime')}",
                 "recipe": f"quant_pre_process + quantize_static(QDQ, per_channel=True, weight {weight_type}, "
                           "activation QUInt8, calibrate=MinMax)",
                 "method": "PTQ", "weights": f"int{weight_bits} per-channel", "activations": "uint8",
                 "weight_bits": weight_bits, "activation_bits": 8, "block_size": None,
                 "calibration_samples": int(len(calib)), "calibration_source": "training split"}


def to_int8_qdq(model: onnx.ModelProto, calib: np.ndarray, input_name: str) -> tuple[onnx.ModelProto, dict]:
    """Static QDQ INT8: per-channel QInt8 weights, QUInt8 activations (min/max calibration)."""
    return _static_qdq_variant(model, calib, input_name, 8)


def to_int4_qdq(model: onnx.ModelProto, calib: np.ndarray, input_name: str) -> tuple[onnx.ModelProto, dict]:
    """Static QDQ W4A8 (int4 per-channel weights, uint8 activations): for Conv-heavy models.
    Correct but slow on ORT CPU (dequantized at run time); W4A4 breaks MaxPool (ORT: MaxPool rejects uint4)."""
    return _static_qdq_variant(model, calib, input_name, 4)


def to_int4_matmulnbits(model: onnx.ModelProto, block_size: int = INT4_BLOCK_SIZE,
                        ) -> tuple[onnx.ModelProto, dict]:
    """Weight-only 4-bit blockwise MatMulNBits (symmetric, fp32 activations) after Gemm -> MatMul."""
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )
    except ModuleNotFoundError as exc:  # onnxruntime 1.32's quantizer imports onnx_ir
        from mlperf_ext.errors import ModelError
        raise ModelError(f"building int4 (MatMulNBits) variants needs the Python package '{exc.name}', "
                         "which is not installed; fix: pip install onnx-ir") from exc

    mm, rewritten = gemm_to_matmul(model)
    q = MatMulNBitsQuantizer(mm, algo_config=DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True, bits=4))
    with _quiet_ort_logs():
        q.process()
    out = q.model.model if hasattr(q.model, "model") else q.model
    n_nbits = sum(1 for n in out.graph.node if n.op_type == "MatMulNBits")
    if n_nbits == 0:
        raise ValueError("MatMulNBits quantizer found no MatMul with a constant weight to quantize")
    return out, {"tool": f"onnxruntime.quantization.matmul_nbits_quantizer {_tool_version('onnxruntime')}",
                 "recipe": f"gemm_to_matmul ({rewritten} Gemm rewritten) + MatMulNBitsQuantizer("
                           f"DefaultWeightOnlyQuantConfig(bits=4, block_size={block_size}, is_symmetric=True))",
                 "method": "PTQ (weight-only, round-to-nearest)", "weights": "int4 blockwise",
                 "weight_bits": 4, "activation_bits": 32, "block_size": block_size, "activations": "fp32",
                 "format": "com.microsoft.MatMulNBits",
                 "quantized_nodes": n_nbits, "calibration_samples": 0}


def pack_int2(codes: np.ndarray) -> bytes:
    """Pack signed 2-bit codes (-2..1), four per byte, first element in the low bits (ONNX layout)."""
    flat = (codes.astype(np.int8).reshape(-1) & 0b11).astype(np.uint8)
    flat = np.concatenate([flat, np.zeros((-len(flat)) % 4, np.uint8)]).reshape(-1, 4)
    return (flat[:, 0] | flat[:, 1] << 2 | flat[:, 2] << 4 | flat[:, 3] << 6).astype(np.uint8).tobytes()


def int2_codes(w: np.ndarray, axis: int, scale_rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel narrow-range signed 2-bit codes {-1, 0, 1} and positive float32 scales.

    "max": scale = max|w| per channel, exact for weights already on a ternary grid (QAT output);
    "twn": scale = 1.4 * mean|w| (Ternary Weight Networks threshold 0.7 mean|w|), the PTQ rule.
    """
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    if scale_rule == "max":
        scale = np.abs(w).max(axis=reduce)
    elif scale_rule == "twn":
        scale = 1.4 * np.abs(w).mean(axis=reduce)
    else:
        raise ValueError(f"unknown int2 scale rule {scale_rule!r} (use 'max' or 'twn')")
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    codes = np.clip(np.rint(w / scale.reshape(shape)), -1, 1).astype(np.int8)
    return codes, scale


def to_int2_qdq(model: onnx.ModelProto, scale_rule: str = "twn", qat: dict | None = None,
                ) -> tuple[onnx.ModelProto, dict]:
    """Replace every Conv/Gemm/MatMul float weight by INT2 codes -> DequantizeLinear(axis) at opset 25.

    `qat` describes the quantization-aware training that put the weights on the grid (then use
    scale_rule="max"); without it the variant is plain post-training quantization.
    """
    from onnx import version_converter

    axes = _weight_axes(model)
    if not axes:
        raise ValueError("no Conv/Gemm/MatMul float weight initializers to quantize to INT2")
    # convert_version returns a new model; at opset >= 25 copy, so the caller's model is never edited
    m = (version_converter.convert_version(model, INT2_OPSET) if _onnx_opset(model) < INT2_OPSET
         else onnx.ModelProto.FromString(model.SerializeToString()))
    m.ir_version = INT2_IR_VERSION
    keep, dq_nodes, max_err = [], [], 0.0
    for init in m.graph.initializer:
        if init.name not in axes:
            keep.append(init)
            continue
        w = numpy_helper.to_array(init)
        axis = axes[init.name]
        codes, scale = int2_codes(w, axis, scale_rule)
        shape = [1] * w.ndim
        shape[axis] = -1
        max_err = max(max_err, float(np.abs(codes * scale.reshape(shape) - w).max()))
        q_name, s_name = f"{init.name}_int2", f"{init.name}_scale"
        keep.append(helper.make_tensor(q_name, TensorProto.INT2, list(w.shape), pack_int2(codes), raw=True))
        keep.append(numpy_helper.from_array(scale, s_name))
        dq_nodes.append(helper.make_node("DequantizeLinear", [q_name, s_name], [init.name], axis=axis,
                                         name=f"{init.name}_DequantizeLinear"))
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(dq_nodes + nodes)
    onnx.checker.check_model(m)
    producer = {"tool": f"mlperf_ext.zoo.quantize.to_int2_qdq (onnx {onnx.__version__})",
                "recipe": f"per-channel narrow-range INT2 codes {{-1,0,1}} (scale rule '{scale_rule}') -> "
                          f"DequantizeLinear, opset {INT2_OPSET}, IR {INT2_IR_VERSION}",
                "method": "QAT" if qat else "PTQ", "weights": "int2 per-channel (narrow range)",
                "activations": "fp32", "format": "QDQ INT2 initializers", "calibration_samples": 0,
                "weight_bits": 2, "activation_bits": 32, "block_size": None,
                "quantized_weights": len(axes), "max_abs_weight_rounding_error": max_err}
    if qat:
        producer["qat"] = qat
    return m, producer


def _onnx_opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def make_variant(fp32: onnx.ModelProto, precision: str, calib: np.ndarray | None = None,
                 input_name: str = "input") -> tuple[onnx.ModelProto, dict]:
    """Dispatch to the recipe for `precision` (int4 = MatMulNBits; int2 = PTQ, see to_int2_qdq)."""
    if precision == "fp32":
        return fp32, {"tool": "identity", "recipe": "trained FP32 weights", "method": "none",
                      "weights": "fp32", "activations": "fp32", "calibration_samples": 0,
                      "weight_bits": 32, "activation_bits": 32, "block_size": None}
    if precision == "fp16":
        return to_fp16(fp32)
    if precision == "int8":
        if calib is None:
            raise ValueError("int8 static quantization needs calibration samples")
        return to_int8_qdq(fp32, calib[:INT8_CALIBRATION_SAMPLES], input_name)
    if precision == "int4":
        return to_int4_matmulnbits(fp32)
    if precision == "int2":
        return to_int2_qdq(fp32, scale_rule="twn")
    raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
