"""Level-0 graph analysis: ops, parameters, weight bytes and activations of an ONNX graph.

Why: the theoretical tier predicts throughput from these counts alone, so the rules must be explicit
and reproducible; they are listed in docs/level0.md and summarised here.

Op-count rules (ops = 2 per multiply-accumulate for the linear layers, QuTiBench convention):

* Conv / ConvInteger / QLinearConv: ``2 · N · Cout · Hout · Wout · (Cin/group) · Kh · Kw`` (grouped and
  depthwise convolutions through ``Cin/group``); bias adds are not counted.
* ConvTranspose: ``2 · N · Cin · prod(in spatial) · (Cout/group) · prod(kernel)``.
* Gemm / MatMul / MatMulInteger / QLinearMatMul / MatMulNBits: ``2 · prod(output) · K``.
* Elementwise and activations: 1 op per output element (transcendentals included).
* MaxPool / AveragePool: ``prod(kernel)`` ops per output element; global pooling and reductions: 1 op
  per input element.
* BatchNormalization: 2 per element (scale and shift with folded per-channel constants);
  Layer/Instance/Group normalisation: 5 per element (mean, variance, normalise, scale, shift);
  Softmax / LogSoftmax: 3 per element (exp, sum, divide); LRN: ``2·size + 2`` per element.
* Data movement and quantisation markers (Reshape, Transpose, Concat, Q/DQ, Cast, ...): 0. Q/DQ carry
  the datatype, not work, so a QDQ-INT8 graph has the same ops as its FP32 source.
* Any other op, or a covered op whose shapes shape inference could not give: 0, and its type is listed
  in ``GraphAnalysis.unsupported``.

Weights are the constant tensors the graph stores (initializers, Constant, ConstantOfShape and what
folds from them). Parameters count weight elements (int64 shape tensors and Q/DQ scales / zero points
excluded); weight bytes count what is stored, at the stored datatype (INT4 packed two per byte,
MatMulNBits by its packed blob), scales and zero points included. Each constant is attributed once, to
its first consumer that is not itself constant-folded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto, shape_inference

from mlperf_ext.errors import ModelError
from mlperf_ext.zoo.metadata import sha256_file

#: bits per element of each stored ONNX datatype
_DTYPE_BITS = {
    TensorProto.FLOAT: 32, TensorProto.DOUBLE: 64, TensorProto.FLOAT16: 16, TensorProto.BFLOAT16: 16,
    TensorProto.INT8: 8, TensorProto.UINT8: 8, TensorProto.INT16: 16, TensorProto.UINT16: 16,
    TensorProto.INT32: 32, TensorProto.UINT32: 32, TensorProto.INT64: 64, TensorProto.UINT64: 64,
    TensorProto.BOOL: 8,
}
for _name, _bits in (("INT4", 4), ("UINT4", 4), ("FLOAT8E4M3FN", 8), ("FLOAT8E5M2", 8), ("INT2", 2), ("UINT2", 2)):
    if hasattr(TensorProto, _name):
        _DTYPE_BITS[getattr(TensorProto, _name)] = _bits

#: precision name (as used across the project) of a stored weight datatype
_DTYPE_PRECISION = {
    TensorProto.FLOAT: "fp32", TensorProto.DOUBLE: "fp64", TensorProto.FLOAT16: "fp16",
    TensorProto.BFLOAT16: "bf16", TensorProto.INT8: "int8", TensorProto.UINT8: "int8",
    TensorProto.INT32: "int32",
}
for _name, _prec in (("INT4", "int4"), ("UINT4", "int4"), ("INT2", "int2"), ("UINT2", "int2"),
                     ("FLOAT8E4M3FN", "fp8"), ("FLOAT8E5M2", "fp8")):
    if hasattr(TensorProto, _name):
        _DTYPE_PRECISION[getattr(TensorProto, _name)] = _prec

#: bits per element of each precision name, for hypothetical variants of a graph
PRECISION_BITS = {"int2": 2, "int4": 4, "int8": 8, "fp8": 8, "fp16": 16, "bf16": 16, "fp32": 32, "tf32": 32, "fp64": 64}  # tf32 is stored in 32 bits

_ZERO_OPS = {
    "Identity", "Constant", "ConstantOfShape", "Shape", "Size", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
    "Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "Pad", "Cast", "CastLike", "Dropout",
    "Expand", "Tile", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "NonZero", "Range",
    "DepthToSpace", "SpaceToDepth",
}
_ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Abs",
    "Neg", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Clip",
    "Erf", "Gelu", "Softplus", "Softsign", "Mish", "Sign", "Floor", "Ceil", "Round", "Where", "Equal", "Less",
    "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "Mod", "Celu", "ThresholdedRelu",
    "Sin", "Cos", "QuickGelu", "CumSum",  # a running sum: one add per output element
}
_REDUCE = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum", "ReduceMax",
           "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp", "ArgMax",
           "ArgMin"}
_NORM5 = {"LayerNormalization", "InstanceNormalization", "GroupNormalization", "SimplifiedLayerNormalization",
          "SkipLayerNormalization"}
#: inputs of Q/DQ-style nodes that are quantisation metadata, not weights: op -> input indices
_QPARAM_INPUTS = {
    "QuantizeLinear": {1, 2}, "DequantizeLinear": {1, 2}, "QLinearConv": {1, 2, 4, 5, 6, 7},
    "QLinearMatMul": {1, 2, 4, 5, 6, 7}, "MatMulInteger": {2, 3}, "ConvInteger": {2, 3},
    "MatMulNBits": {2, 3, 4},
}

#: ops whose count is 2 per multiply-accumulate
MAC_OPS = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger",
           "QLinearMatMul", "FusedMatMul", "MatMulNBits"}

#: inputs that carry shapes, axes or sizes (not weights): op -> input indices
_SHAPE_INPUTS = {"ConstantOfShape": {0}, "Reshape": {1}, "Expand": {1}, "Tile": {1}, "Slice": {1, 2, 3, 4},
                 "Pad": {1}, "Resize": {1, 2, 3}, "Squeeze": {1}, "Unsqueeze": {1}, "Split": {1}}


@dataclass
class NodeCost:
    """Level-0 costs of one node (at the analysed batch)."""

    name: str
    op_type: str
    ops: int
    params: int
    weight_bytes: float
    weight_dtypes: dict[str, int] = field(default_factory=dict)  # precision -> parameter elements
    activation_elements: int = 0


@dataclass
class GraphAnalysis:
    """Totals and per-node costs of one ONNX graph; totals are per input (batch 1)."""

    model: str
    analysed_batch: int
    nodes: list[NodeCost]
    ops: int  # per input
    mac_ops: int  # per input, Conv/Gemm/MatMul only (what published "GOPs" tables usually count)
    params: int
    weight_bytes: float
    activation_elements: int  # per input: graph inputs + every node output
    stored_precision: str
    weight_dtypes: dict[str, int]
    unsupported: list[str]

    def weight_bytes_at(self, precision: str | None = None) -> float:
        """Weight bytes as stored, or for a hypothetical variant at ``precision`` (params × bits / 8)."""
        if precision is None or precision == self.stored_precision:
            return self.weight_bytes
        return self.params * precision_bits(precision) / 8

    def operational_intensity(self, precision: str | None = None, batch: int = 1) -> float:
        """OI = batch · ops / weight bytes (weights read once per batch, activations on chip)."""
        wb = self.weight_bytes_at(precision)
        return math.inf if wb == 0 else batch * self.ops / wb

    def summary(self) -> dict:
        return {"model": self.model, "ops_g": self.ops / 1e9, "mac_ops_g": self.mac_ops / 1e9, "params_m": self.params / 1e6,
                "weight_mb": self.weight_bytes / 1e6, "activations_m": self.activation_elements / 1e6,
                "stored_precision": self.stored_precision, "unsupported": self.unsupported}


def precision_bits(precision: str) -> int:
    try:
        return PRECISION_BITS[precision.lower()]
    except KeyError:
        raise ModelError(f"unknown precision '{precision}'; fix: use one of {sorted(PRECISION_BITS)}") from None


def _dims(vi: onnx.ValueInfoProto | None) -> list[int] | None:
    if vi is None or not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    out = []
    for d in vi.type.tensor_type.shape.dim:
        if not d.HasField("dim_value"):
            return None
        out.append(d.dim_value)
    return out


def _prod(xs: Iterable[int]) -> int:
    return math.prod(int(x) for x in xs)


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _fix_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace a symbolic or zero leading dim of every graph input by 1 (dynamic batch → batch 1)."""
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits or not inp.type.HasField("tensor_type"):
            continue
        dims = inp.type.tensor_type.shape.dim
        if dims and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0):
            dims[0].Clear()
            dims[0].dim_value = 1
    return model


