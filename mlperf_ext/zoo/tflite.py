"""Full-integer INT8 TFLite variants of the zoo's MLP and CNV families, for LiteRT's CPU and the Edge TPU.

Each INT8 variant of a source family gets a TFLite twin named `<source>-tflite` (`mlp-w256-int8-tflite`,
`cnv-c16-int8-tflite`), built in four steps:

1. the source family builds (or reuses) its FP32 and INT8 ONNX variants;
2. `float_tflite` writes the FP32 graph as a float TFLite flatbuffer with LiteRT's own schema module
   (`ai_edge_litert.schema_py_generated`, the object API of the TFLite schema, tensorflow/compiler/mlir/lite/
   schema/schema.fbs): the zoo's graphs use five ONNX ops (Gemm, Conv, Relu, MaxPool, Flatten), each one
   TFLite builtin; the float model must reproduce ONNX Runtime's FP32 logits on the held-out split;
3. `quantize_int8` quantizes it to full integer (int8 weights, activations, input and output; int32 biases)
   with Google's ai-edge-quantizer (`recipe.static_wi8_ai8`, min/max calibration) on the same training-split
   samples the ONNX INT8 variant was calibrated on; a float tensor left over is a build error;
4. the INT8 model's held-out top-1 is measured with LiteRT's CPU interpreter, with its top-1 agreement against
   the ONNX INT8 and FP32 variants (ONNX Runtime), and all of it goes into `<name>.json`.

Why not onnx2tf or litert-torch (measured on this project's machine; docs/models.md, "TFLite variants"): the
onnx2tf that supports Python 3.11 (1.29.24) pins numpy 1.26.4, onnx 1.19.1, onnxruntime 1.23.0 and tensorflow
2.19.0, so it cannot share the project's environment (numpy 2, onnx 1.23, onnxruntime 1.32), and its venv is
2.6 GB; litert-torch 0.10 pulls jax, transformers, torchao and kagglehub (torch 2.14 with CUDA libraries: 6.6
GB) and converts torch modules only. ai-edge-litert + ai-edge-quantizer install in about ten seconds, run
offline, and the quantization is Google's own, not ours.

Host quantization (`TensorQuant`): a full-integer model takes int8 input; the backend and the evaluation here
quantize float32 inputs on the host, q = x / scale + zero_point saturated to the type's range, as pycoral's
classification example does before `set_input` (github.com/google-coral/pycoral, examples/classify_image.py;
it truncates, we round to nearest even), and dequantize int8 outputs.

ai-edge-litert and ai-edge-quantizer come with the `coral` extra; without them a build raises
BackendUnavailable naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import struct
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from mlperf_ext.errors import BackendUnavailable, ModelError
from mlperf_ext.zoo.metadata import ModelInfo, is_current, read_metadata, sha256_file, write_artifact
from mlperf_ext.zoo.registry import Progress, register_family

#: the pip extra that brings ai-edge-litert and ai-edge-quantizer
EXTRA = "coral"
#: bump when the writer, the quantization call or the measurements change an artifact's bytes or figures
CODE_VERSION = 1
SUFFIX = "-tflite"
EVAL_BATCH = 250
CALIBRATION_BATCH = 32
#: the float TFLite model must reproduce ORT's FP32 logits this closely (relative to the largest logit)
FLOAT_TOLERANCE = 1e-3
#: ...and agree on top-1 for all but this fraction of the held-out samples (float summation order only)
FLOAT_TOP1_SLACK = 0.002
#: TFLite builtin ops that carry a model's arithmetic
HEAVY_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL", "TRANSPOSE_CONV", "CONV_3D")
#: the custom op edgetpu_compiler puts the ops it mapped to the Edge TPU into
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


# ---------------------------------------------------------------------------------------------- runtime


def require_litert() -> Any:
    """The `ai_edge_litert` package, or BackendUnavailable naming the `coral` extra."""
    try:
        import ai_edge_litert
        import ai_edge_litert.interpreter  # noqa: F401 - the interpreter is what every caller needs
    except ImportError as exc:
        raise BackendUnavailable(
            "coral", EXTRA, f"TFLite models are written and run with ai-edge-litert: {exc}"
        ) from exc
    return ai_edge_litert


def require_quantizer() -> Any:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise BackendUnavailable(
            "coral", EXTRA, f"full-integer TFLite models are quantized with ai-edge-quantizer: {exc}"
        ) from exc
    return quantizer, recipe


def tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("ai-edge-litert", "ai-edge-quantizer"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


@dataclass(frozen=True)
class TensorQuant:
    """A tensor's integer type and affine quantization (real = scale * (q - zero_point)); scale 0 = none."""

    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @classmethod
    def of(cls, detail: dict) -> TensorQuant:
        """From an interpreter's get_input_details()/get_output_details() entry."""
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return cls(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))

    @cached_property
    def quantized(self) -> bool:
        try:
            integer = np.issubdtype(np.dtype(self.dtype), np.integer)
        except TypeError:  # a type numpy has no name for (TFLite's string, resource, variant)
            return False
        return self.scale != 0.0 and integer

    @cached_property
    def _float32(self) -> tuple[np.float32, np.float32, np.float32, np.float32]:
        """scale, zero point and the integer type's bounds as float32 (made once: at a batch of one the
        per-call conversions and np.clip's wrapper cost more than the arithmetic)."""
        info = np.iinfo(np.dtype(self.dtype))
        return np.float32(self.scale), np.float32(self.zero_point), np.float32(info.min), np.float32(info.max)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float32 -> this integer type (round half to even, saturate); other inputs pass unchanged."""
        if not self.quantized:
            return x
        scale, zero_point, low, high = self._float32
        q = np.divide(x, scale)
        np.rint(q, out=q)
        q += zero_point
        np.maximum(q, low, out=q)
        np.minimum(q, high, out=q)
        return q.astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return q
        scale, zero_point, _, _ = self._float32
        out = q.astype(np.float32)
        out -= zero_point
        out *= scale
        return out

    def to_dict(self) -> dict:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def litert_logits(model: bytes | Path, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """Float logits of a TFLite model on LiteRT's CPU interpreter (its default XNNPACK delegate), inputs
    quantized on the host and outputs dequantized with the tensors' own parameters."""
    require_litert()
    from ai_edge_litert.interpreter import Interpreter

    kwargs = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": bytes(model)}
    interpreter = Interpreter(num_threads=threads, **kwargs)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    qin, qout = TensorQuant.of(inp), TensorQuant.of(out)
    fixed = int(inp["shape_signature"][0]) if len(inp["shape_signature"]) else -1
    batch = EVAL_BATCH if fixed < 0 else fixed
    logits, current = [], None
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        keep = len(chunk)
        if fixed > 0 and keep < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - keep, *chunk.shape[1:]), chunk.dtype)])
        if current != len(chunk):
            interpreter.resize_tensor_input(inp["index"], [len(chunk), *chunk.shape[1:]])
            interpreter.allocate_tensors()
            current = len(chunk)
        interpreter.set_tensor(inp["index"], np.ascontiguousarray(qin.quantize(chunk)))
        interpreter.invoke()
        logits.append(qout.dequantize(interpreter.get_tensor(out["index"]))[:keep])
    return np.concatenate(logits)


