"""The model cuts are taken from: loaded once, shape-inferred, every node named, its tensors indexed.

Why: every cut reads the shapes and dtypes of its boundary tensors from the source's inferred value_info,
so inference runs once per source instead of once per cut, and a cut's tensors keep the source's
symbolic dimensions (a dynamic batch stays dynamic). Nodes without a name get ``<op>_<index>`` (their
position in the graph), so every layer, cut and skip can name the nodes it came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, shape_inference

from mlperf_ext.errors import ModelError

#: nodes that compute tensor shapes from an activation (their output does not depend on its values)
SHAPE_OPS = frozenset({"Shape", "Size"})


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a cut: its name, shape (None for a dynamic dimension) and numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    elem_type: int  # the ONNX TensorProto data type

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        """The shape with a dynamic leading dimension set to ``batch``.

        A fixed leading dimension must equal ``batch``; any other dynamic dimension cannot be guessed.
        """
        dims = list(self.shape)
        if not dims:
            return ()
        if dims[0] is None:
            dims[0] = batch
        elif dims[0] != batch:
            raise ModelError(f"tensor '{self.name}' has a fixed batch of {dims[0]}, not {batch}; "
                             "fix: use that batch, or export the model with a dynamic batch dimension")
        if any(d is None for d in dims):
            raise ModelError(f"tensor '{self.name}' has a dynamic dimension other than the batch "
                             f"({self.shape}); fix: export the model with fixed non-batch dimensions")
        return tuple(int(d) for d in dims)

    def nbytes(self, batch: int = 1) -> int:
        """Bytes of this tensor at ``batch``."""
        return int(np.prod(self.concrete_shape(batch), dtype=np.int64)) * self.dtype.itemsize


def tensor_spec(vi: onnx.ValueInfoProto) -> TensorSpec | None:
    """The spec of a value_info, or None when its type or shape is not known."""
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    elem = vi.type.tensor_type.elem_type
    if elem == onnx.TensorProto.UNDEFINED:
        return None
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)
    return TensorSpec(vi.name, dims, np.dtype(helper.tensor_dtype_to_np_dtype(elem)), elem)


def _infer(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """ONNX shape inference, then ONNX Runtime's symbolic inference where contrib ops (MatMulNBits...) stop
    ONNX's, as tiers/level0/graph.py does. A tensor left without a shape makes the cuts that need it skips."""
    try:
        inferred = shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and others
        raise ModelError(f"shape inference failed for '{label}' ({exc}); fix: run onnx.checker on the model") from exc
    if any(n.domain == "com.microsoft" for n in inferred.graph.node):
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        try:
            inferred = SymbolicShapeInference.infer_shapes(inferred, auto_merge=True)
        except Exception:  # noqa: BLE001 - ONNX's shapes stay; cuts needing a missing one are recorded skips
            pass
    return inferred


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed (or duplicate-named) node the name ``<op>_<index>``."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


class SourceGraph:
    """A shape-inferred copy of the source model with the producer, consumers and spec of every tensor."""

    def __init__(self, model: onnx.ModelProto, name: str, sha256: str):
        self.name = name
        self.sha256 = sha256
        self.model = model
        g = model.graph
        self.nodes: list[onnx.NodeProto] = list(g.node)
        self.initializers: set[str] = {t.name for t in g.initializer}
        self.graph_inputs: list[str] = [i.name for i in g.input if i.name not in self.initializers]
        self.graph_outputs: set[str] = {o.name for o in g.output}
        self.value_info: dict[str, onnx.ValueInfoProto] = {}
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            self.value_info[vi.name] = vi
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for t in node.output:
                if t:
                    self.producer[t] = i
            for t in node.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)
        self.const_tensors, self.aux_nodes = self._constants()

    def _constants(self) -> tuple[set[str], set[int]]:
        """Tensors computable without an activation, and the nodes that only compute constants or shapes.

        Such *auxiliary* nodes (Constant, weight DequantizeLinear, Shape -> Gather -> Concat chains) are no
        layers of their own: each cut includes the ones its layers need.
        """
        const = set(self.initializers)
        shape_derived: set[str] = set()
        aux: set[int] = set()
        for i, node in enumerate(self.nodes):
            ins = [t for t in node.input if t]
            outs = [t for t in node.output if t]
            if node.op_type in SHAPE_OPS:
                shape_derived.update(outs)
                aux.add(i)
            elif all(t in const for t in ins):
                const.update(outs)
                aux.add(i)
            elif all(t in const or t in shape_derived for t in ins):
                shape_derived.update(outs)
                aux.add(i)
        return const, aux

    def spec(self, tensor: str) -> TensorSpec | None:
        vi = self.value_info.get(tensor)
        return tensor_spec(vi) if vi is not None else None


def load_source(model: str | Path | onnx.ModelProto, name: str | None = None) -> SourceGraph:
    """Load ``model`` (a path or a ModelProto, never modified), shape-infer it and name its nodes.

    ``name`` is the parent model's name on every cut (default: the file's stem or the graph's name);
    the sha256 is that of the file's bytes, or of the ModelProto's serialization.
    """
    if isinstance(model, onnx.ModelProto):
        data = model.SerializeToString()
        label = name or model.graph.name or "model"
    else:
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"ONNX model '{path}' not found; fix: pass an existing .onnx file")
        data = path.read_bytes()
        label = name or path.stem
    try:
        proto = onnx.ModelProto.FromString(data)
    except Exception as exc:  # DecodeError and others for a corrupt file
        raise ModelError(f"cannot read ONNX model '{label}' ({exc}); fix: re-export the model") from exc
    if proto.graph.sparse_initializer or proto.graph.quantization_annotation:
        raise ModelError(f"'{label}' has sparse initializers or quantization annotations, which onnx.utils."
                         "Extractor cannot cut; fix: convert them to dense initializers / QDQ nodes")
    if not isinstance(model, onnx.ModelProto):
        onnx.load_external_data_for_model(proto, str(Path(model).parent))
    _name_nodes(proto)
    return SourceGraph(_infer(proto, label), label, hashlib.sha256(data).hexdigest())
