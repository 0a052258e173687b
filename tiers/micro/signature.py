"""The deduplication key of a cut: what its execution time depends on, with tensor names erased.

Two cuts are the same benchmark when their nodes have the same op types, domains and attributes, wired
the same way, and their inputs, outputs and stored weights have the same shapes and dtypes. Weight
*values* are left out: the dense kernels of every backend here take the same time whatever the values
(none exploits zeros or value patterns), so the first occurrence stands for all, with its own weights.
Values of int64 tensors are kept (Reshape targets, axes, pads, Gather indices): they change what the op
computes. Quantization scales and zero points are weights here: their dtypes count, their values do not.
A dynamic dimension counts as dynamic, whatever its symbolic name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from onnx import AttributeProto, TensorProto, helper, numpy_helper

from tiers.micro.source import SourceGraph

#: largest int64 tensor whose values enter the key (shape-like data; bigger ones are index tables)
_MAX_KEYED_INT64 = 4096


def _tensor_key(t: TensorProto) -> list:
    key: list = [int(t.data_type), [int(d) for d in t.dims]]
    n = 1
    for d in t.dims:
        n *= int(d)
    if t.data_type == TensorProto.INT64 and n <= _MAX_KEYED_INT64:
        key.append(numpy_helper.to_array(t).reshape(-1).tolist())
    return key


def _attr_key(a: AttributeProto) -> list:
    if a.type == AttributeProto.TENSOR:
        return [a.name, _tensor_key(a.t)]
    if a.type == AttributeProto.TENSORS:
        return [a.name, [_tensor_key(t) for t in a.tensors]]
    if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
        graphs = [a.g] if a.type == AttributeProto.GRAPH else list(a.graphs)
        return [a.name, [hashlib.sha256(g.SerializeToString()).hexdigest() for g in graphs]]
    value = helper.get_attribute_value(a)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, list):
        value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    elif not isinstance(value, int | float | str):
        value = str(value)
    return [a.name, value]


def _spec_key(source: SourceGraph, tensor: str) -> list:
    spec = source.spec(tensor)
    if spec is None:
        return [None]
    return [spec.elem_type, list(spec.shape)]


def signature(source: SourceGraph, nodes: Iterable[int], inputs: Iterable[str], outputs: Iterable[str]) -> str:
    """A 16-hex-digit key of the cut made of source ``nodes`` (sorted) with the given boundary."""
    inits = {t.name: t for t in source.model.graph.initializer}
    ids: dict[str, str] = {}
    key: dict[str, list] = {"inputs": [], "nodes": [], "outputs": []}
    for t in inputs:
        ids[t] = f"i{len(ids)}"
        key["inputs"].append(_spec_key(source, t))
    weights = 0
    produced = 0
    for i in sorted(nodes):
        node = source.nodes[i]
        ins: list = []
        for t in node.input:
            if not t:
                ins.append("")
            elif t in ids:
                ins.append(ids[t])
            elif t in inits:
                ids[t] = f"w{weights}"
                weights += 1
                ins.append([ids[t], _tensor_key(inits[t])])
            else:  # not reachable from the boundary: make it distinct rather than silently equal
                ins.append(["unbound", t])
        outs = []
        for t in node.output:
            if t:
                ids[t] = f"t{produced}"
                produced += 1
            outs.append(ids.get(t, ""))
        attrs = [_attr_key(a) for a in sorted(node.attribute, key=lambda a: a.name)]
        key["nodes"].append([node.domain or "ai.onnx", node.op_type, attrs, ins, outs])
    for t in outputs:
        key["outputs"].append([ids.get(t, t), _spec_key(source, t)])
    opsets = sorted((o.domain or "ai.onnx", int(o.version)) for o in source.model.opset_import)
    key["opsets"] = [list(o) for o in opsets]
    data = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]