#: the flatbuffer file identifier of a TFLite model (bytes 4..8 of the file; schema.fbs `file_identifier`)
TFLITE_IDENTIFIER = b"TFL3"


def is_tflite(head: bytes) -> bool:
    """Whether the first bytes of a file are a TFLite flatbuffer's."""
    return len(head) >= 8 and head[4:8] == TFLITE_IDENTIFIER


@dataclass(frozen=True)
class TfliteTensor:
    """A graph input or output as the file declares it (signature -1 = a dynamic dimension)."""

    name: str
    shape: tuple[int, ...]
    signature: tuple[int, ...]
    quant: TensorQuant


@dataclass(frozen=True)
class TfliteGraph:
    """What a TFLite file says about its main subgraph, read from the flatbuffer without running it."""

    inputs: tuple[TfliteTensor, ...]
    outputs: tuple[TfliteTensor, ...]
    ops: tuple[str, ...]  # builtin op names, or the custom code (e.g. edgetpu-custom-op), in graph order
    tensor_types: dict  # element type -> tensors of that type
    constant_types: tuple[str, ...]  # element types of the tensors that have data (weights, biases)
    schema_version: int

    def facts(self) -> dict:
        return {
            "ops": dict(sorted(Counter(self.ops).items())),
            "tensor_types": dict(self.tensor_types),
            "constant_types": list(self.constant_types),
            "schema_version": self.schema_version,
        }


#: TensorType values of schema.fbs (tensorflow/compiler/mlir/lite/schema/schema.fbs), by name
TENSOR_TYPES = ("float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64",
                "int8", "float64", "complex128", "uint64", "resource", "variant", "uint32", "uint16", "int4",
                "bfloat16", "int2", "uint4", "float8_e4m3fn", "float8_e5m2")
#: BuiltinOperator names of schema.fbs for the ops this project writes or reads back; LiteRT's schema module
#: names every other one when it is installed
BUILTIN_OPS = {0: "ADD", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED",
               17: "MAX_POOL_2D", 19: "RELU", 22: "RESHAPE", 25: "SOFTMAX", 32: "CUSTOM", 39: "TRANSPOSE",
               67: "TRANSPOSE_CONV", 114: "QUANTIZE", 126: "BATCH_MATMUL", 132: "CONV_3D"}


class _Table:
    """One flatbuffer table, read field by field (the layout in flatbuffers' "internals" doc: a table starts
    with an int32 back to its vtable, whose uint16 entries are the fields' offsets, 0 = absent)."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index: int) -> int:
        at = 4 + 2 * index
        return struct.unpack_from("<H", self.buf, self.vtable + at)[0] if at < self.vsize else 0

    def scalar(self, index: int, fmt: str, default=0):
        off = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + off)[0] if off else default

    def _target(self, index: int) -> int | None:
        off = self._field(index)
        if not off:
            return None
        at = self.pos + off
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, index: int) -> _Table | None:
        at = self._target(index)
        return None if at is None else _Table(self.buf, at)

    def tables(self, index: int) -> list[_Table]:
        at = self._target(index)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        items = [at + 4 + 4 * k for k in range(n)]
        return [_Table(self.buf, item + struct.unpack_from("<I", self.buf, item)[0]) for item in items]

    def vector(self, index: int, fmt: str) -> tuple | None:
        at = self._target(index)
        if at is None:
            return None
        n = struct.unpack_from("<I", self.buf, at)[0]
        return struct.unpack_from(f"<{n}{fmt}", self.buf, at + 4)

    def vector_length(self, index: int) -> int:
        at = self._target(index)
        return 0 if at is None else struct.unpack_from("<I", self.buf, at)[0]

    def string(self, index: int) -> str | None:
        at = self._target(index)
        if at is None:
            return None
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4:at + 4 + n].decode("utf-8", "replace")


def _op_names() -> dict[int, str]:
    try:
        from ai_edge_litert import schema_py_generated as fb
    except ImportError:
        return BUILTIN_OPS
    return {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}


def read_tflite(model: bytes) -> TfliteGraph:
    """Parse a TFLite flatbuffer's main subgraph (ModelError when it is not one). Plain `struct` reads of the
    schema's fields, so inspecting a model needs no runtime (tflite-runtime has no schema module)."""
    if not is_tflite(model[:8]):
        raise ModelError("the file is not a TFLite flatbuffer (no 'TFL3' identifier); fix: pass a .tflite "
                         "model")
    try:
        return _read_graph(bytes(model))
    except (struct.error, IndexError, ValueError) as exc:
        raise ModelError(f"the TFLite flatbuffer cannot be read ({type(exc).__name__}: {exc}); fix: "
                         "re-convert or re-download the model") from exc