#: model formats that are no ONNX graph; their metadata names the ONNX graph level 0 counts for them
NON_ONNX_SUFFIXES = (".tflite", ".pt2")


def onnx_source(path: Path) -> Path:
    """The ONNX graph level 0 counts for a file: the file itself; for a TFLite or torch.export file, the ONNX
    model its metadata names with that file's sha256 (`source.onnx`, or for a zoo TFLite variant the ONNX INT8
    variant it was converted from, `source.int8`: same layers, same weights)."""
    if path.suffix not in NON_ONNX_SUFFIXES:
        return path
    meta_path = path.with_suffix(".json")
    try:
        source = json.loads(meta_path.read_text())["source"]
        key = "onnx" if "onnx" in source else "int8"
        onnx_path = path.parent / f"{source[key]}.onnx"
        expected = source.get(f"{key}_sha256")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"level 0 reads ONNX graphs, and '{path}' names no ONNX source in {meta_path.name} ({exc}); "
                         "fix: analyse the ONNX model it was converted from") from exc
    if not onnx_path.is_file() or sha256_file(onnx_path) != expected:
        raise ModelError(f"the ONNX source of '{path}' ({onnx_path.name}) is missing or not the file it was "
                         f"converted from; fix: rebuild {path.name} from it (mlperf-ext models build {path.stem} for a "
                         "zoo variant)")
    return onnx_path