def _read_graph(buf: bytes) -> TfliteGraph:
    # field numbers of schema.fbs: Model{version 0, operator_codes 1, subgraphs 2, buffers 4};
    # OperatorCode{deprecated_builtin_code 0, custom_code 1, builtin_code 3}; SubGraph{tensors 0, inputs 1,
    # outputs 2, operators 3}; Tensor{shape 0, type 1, buffer 2, name 3, quantization 4, shape_signature 7};
    # QuantizationParameters{scale 2, zero_point 3}; Operator{opcode_index 0}; Buffer{data 0, size 2}
    root = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    subgraphs = root.tables(2)
    if not subgraphs:
        raise ModelError("the TFLite file has no subgraph; fix: re-convert the model")
    names = _op_names()

    def code_name(code: _Table) -> str:
        custom = code.string(1)
        if custom:
            return custom
        builtin = max(code.scalar(3, "i"), code.scalar(0, "b"))
        return names.get(builtin, f"BUILTIN_{builtin}")

    codes = [code_name(c) for c in root.tables(1)]
    buffers = root.tables(4)
    graph = subgraphs[0]
    tensors = graph.tables(0)

    def type_name(t: _Table) -> str:
        code = t.scalar(1, "b")
        return TENSOR_TYPES[code] if 0 <= code < len(TENSOR_TYPES) else f"type{code}"

    def tensor(index: int) -> TfliteTensor:
        t = tensors[index]
        shape = tuple(t.vector(0, "i") or ())
        signature = t.vector(7, "i")
        q = t.table(4)
        scales = (q.vector(2, "f") or ()) if q is not None else ()
        zeros = (q.vector(3, "q") or ()) if q is not None else ()
        quant = TensorQuant(type_name(t), float(scales[0]) if len(scales) == 1 else 0.0,
                            int(zeros[0]) if len(zeros) == 1 else 0)
        signature = tuple(signature) if signature is not None else shape
        return TfliteTensor(t.string(3) or "", shape, signature, quant)

    def has_data(t: _Table) -> bool:  # inline data, or an offset/size into the file (models over 2 GB)
        index = t.scalar(2, "I")
        if not index or index >= len(buffers):
            return False
        return buffers[index].vector_length(0) > 0 or buffers[index].scalar(2, "Q") > 0

    types = Counter(type_name(t) for t in tensors)
    constants = sorted({type_name(t) for t in tensors if has_data(t)})
    return TfliteGraph(inputs=tuple(tensor(i) for i in graph.vector(1, "i") or ()),
                       outputs=tuple(tensor(i) for i in graph.vector(2, "i") or ()),
                       ops=tuple(codes[op.scalar(0, "I")] for op in graph.tables(3)),
                       tensor_types=dict(sorted(types.items())), constant_types=tuple(constants),
                       schema_version=int(root.scalar(0, "I")))


def tflite_facts(model: bytes) -> dict:
    """Operators (by name) and tensor types of a TFLite flatbuffer, read from the file itself."""
    return read_tflite(model).facts()


# ---------------------------------------------------------------------------------------------- the writer


@dataclass
class _Value:
    """An ONNX value as the writer holds it: its TFLite tensor, layout and logical (ONNX) shape."""

    tensor: int
    layout: str  # "nc" (2-D), "nchw" (the graph input as given), "nhwc" (TFLite's image layout)
    shape: tuple[int, ...]  # per-sample dims in ONNX order (C, H, W) or (F,)
    producer: int | None = None  # index of the TFLite operator that wrote it (for fusing a Relu)


class _TfliteWriter:
    """One TFLite subgraph built with the schema's object API; activations have a dynamic batch."""

    def __init__(self, dynamic_batch: bool):
        from ai_edge_litert import schema_py_generated as fb

        self.fb = fb
        self.dynamic_batch = dynamic_batch
        self.buffers: list = [fb.BufferT()]  # buffer 0 is the schema's empty sentinel
        self.tensors: list = []
        self.operators: list = []
        self.codes: dict[int, int] = {}

    def activation(self, name: str, dims: Sequence[int]) -> int:
        """A float32 activation tensor of per-sample `dims` (batch 1 in `shape`, -1 in the signature)."""
        t = self.fb.TensorT()
        t.name, t.type, t.shape = name, self.fb.TensorType.FLOAT32, [1, *dims]
        if self.dynamic_batch:
            t.shapeSignature = [-1, *dims]
        self.buffers.append(self.fb.BufferT())
        t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def constant(self, name: str, array: np.ndarray) -> int:
        types = {
            np.dtype(np.float32): self.fb.TensorType.FLOAT32,
            np.dtype(np.int32): self.fb.TensorType.INT32,
        }
        array = np.ascontiguousarray(array)
        t = self.fb.TensorT()
        t.name, t.type, t.shape = name, types[array.dtype], list(array.shape)
        buf = self.fb.BufferT()
        buf.data = np.frombuffer(array.tobytes(), dtype=np.uint8)
        self.buffers.append(buf)
        t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def operator(
        self, builtin: int, inputs: list[int], outputs: list[int], options_type: int = 0, options: Any = None
    ) -> int:
        self.codes.setdefault(builtin, len(self.codes))
        op = self.fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.codes[builtin], inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        self.operators.append(op)
        return len(self.operators) - 1

    def fuse_relu(self, op_index: int) -> bool:
        """Set a fused RELU on a FULLY_CONNECTED/CONV_2D that has none yet; False when it cannot."""
        opts = self.operators[op_index].builtinOptions
        if opts is None or not hasattr(opts, "fusedActivationFunction") or opts.fusedActivationFunction:
            return False
        opts.fusedActivationFunction = self.fb.ActivationFunctionType.RELU
        return True

    def reshape(self, value: _Value, dims: Sequence[int], layout: str, name: str) -> _Value:
        fb = self.fb
        shape = self.constant(f"{name}/shape", np.asarray([-1, *dims], np.int32))
        out = self.activation(name, dims)
        opts = fb.ReshapeOptionsT()
        opts.newShape = [-1, *dims]
        op = self.operator(
            fb.BuiltinOperator.RESHAPE, [value.tensor, shape], [out], fb.BuiltinOptions.ReshapeOptions, opts
        )
        return _Value(out, layout, value.shape, op)

    def transpose(
        self, value: _Value, perm: Sequence[int], dims: Sequence[int], layout: str, name: str
    ) -> _Value:
        fb = self.fb
        perm_t = self.constant(f"{name}/perm", np.asarray(perm, np.int32))
        out = self.activation(name, dims)
        op = self.operator(
            fb.BuiltinOperator.TRANSPOSE,
            [value.tensor, perm_t],
            [out],
            fb.BuiltinOptions.TransposeOptions,
            fb.TransposeOptionsT(),
        )
        return _Value(out, layout, value.shape, op)

    def to_bytes(
        self, inputs: list[int], outputs: list[int], input_name: str, output_name: str, description: str
    ) -> bytes:
        from ai_edge_litert.tools import flatbuffer_utils

        fb = self.fb
        graph = fb.SubGraphT()
        graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = (
            self.tensors,
            self.operators,
            inputs,
            outputs,
            "main",
        )
        codes = [None] * len(self.codes)
        for builtin, index in self.codes.items():
            code = fb.OperatorCodeT()
            # deprecated_builtin_code is the schema's int8 field: 127 says "read builtin_code"
            code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
            codes[index] = code
        signature = fb.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = "serving_default", 0
        signature.inputs = [_tensor_map(fb, input_name, inputs[0])]
        signature.outputs = [_tensor_map(fb, output_name, outputs[0])]
        model = fb.ModelT()
        model.version, model.description = 3, description
        model.operatorCodes, model.subgraphs, model.buffers = codes, [graph], self.buffers
        model.signatureDefs = [signature]
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _tensor_map(fb, name: str, index: int):
    m = fb.TensorMapT()
    m.name, m.tensorIndex = name, index
    return m


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _unsupported(node, why: str) -> ModelError:
    return ModelError(
        f"the TFLite writer cannot convert node '{node.name or node.output[0]}' ({node.op_type}): {why}; "
        "fix: it writes the zoo's MLP and CNV graphs (Gemm, Conv, Relu, MaxPool, Flatten); convert other "
        "models with a general converter (onnx2tf, litert-torch)"
    )