def _load(model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "<graph>"
    path = onnx_source(Path(model))
    if not path.is_file():
        raise ModelError(f"ONNX model '{path}' not found; fix: pass an existing .onnx file")
    try:
        return onnx.load(str(path)), path.stem
    except Exception as exc:  # onnx raises DecodeError and others for corrupt files
        raise ModelError(f"cannot read ONNX model '{path}' ({exc}); fix: re-export the model") from exc


class _Tensors:
    """Shapes, dtypes and constness of every tensor name in an inferred graph."""

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.info: dict[str, onnx.ValueInfoProto] = {}
        # the graph's declared inputs and outputs win over value_info: a cut model may carry a stale
        # value_info entry for a tensor that became its input or output
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            self.info[vi.name] = vi
        self.init = {t.name: t for t in g.initializer}
        self.const_sources: dict[str, set[str]] = {n: {n} for n in self.init}
        self.source_shape: dict[str, list[int]] = {t.name: list(t.dims) for t in g.initializer}
        self.source_dtype: dict[str, int] = {t.name: t.data_type for t in g.initializer}

    def shape(self, name: str) -> list[int] | None:
        if name in self.init:
            return list(self.init[name].dims)
        return _dims(self.info.get(name))

    def elements(self, name: str) -> int:
        s = self.shape(name)
        return _prod(s) if s is not None else 0


def _node_ops(node: onnx.NodeProto, t: _Tensors) -> int | None:
    """Ops of one node by the rules in the module docstring; None when the op is not covered."""
    op = node.op_type
    out = t.shape(node.output[0]) if node.output else None
    out_n = _prod(out) if out is not None else 0
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w_idx = 3 if op == "QLinearConv" else 1
        w = t.shape(node.input[w_idx])
        if out is None or w is None:
            return None
        return 2 * out_n * _prod(w[1:])  # w = [Cout, Cin/group, k...]; out carries N·Cout·spatial
    if op == "ConvTranspose":
        x, w = t.shape(node.input[0]), t.shape(node.input[1])
        if x is None or w is None:
            return None
        return 2 * _prod(x) * w[1] * _prod(w[2:])  # x = [N, Cin, ...]; w = [Cin, Cout/group, k...]
    if op in ("Gemm",):
        a = t.shape(node.input[0])
        if out is None or a is None:
            return None
        k = a[0] if _attr(node, "transA", 0) else a[-1]
        return 2 * out_n * k
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul"):
        a = t.shape(node.input[0])
        if out is None or a is None:
            return None
        return 2 * out_n * a[-1]
    if op == "MatMulNBits":
        k, n = int(_attr(node, "K")), int(_attr(node, "N"))
        if out is None:  # ONNX shape inference does not know this com.microsoft op: output is A[..., :K] -> N
            a = t.shape(node.input[0])
            if a is None:
                return None
            return 2 * _prod(a[:-1]) * n * k
        return 2 * out_n * k
    if op in _ZERO_OPS:
        return 0
    if op in _REDUCE:
        return t.elements(node.input[0]) if t.shape(node.input[0]) is not None else None
    if out is None:  # every rule below counts per output element: unknown shape = not counted, listed
        return None
    if op in _ELEMENTWISE:
        return out_n
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return out_n * _prod(_attr(node, "kernel_shape", [1]))
    if op == "BatchNormalization":
        return 2 * out_n
    if op in _NORM5:
        return 5 * out_n
    if op in ("Softmax", "LogSoftmax"):
        return 3 * out_n
    if op == "LRN":
        return (2 * int(_attr(node, "size", 1)) + 2) * out_n
    return None


def _contrib_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference stops at ONNX Runtime's contrib ops (MatMulNBits...); ORT's symbolic shape
    inference knows them, so every later node keeps its shapes (and its op count)."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # noqa: BLE001 - keep ONNX's partial shapes; the nodes left are listed as unsupported
        return model


def analyze(model: str | Path | onnx.ModelProto) -> GraphAnalysis:
    """Count ops, parameters, weight bytes and activations of an ONNX graph, per node and per input.

    A dynamic batch is analysed at batch 1; a fixed batch B is analysed as stored and totals divided by B.
    """
    proto, label = _load(model)
    proto = onnx.ModelProto.FromString(proto.SerializeToString())  # never mutate the caller's model
    _fix_batch(proto)
    try:
        inferred = shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as exc:
        raise ModelError(f"shape inference failed for '{label}' ({exc}); fix: run onnx.checker on the model") from exc
    if any(n.domain == "com.microsoft" for n in inferred.graph.node):
        inferred = _contrib_shapes(inferred)
    g = inferred.graph
    t = _Tensors(inferred)
    inits = set(t.init)
    real_inputs = [i for i in g.input if i.name not in inits]
    batch = 1
    if real_inputs:
        s = t.shape(real_inputs[0].name)
        if s:
            batch = max(int(s[0]), 1)

    nodes: list[NodeCost] = []
    attributed: set[str] = set()
    unsupported: set[str] = set()
    role: dict[str, str] = {}  # source constant -> "weight" | "qparam" | "shape"

    def mark(src: set[str], kind: str) -> None:
        for s in src:
            if role.get(s) != "weight":
                role[s] = kind

    for node in g.node:
        in_const = [name in t.const_sources for name in node.input if name]
        # ConstantOfShape of a runtime shape (a transformer's mask or positions) is an activation, not a weight
        if node.op_type == "Constant" or (in_const and all(in_const)):
            # constant-folded: its outputs are constants made from the union of its inputs' sources
            srcs = set().union(*(t.const_sources[n] for n in node.input if n)) if in_const else set()
            qidx = _QPARAM_INPUTS.get(node.op_type, set())
            sidx = _SHAPE_INPUTS.get(node.op_type, set())
            for i, n in enumerate(node.input):
                if n and i in qidx:
                    mark(t.const_sources[n], "qparam")
                elif n and i in sidx:
                    mark(t.const_sources[n], "shape")
            for o in node.output:
                if node.op_type in ("Constant", "ConstantOfShape"):
                    t.const_sources[o] = {o}
                    shape = t.shape(o)
                    if node.op_type == "Constant":
                        val = _attr(node, "value")
                        shape = list(val.dims) if isinstance(val, TensorProto) else (shape or [])
                        t.source_dtype[o] = val.data_type if isinstance(val, TensorProto) else TensorProto.FLOAT
                    else:
                        val = _attr(node, "value")
                        t.source_dtype[o] = val.data_type if isinstance(val, TensorProto) else TensorProto.FLOAT
                    t.source_shape[o] = shape or []
                else:
                    t.const_sources[o] = set(srcs)
            continue

        qidx = _QPARAM_INPUTS.get(node.op_type, set())
        shape_inputs = _SHAPE_INPUTS.get(node.op_type, set())
        params = 0
        wbytes = 0.0
        dtypes: dict[str, int] = {}
        for i, n in enumerate(node.input):
            if not n or n not in t.const_sources:
                continue
            kind = "qparam" if i in qidx else "shape" if i in shape_inputs else "weight"
            for s in t.const_sources[n]:
                if s in attributed:
                    continue
                attributed.add(s)
                dt = t.source_dtype.get(s, TensorProto.FLOAT)
                r = role.get(s, kind) if kind == "weight" else kind  # folded q-params/shapes keep their role
                if dt == TensorProto.INT64 or r == "shape":
                    continue
                elems = _prod(t.source_shape.get(s, []))
                if node.op_type == "MatMulNBits" and i == 1:
                    logical = int(_attr(node, "K")) * int(_attr(node, "N"))
                    bits = int(_attr(node, "bits", 4))
                    params += logical
                    wbytes += elems  # packed uint8 blob as stored
                    prec = f"int{bits}"
                    dtypes[prec] = dtypes.get(prec, 0) + logical
                    continue
                wbytes += elems * _DTYPE_BITS.get(dt, 32) / 8
                if r == "weight" and kind == "weight":
                    params += elems
                    prec = _DTYPE_PRECISION.get(dt, "fp32")
                    dtypes[prec] = dtypes.get(prec, 0) + elems
        ops = _node_ops(node, t)
        if ops is None:
            unsupported.add(node.op_type)
            ops = 0
        act = sum(t.elements(o) for o in node.output if o)
        nodes.append(NodeCost(node.name or f"{node.op_type}_{len(nodes)}", node.op_type, int(ops), params,
                              wbytes, dtypes, act))

    weight_dtypes: dict[str, int] = {}
    for n in nodes:
        for k, v in n.weight_dtypes.items():
            weight_dtypes[k] = weight_dtypes.get(k, 0) + v
    # a quantised graph keeps a few int32 biases; they are not its precision
    prec_votes = {k: v for k, v in weight_dtypes.items() if k != "int32"} or weight_dtypes
    stored = max(prec_votes, key=prec_votes.get) if prec_votes else "fp32"
    in_elems = sum(t.elements(i.name) for i in real_inputs)
    return GraphAnalysis(
        model=label, analysed_batch=batch, nodes=nodes,
        ops=sum(n.ops for n in nodes) // batch,
        mac_ops=sum(n.ops for n in nodes if n.op_type in MAC_OPS) // batch,
        params=sum(n.params for n in nodes),
        weight_bytes=sum(n.weight_bytes for n in nodes),
        activation_elements=(in_elems + sum(n.activation_elements for n in nodes)) // batch,
        stored_precision=stored, weight_dtypes=weight_dtypes, unsupported=sorted(unsupported),
    )


@dataclass
class OnnxToolComparison:
    """Per op type: our ops vs onnx-tool's (2 × its MACs), and the totals of both."""

    model: str
    by_op: dict[str, tuple[int, int]]  # op_type -> (ours, onnx-tool)
    ops_ours: int
    ops_onnx_tool: int
    params_ours: int
    params_onnx_tool: int


def compare_with_onnx_tool(path: str | Path) -> OnnxToolComparison:
    """Profile the same graph with onnx-tool (optional dependency) and put its counts beside ours.

    onnx-tool counts 1 MAC per non-linear instruction and bias adds in Conv/Gemm, and its parameters are
    initializers only (see docs/level0.md), so differences are expected outside Conv/Gemm/MatMul.
    """
    try:
        import onnx_tool
    except ImportError:
        from mlperf_ext.errors import BackendUnavailable
        raise BackendUnavailable("onnx-tool", "test", "cross-check needs onnx-tool") from None
    ours = analyze(path)
    import numpy as np

    m = onnx_tool.Model(str(path))
    proto = _fix_batch(onnx.load(str(path), load_external_data=False))
    inits = {i.name for i in proto.graph.initializer}
    feeds = {}
    for inp in proto.graph.input:
        dims = _dims(inp)
        if inp.name not in inits and dims is not None:
            dt = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
            feeds[inp.name] = np.zeros(dims, dtype=dt)
    m.graph.shape_infer(feeds or None)
    m.graph.profile()
    by_op: dict[str, list[int]] = {}
    for node in ours.nodes:
        by_op.setdefault(node.op_type, [0, 0])[0] += node.ops
    for node in m.graph.nodemap.values():
        macs = node.macs[0] if isinstance(node.macs, (list, tuple)) else node.macs
        by_op.setdefault(node.op_type, [0, 0])[1] += int(2 * macs)
    b = ours.analysed_batch
    return OnnxToolComparison(
        model=ours.model, by_op={k: (v[0] // b, v[1] // b) for k, v in sorted(by_op.items()) if any(v)},
        ops_ours=ours.ops, ops_onnx_tool=int(2 * m.graph.macs[0]) // b,
        params_ours=ours.params, params_onnx_tool=int(m.graph.params))