def float_tflite(model: onnx.ModelProto, dynamic_batch: bool = True) -> bytes:
    """The FP32 ONNX graph as a float TFLite flatbuffer with the same input and output (names, layouts).

    A 4-D NCHW input is turned into TFLite's NHWC inside the graph (a RESHAPE when it has one channel, so
    the bytes do not move; a TRANSPOSE otherwise) and flattened back in ONNX order before the classifier.
    """
    require_litert()
    w = _TfliteWriter(dynamic_batch)
    fb = w.fb
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ModelError(
            f"the TFLite writer takes one input and one output, not {len(inputs)} and "
            f"{len(graph.output)}; fix: export the model with one of each"
        )
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
    if not dims or any(d <= 0 for d in dims):
        raise ModelError(
            f"input '{inputs[0].name}' needs fixed dims after the batch, got {dims}; fix: export "
            "the model with a fixed sample shape"
        )
    layout = "nc" if len(dims) == 1 else "nchw"
    values = {inputs[0].name: _Value(w.activation(inputs[0].name, dims), layout, tuple(dims))}
    graph_input = values[inputs[0].name].tensor
    consumers = Counter(name for node in graph.node for name in node.input)

    def nhwc(value: _Value, name: str) -> _Value:
        if value.layout == "nhwc":
            return value
        if value.layout != "nchw":
            raise ModelError(
                f"'{name}' takes an image (N,C,H,W) but its input is a [N, features] tensor; fix: "
                "export the model with its convolutions before the Flatten"
            )
        c, h, wd = value.shape
        if c == 1:
            return w.reshape(value, (h, wd, 1), "nhwc", f"{name}/to_nhwc")
        return w.transpose(value, (0, 2, 3, 1), (h, wd, c), "nhwc", f"{name}/to_nhwc")

    for node in graph.node:
        attrs = _attrs(node)
        x = values.get(node.input[0]) if node.input else None
        if x is None:
            raise _unsupported(
                node, f"its input '{node.input[0] if node.input else ''}' is not an activation"
            )
        out_name = node.output[0]
        if node.op_type == "Gemm":
            if attrs.get("transA", 0) or x.layout != "nc" or node.input[1] not in inits:
                raise _unsupported(node, "only Gemm(A [N,K], constant B) is written")
            weight = inits[node.input[1]].astype(np.float32) * np.float32(attrs.get("alpha", 1.0))
            weight = weight if attrs.get("transB", 0) else weight.T  # FULLY_CONNECTED takes [out, in]
            has_bias = len(node.input) > 2 and node.input[2]
            if has_bias and node.input[2] not in inits:
                raise _unsupported(node, "its bias is not a constant")
            bias = (
                inits[node.input[2]].astype(np.float32).reshape(-1) * np.float32(attrs.get("beta", 1.0))
                if has_bias
                else np.zeros(weight.shape[0], np.float32)
            )
            out = w.activation(out_name, (weight.shape[0],))
            op = w.operator(
                fb.BuiltinOperator.FULLY_CONNECTED,
                [x.tensor, w.constant(f"{out_name}/weight", weight), w.constant(f"{out_name}/bias", bias)],
                [out],
                fb.BuiltinOptions.FullyConnectedOptions,
                fb.FullyConnectedOptionsT(),
            )
            values[out_name] = _Value(out, "nc", (weight.shape[0],), op)
        elif node.op_type == "Conv":
            x = nhwc(x, out_name)
            kernel = inits.get(node.input[1])
            if (
                kernel is None
                or attrs.get("group", 1) != 1
                or any(d != 1 for d in attrs.get("dilations", [1, 1]))
            ):
                raise _unsupported(node, "only a constant-weight, group-1, undilated Conv is written")
            kh, kw = kernel.shape[2:]
            strides = attrs.get("strides", [1, 1])
            padding = _padding(node, attrs, (kh, kw), strides, fb)
            c, h, wd = x.shape
            oh, ow = (
                _out_size(h, kh, strides[0], padding == fb.Padding.SAME),
                _out_size(wd, kw, strides[1], padding == fb.Padding.SAME),
            )
            bias = (
                inits[node.input[2]].astype(np.float32)
                if len(node.input) > 2 and node.input[2]
                else np.zeros(kernel.shape[0], np.float32)
            )
            out = w.activation(out_name, (oh, ow, kernel.shape[0]))
            opts = fb.Conv2DOptionsT()
            opts.padding, opts.strideH, opts.strideW = padding, strides[0], strides[1]
            op = w.operator(
                fb.BuiltinOperator.CONV_2D,
                [
                    x.tensor,
                    w.constant(f"{out_name}/weight", kernel.transpose(0, 2, 3, 1).astype(np.float32)),
                    w.constant(f"{out_name}/bias", bias),
                ],
                [out],
                fb.BuiltinOptions.Conv2DOptions,
                opts,
            )
            values[out_name] = _Value(out, "nhwc", (kernel.shape[0], oh, ow), op)
        elif node.op_type == "MaxPool":
            x = nhwc(x, out_name)
            kh, kw = attrs["kernel_shape"]
            strides = attrs.get("strides", [1, 1])
            if attrs.get("ceil_mode", 0) or any(d != 1 for d in attrs.get("dilations", [1, 1])):
                raise _unsupported(node, "ceil_mode and dilations are not written")
            padding = _padding(node, attrs, (kh, kw), strides, fb)
            c, h, wd = x.shape
            oh, ow = (
                _out_size(h, kh, strides[0], padding == fb.Padding.SAME),
                _out_size(wd, kw, strides[1], padding == fb.Padding.SAME),
            )
            out = w.activation(out_name, (oh, ow, c))
            opts = fb.Pool2DOptionsT()
            opts.padding, opts.strideH, opts.strideW, opts.filterHeight, opts.filterWidth = (
                padding,
                strides[0],
                strides[1],
                kh,
                kw,
            )
            op = w.operator(
                fb.BuiltinOperator.MAX_POOL_2D, [x.tensor], [out], fb.BuiltinOptions.Pool2DOptions, opts
            )
            values[out_name] = _Value(out, "nhwc", (c, oh, ow), op)
        elif node.op_type == "Relu":
            fusable = (
                x.producer is not None
                and consumers[node.input[0]] == 1
                and node.input[0] not in (o.name for o in graph.output)
            )
            if fusable and w.fuse_relu(x.producer):
                values[out_name] = _Value(x.tensor, x.layout, x.shape, None)
            else:
                per_sample = x.shape if x.layout != "nhwc" else (x.shape[1], x.shape[2], x.shape[0])
                out = w.activation(out_name, per_sample)
                w.operator(fb.BuiltinOperator.RELU, [x.tensor], [out])
                values[out_name] = _Value(out, x.layout, x.shape, None)
        elif node.op_type == "Flatten":
            if attrs.get("axis", 1) != 1:
                raise _unsupported(node, "only Flatten(axis=1) is written")
            features = int(np.prod(x.shape))
            if x.layout == "nc":
                values[out_name] = x
            elif x.layout == "nhwc" and x.shape[0] != 1 and x.shape[1] * x.shape[2] != 1:
                c, h, wd = x.shape  # ONNX flattens C,H,W: bring the channels back in front first
                back = w.transpose(x, (0, 3, 1, 2), (c, h, wd), "nchw", f"{out_name}/to_nchw")
                values[out_name] = w.reshape(back, (features,), "nc", out_name)
            else:  # one channel, or 1x1 spatial: NHWC and NCHW orders are the same bytes
                values[out_name] = w.reshape(x, (features,), "nc", out_name)
            values[out_name].shape = (features,)
        elif node.op_type == "Identity":
            values[out_name] = x
        else:
            raise _unsupported(node, "this op is not written")
    result = values.get(graph.output[0].name)
    if result is None or result.layout != "nc":
        raise ModelError(
            f"the graph output '{graph.output[0].name}' is not a [N, classes] tensor the writer produced; "
            "fix: end the model with Gemm (logits)"
        )
    if result.tensor == graph_input:
        raise ModelError("the graph computes nothing (its output is its input); fix: export the real model")
    w.tensors[result.tensor].name = graph.output[0].name
    return w.to_bytes(
        [graph_input],
        [result.tensor],
        inputs[0].name,
        graph.output[0].name,
        f"mlperf_ext.zoo.tflite float writer ({graph.name})",
    )


def _out_size(size: int, kernel: int, stride: int, same: bool) -> int:
    return -(-size // stride) if same else (size - kernel) // stride + 1


def _padding(node, attrs: dict, kernel: tuple[int, int], strides: Sequence[int], fb) -> int:
    """TFLite's VALID for no padding, SAME for the symmetric k//2 padding of a stride-1 odd kernel."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if auto == "VALID" or (auto == "NOTSET" and not any(pads)):
        return fb.Padding.VALID
    same = [kernel[0] // 2, kernel[1] // 2] * 2
    if (
        (auto in ("SAME_UPPER", "SAME_LOWER") or pads == same)
        and all(s == 1 for s in strides)
        and all(k % 2 for k in kernel)
    ):
        return fb.Padding.SAME
    raise _unsupported(node, f"padding {pads} ({auto}) is neither VALID nor TFLite's SAME")


def static_batch(model: bytes, batch: int = 1) -> bytes:
    """The same model with every dynamic batch fixed to `batch` (shape signatures dropped, RESHAPE targets
    fixed): edgetpu_compiler refuses dynamic-sized tensors ("Attempting to use a delegate that only supports
    static-sized tensors", github.com/google-coral/edgetpu/issues/829)."""
    require_litert()
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytearray(model), 0))
    reshape = {
        i
        for i, code in enumerate(m.operatorCodes)
        if max(code.builtinCode, code.deprecatedBuiltinCode) == fb.BuiltinOperator.RESHAPE
    }
    for graph in m.subgraphs:
        for t in graph.tensors:
            if t.shapeSignature is not None and len(t.shapeSignature) and t.shapeSignature[0] == -1:
                t.shape = [batch, *list(t.shape)[1:]]
            t.shapeSignature = None
        for op in graph.operators:
            if op.opcodeIndex not in reshape:
                continue
            if op.builtinOptions is not None and op.builtinOptions.newShape is not None:
                op.builtinOptions.newShape = [
                    batch if d == -1 else int(d) for d in op.builtinOptions.newShape
                ]
            if len(op.inputs) > 1 and op.inputs[1] >= 0:
                buf = m.buffers[graph.tensors[op.inputs[1]].buffer]
                if buf.data is not None and len(buf.data):
                    dims = np.frombuffer(bytes(buf.data), np.int32).copy()
                    dims[dims == -1] = batch
                    buf.data = np.frombuffer(dims.tobytes(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


# ---------------------------------------------------------------------------------------------- quantization


def quantize_int8(float_model: bytes, calibration: np.ndarray, input_name: str, threads: int = 2) -> bytes:
    """Full-integer INT8 (weights per channel, activations, input and output int8; int32 biases) with
    ai-edge-quantizer's static_wi8_ai8 recipe, min/max-calibrated on `calibration` in batches."""
    quantizer, recipe = require_quantizer()
    batches = [
        {input_name: np.ascontiguousarray(calibration[i : i + CALIBRATION_BATCH], dtype=np.float32)}
        for i in range(0, len(calibration), CALIBRATION_BATCH)
    ]
    quiet = (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()))
    with warnings.catch_warnings(), quiet[0], quiet[1]:  # its report and progress bar
        # the calibrator keeps all tensors on purpose (a UserWarning says that is for debugging)
        warnings.simplefilter("ignore", UserWarning)
        qt = quantizer.Quantizer(bytearray(float_model))
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
        qsvs = qt.calibrate({"serving_default": batches}, num_threads=threads)
        result = qt.quantize(qsvs, enable_progress_report=False)
    data = bytes(result.quantized_model)
    facts = tflite_facts(data)
    floating = {t: n for t, n in facts["tensor_types"].items() if t.startswith("float")}
    if floating or any(op in facts["ops"] for op in ("QUANTIZE", "DEQUANTIZE")):
        raise ModelError(
            f"the quantized model is not full-integer (float tensors {floating}, ops {facts['ops']}); "
            "fix: this is a zoo bug, report it with the model name"
        )
    return data


QUANTIZER_RECIPE = (
    "ai_edge_quantizer.recipe.static_wi8_ai8() (MIN_MAX_UNIFORM_QUANT): int8 per-channel weights, "
    "int8 activations, int8 input/output, int32 biases"
)


# ---------------------------------------------------------------------------------------------- the family


def _top1(logits: np.ndarray) -> np.ndarray:
    return np.asarray(logits).argmax(axis=1)


def _held_out_and_calibration(
    meta_fp32: dict, meta_int8: dict, dataset: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibration samples, x_test, y_test) from the source variants' own split and calibration records."""
    from mlperf_ext.datasets.mnist import cnv_input, mlp_input, mnist_split

    layouts = {"mnist": mlp_input, "mnist32": cnv_input}
    if dataset not in layouts:
        raise ModelError(
            f"no TFLite calibration data for dataset '{dataset}' (knows {', '.join(layouts)}); "
            "fix: convert models of the MLP or CNV family"
        )
    split = meta_fp32.get("split", {})
    x_train, _y_train, x_test, y_test = mnist_split(
        seed=split.get("seed", 0), test_fraction=split.get("test_fraction", 0.2)
    )
    to_input = layouts[dataset]
    samples = int((meta_int8.get("producer") or {}).get("calibration_samples") or 256)
    return to_input(x_train)[:samples], to_input(x_test), y_test


@dataclass
class TfliteFamily:
    """`<source>-tflite` for every INT8 variant of the source families (objects with `list_models()` and
    `build(info, models_dir, progress, force)`, as mlperf_ext.zoo.mlp.MlpFamily and cnv.CnvFamily)."""

    sources: Sequence[Any] = field(default_factory=tuple)
    prefix: str = "tflite"  # the registry's family name
    threads: int = 2  # LiteRT/ORT threads for the measurements

    def _pairs(self) -> list[tuple[Any, ModelInfo]]:
        return [(src, info) for src in self.sources for info in src.list_models() if info.precision == "int8"]

    def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=info.name + SUFFIX,
                family=f"{info.family}{SUFFIX}",
                architecture=info.architecture,
                pruning=info.pruning,
                precision="int8",
                dataset=info.dataset,
                description=f"{info.description}; full-integer INT8 TFLite (LiteRT CPU, Edge TPU after "
                "edgetpu_compiler)",
            )
            for _src, info in self._pairs()
        ]

    def _source(self, info: ModelInfo) -> tuple[Any, ModelInfo, ModelInfo]:
        for src, int8 in self._pairs():
            if int8.name + SUFFIX == info.name:
                fp32_name = int8.name.removesuffix("-int8") + "-fp32"
                fp32 = next((i for i in src.list_models() if i.name == fp32_name), None)
                if fp32 is None:
                    raise ModelError(
                        f"{int8.name} has no FP32 twin {fp32_name} to convert; fix: this is a zoo bug"
                    )
                return src, int8, fp32
        raise ModelError(
            f"{info.name} is not a TFLite twin of this family's sources; fix: use one of "
            f"{', '.join(i.name for i in self.list_models())}"
        )

    def artifact_path(self, info: ModelInfo, models_dir: Path) -> Path:
        return Path(models_dir) / f"{info.name}.tflite"

    def build(
        self, info: ModelInfo, models_dir: Path, progress: Progress | None = None, force: bool = False
    ) -> Path:
        """Build (or reuse) the source variants, write, check, quantize, measure and store `info`."""
        require_litert()
        require_quantizer()
        say = progress or (lambda _m: None)
        models_dir = Path(models_dir)
        src, int8, fp32 = self._source(info)
        fp32_path = src.build(fp32, models_dir, progress, False)
        int8_path = src.build(int8, models_dir, progress, False)
        meta_fp32, meta_int8 = read_metadata(fp32_path) or {}, read_metadata(int8_path) or {}
        versions = tool_versions()
        recipe = (
            f"{self.prefix}/{meta_int8.get('recipe')}/{sha256_file(fp32_path)[:12]}/"
            f"litert{versions['ai-edge-litert']}-aeq{versions['ai-edge-quantizer']}/code{CODE_VERSION}"
        )
        path = self.artifact_path(info, models_dir)
        if not force and is_current(path, recipe):
            say(f"{info.name}: cached")
            return path
        start = time.perf_counter()
        calib, x_test, y_test = _held_out_and_calibration(meta_fp32, meta_int8, info.dataset or "")
        fp32_model = onnx.load(str(fp32_path))
        say(f"{info.name}: writing the float TFLite graph of {fp32.name}")
        float_bytes = float_tflite(fp32_model)
        float_check = self._check_float(float_bytes, fp32_path, x_test, info.name)
        say(f"{info.name}: full-integer INT8 quantization ({len(calib)} calibration samples)")
        data = quantize_int8(float_bytes, calib, fp32_model.graph.input[0].name, self.threads)
        figures, tensors = self._measure(data, fp32_path, int8_path, x_test, y_test)
        meta = {
            **info.to_dict(),
            "format": "tflite",
            "producer": {
                "tool": "mlperf_ext.zoo.tflite (float writer) + ai-edge-quantizer "
                f"{versions['ai-edge-quantizer']}",
                "recipe": QUANTIZER_RECIPE,
                "method": "PTQ",
                "weights": "int8 per-channel",
                "activations": "int8",
                "weight_bits": 8,
                "activation_bits": 8,
                "block_size": None,
                "calibration_samples": int(len(calib)),
                "calibration_source": "training split (the samples the ONNX INT8 variant was calibrated on)",
            },
            "source": {
                "fp32": fp32.name,
                "fp32_sha256": meta_fp32.get("sha256"),
                "int8": int8.name,
                "int8_sha256": meta_int8.get("sha256"),
            },
            "params": meta_fp32.get("params"),
            "split": meta_fp32.get("split"),
            **figures,
            "float_check": float_check,
            "recipe": recipe,
            "input": {**(meta_fp32.get("input") or {}), "tflite": tensors["input"]},
            "output": {**(meta_fp32.get("output") or {}), "tflite": tensors["output"]},
            "tflite": tflite_facts(data),
            "versions": {**(meta_fp32.get("versions") or {}), **versions},
            "build_time_s": round(time.perf_counter() - start, 3),
        }
        write_artifact(data, path, meta)
        say(
            f"{info.name}: top-1 {meta['accuracy']:.4f}, top-1 agreement with {int8.name} "
            f"{meta['agreement']['onnx_int8']:.4f}"
        )
        return path

    def _check_float(self, float_bytes: bytes, fp32_path: Path, x: np.ndarray, name: str) -> dict:
        from mlperf_ext.zoo.evaluate import ort_logits

        expected = ort_logits(fp32_path, x, self.threads)
        got = litert_logits(float_bytes, x, self.threads)
        diff = float(np.abs(got - expected).max())
        tol = FLOAT_TOLERANCE * max(1.0, float(np.abs(expected).max()))
        disagree = float((_top1(got) != _top1(expected)).mean())
        if diff > tol or disagree > FLOAT_TOP1_SLACK:
            raise ModelError(
                f"{name}: the float TFLite graph differs from ONNX Runtime's FP32 output (max |diff| "
                f"{diff:.3g}, top-1 differs on {100 * disagree:.1f} %); fix: this is a zoo bug, report it"
            )
        return {
            "max_abs_diff_vs_onnx_fp32": diff,
            "tolerance": tol,
            "top1_disagreement": disagree,
            "samples": int(len(x)),
        }

    def _measure(
        self, data: bytes, fp32_path: Path, int8_path: Path, x: np.ndarray, y: np.ndarray
    ) -> tuple[dict, dict]:
        """The INT8 model's held-out figures, and its input/output tensors' types and quantization."""
        from ai_edge_litert.interpreter import Interpreter

        from mlperf_ext.zoo.evaluate import ort_logits

        got = litert_logits(data, x, self.threads)
        onnx_int8, onnx_fp32 = ort_logits(int8_path, x, self.threads), ort_logits(fp32_path, x, self.threads)
        interpreter = Interpreter(model_content=data)
        versions = tool_versions()
        figures = {
            "accuracy": float((_top1(got) == y).mean()),
            "accuracy_detail": {
                "metric": "top-1",
                "samples": int(len(x)),
                "split": "held-out test",
                "measured_with": f"ai-edge-litert {versions['ai-edge-litert']} CPU interpreter "
                "(default XNNPACK delegate), input quantized on the host",
            },
            "accuracy_reason": None,
            "agreement": {
                "onnx_int8": float((_top1(got) == _top1(onnx_int8)).mean()),
                "onnx_fp32": float((_top1(got) == _top1(onnx_fp32)).mean()),
                "onnx_int8_accuracy": float((_top1(onnx_int8) == y).mean()),
                "onnx_fp32_accuracy": float((_top1(onnx_fp32) == y).mean()),
                "max_abs_logit_diff_vs_onnx_int8": float(np.abs(got - onnx_int8).max()),
                "samples": int(len(x)),
                "metric": "fraction of held-out samples with the same top-1",
                "onnx_measured_with": "onnxruntime CPUExecutionProvider",
            },
        }
        tensors = {
            "input": TensorQuant.of(interpreter.get_input_details()[0]).to_dict(),
            "output": TensorQuant.of(interpreter.get_output_details()[0]).to_dict(),
        }
        return figures, tensors


def _default_family() -> TfliteFamily:
    from mlperf_ext.zoo import cnv, mlp

    return TfliteFamily(sources=(mlp.DEFAULT_FAMILY, cnv.DEFAULT_FAMILY))


DEFAULT_FAMILY = _default_family()


def register(family: TfliteFamily) -> None:
    register_family(family.prefix, family.list_models, family.build, suffix=".tflite")


register(DEFAULT_FAMILY)


# ---------------------------------------------------------------------------------------------- command line


def summary_rows(paths: Sequence[Path]) -> list[dict]:
    """One row per built TFLite variant: accuracy, the ONNX INT8/FP32 references and the agreement."""
    rows = []
    for path in paths:
        meta = read_metadata(path) or {}
        agree = meta.get("agreement", {})
        rows.append(
            {
                "name": meta.get("name", path.stem),
                "tflite_top1": meta.get("accuracy"),
                "onnx_int8_top1": agree.get("onnx_int8_accuracy"),
                "onnx_fp32_top1": agree.get("onnx_fp32_accuracy"),
                "agreement_int8": agree.get("onnx_int8"),
                "agreement_fp32": agree.get("onnx_fp32"),
                "size_bytes": meta.get("size_bytes"),
                "build_time_s": meta.get("build_time_s"),
            }
        )
    return rows


def main(argv: list[str] | None = None, say: Callable[[str], None] = print) -> int:
    from mlperf_ext.zoo import registry

    ap = argparse.ArgumentParser(
        description="build the zoo's full-integer INT8 TFLite variants and print their "
        "accuracy and agreement with the ONNX variants"
    )
    ap.add_argument("models_dir", type=Path)
    ap.add_argument("names", nargs="*", help="e.g. mlp-w256-int8-tflite (default: every MLP one)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument(
        "--static-batch",
        type=int,
        default=None,
        metavar="N",
        help="also write <name>-bN.tflite with the batch fixed to N (for edgetpu_compiler: N=1)",
    )
    args = ap.parse_args(argv)
    names = args.names or [i.name for i in DEFAULT_FAMILY.list_models() if i.family == f"mlp{SUFFIX}"]
    paths = registry.build(names, args.models_dir, progress=say, force=args.force)
    say(json.dumps(summary_rows(paths), indent=1))
    for path in paths if args.static_batch else ():
        target = path.with_name(f"{path.stem}-b{args.static_batch}.tflite")
        meta = dict(
            read_metadata(path) or {},
            name=target.stem,
            static_batch=args.static_batch,
            source_tflite=path.name,
        )
        for key in ("sha256", "size_bytes"):
            meta.pop(key, None)
        write_artifact(static_batch(path.read_bytes(), args.static_batch), target, meta)
        say(f"{target}: batch fixed to {args.static_batch}; compile it with `edgetpu_compiler {target.name}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
