"""What a layer is: the nodes of the source grouped into layers, the data edges between them, and the
boundary (external inputs and outputs) of any union of layers.

Rules (the cuts of level 1 are these layers; level-2 stacks are unions of them):

* Every node is a layer (its *anchor*) except quantization markers and auxiliary nodes. Elementwise
  and data-movement ops (Relu, Add, BatchNormalization, MaxPool, GlobalAveragePool, Concat, Flatten,
  Reshape, Cast...) are layers of their own: their share of the time is what level 1 is for.
* Auxiliary nodes compute constants or shapes only (Constant, a DequantizeLinear of a weight, a
  Shape -> Gather -> Concat chain): every layer includes the ones it needs, so a layer carries its
  weights as the source stores them (int8/int4 initializers behind their DequantizeLinear).
* A MatMul / MatMulNBits followed by an Add of a constant whose only input is that product (a Gemm
  split for MatMulNBits, or an exporter's MatMul + bias) is one layer, the fully connected layer.
* Quantization markers (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear) join the layers they
  serve, and the cut between two quantized layers lies at the quantized tensor between a QuantizeLinear
  and its DequantizeLinear: a layer is ``DQ(inputs) -> op -> Q``, with the DequantizeLinear of its weights.
  Why there: its inputs and outputs are then int8/uint8, as between the fused integer kernels a runtime
  makes of the whole model (ORT turns DQ -> Conv -> Q into one QLinearConv), every Q and DQ belongs to
  one layer, so the layers add up to the model and chain into it exactly. Cutting at the float tensors
  instead would put each Q/DQ pair into both neighbouring layers and time every conversion twice.
  A DQ read by two layers (a residual fork) is in both (each recomputes it); the graph's first Q joins
  the layer it feeds, its last DQ the layer it follows; a DynamicQuantizeLinear joins the layer it feeds.
  A marker with no layer to join is a layer of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tiers.micro.source import SourceGraph

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
#: products whose bias Add is part of the same (fully connected) layer
BIAS_PRODUCTS = frozenset({"MatMul", "MatMulNBits"})


@dataclass(frozen=True)
class Layer:
    """One layer: its anchor node and every node a standalone model of it needs (source indices, sorted)."""

    index: int  # position among the layers (topological order of the anchors)
    name: str  # the anchor node's name
    op_type: str  # the anchor node's op type
    anchor: int
    nodes: tuple[int, ...]


@dataclass(frozen=True)
class Boundary:
    """The tensors a set of nodes reads from outside (activations, weights excluded) and gives outside."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class LayerGraph:
    """The layers of one source graph and the data edges between them."""

    def __init__(self, source: SourceGraph):
        self.source = source
        self.layers: list[Layer] = self._group()
        self.node_sets: list[frozenset[int]] = [frozenset(layer.nodes) for layer in self.layers]
        self.node_layers: dict[int, set[int]] = {}
        for layer in self.layers:
            for i in layer.nodes:
                self.node_layers.setdefault(i, set()).add(layer.index)
        self.boundaries = [self.boundary(layer.nodes) for layer in self.layers]
        self.successors: list[set[int]] = [set() for _ in self.layers]
        self.predecessors: list[set[int]] = [set() for _ in self.layers]
        producers: dict[str, set[int]] = {}
        for layer, b in zip(self.layers, self.boundaries, strict=True):
            for t in b.outputs:
                producers.setdefault(t, set()).add(layer.index)
        for layer, b in zip(self.layers, self.boundaries, strict=True):
            for t in b.inputs:
                for p in producers.get(t, ()):
                    if p != layer.index:
                        self.successors[p].add(layer.index)
                        self.predecessors[layer.index].add(p)

    # ---- grouping ---------------------------------------------------------------------------------
    def _is_anchor_candidate(self, i: int) -> bool:
        return i not in self.source.aux_nodes and self.source.nodes[i].op_type not in QDQ_OPS

    def _bias_of(self, i: int) -> int | None:
        """The product node whose bias Add node ``i`` is, or None."""
        src = self.source
        node = src.nodes[i]
        if node.op_type != "Add" or len([t for t in node.input if t]) != 2:
            return None
        a, b = node.input
        for act, other in ((a, b), (b, a)):
            p = src.producer.get(act)
            if (p is not None and src.nodes[p].op_type in BIAS_PRODUCTS and other in src.const_tensors
                    and src.consumers.get(act) == [i] and act not in src.graph_outputs):
                return p
        return None

    def _group(self) -> list[Layer]:
        src = self.source
        anchor_of: dict[int, int] = {}  # anchor or bias Add -> the anchor of its layer
        for i in range(len(src.nodes)):
            if self._is_anchor_candidate(i):
                p = self._bias_of(i)
                anchor_of[i] = i if p is None else p
        owner: dict[int, set[int]] = {i: {a} for i, a in anchor_of.items()}
        owner.update(self._assign_qdq(anchor_of))
        for i in range(len(src.nodes)):  # a quantization marker with no layer to join is a layer of its own
            if i not in owner and i not in src.aux_nodes:
                owner[i] = {i}
        anchors = sorted({a for anchors_of in owner.values() for a in anchors_of})
        members: dict[int, set[int]] = {a: set() for a in anchors}
        for i, anchors_of in owner.items():
            for a in anchors_of:
                members[a].add(i)
        return [Layer(k, src.nodes[a].name, src.nodes[a].op_type, a, tuple(sorted(self._closure(members[a]))))
                for k, a in enumerate(anchors)]

    def _assign_qdq(self, anchor_of: dict[int, int]) -> dict[int, set[int]]:
        """Quantization marker -> the anchors of the layers it joins (rules in the module docstring)."""
        src = self.source
        qdq = [i for i, n in enumerate(src.nodes) if n.op_type in QDQ_OPS and i not in src.aux_nodes]
        after: dict[int, set[int]] = {}  # marker -> the anchor it follows (directly, or Q -> DQ)
        before: dict[int, set[int]] = {}  # marker -> the anchors it feeds (directly, or Q -> DQ -> op)
        for i in qdq:
            p = src.producer.get(src.nodes[i].input[0])
            if p in anchor_of:
                after[i] = {anchor_of[p]}
            feeds = {anchor_of[c] for t in src.nodes[i].output if t for c in src.consumers.get(t, ())
                     if c in anchor_of}
            if feeds:
                before[i] = feeds
        for i in qdq:  # one marker further: the DQs after a Q follow its anchor, the Q before DQs feeds theirs
            for t in src.nodes[i].output:
                for c in src.consumers.get(t, ()) if t else ():
                    if c in before and src.nodes[c].op_type == "DequantizeLinear":
                        before.setdefault(i, set()).update(before[c])
                    if i in after and c not in anchor_of and src.nodes[c].op_type in QDQ_OPS:
                        after.setdefault(c, set()).update(after[i])
        out: dict[int, set[int]] = {}
        for i in qdq:
            op = src.nodes[i].op_type
            if op in ("DequantizeLinear", "DynamicQuantizeLinear"):
                # the layer(s) it feeds; a trailing DQ (the graph's output) the layer it follows
                joined = before.get(i) or after.get(i, set())
            else:  # QuantizeLinear: the layer it follows; a leading Q (after the graph's input) the one it feeds
                joined = after.get(i) or before.get(i, set())
            if joined:
                out[i] = joined
        return out

    def _closure(self, nodes: Iterable[int]) -> set[int]:
        """``nodes`` plus every auxiliary node they need (constants, weight DQs, shape chains)."""
        src = self.source
        result = set(nodes)
        stack = list(result)
        while stack:
            i = stack.pop()
            for t in src.nodes[i].input:
                p = src.producer.get(t) if t else None
                if p is not None and p in src.aux_nodes and p not in result:
                    result.add(p)
                    stack.append(p)
        return result

    # ---- boundaries -------------------------------------------------------------------------------
    def boundary(self, nodes: Iterable[int]) -> Boundary:
        """External activation inputs (in order of first use) and outputs of a union of layer nodes.

        A tensor is an output when the graph returns it, or when a node outside reads it in a layer that
        does not compute it itself (a DQ shared by two layers is recomputed by each, not passed along).
        """
        src = self.source
        members = set(nodes)
        ordered = sorted(members)
        produced = {t for i in ordered for t in src.nodes[i].output if t}
        inputs: list[str] = []
        for i in ordered:
            for t in src.nodes[i].input:
                if t and t not in produced and t not in src.initializers and t not in inputs:
                    inputs.append(t)
        outputs: list[str] = []
        for i in ordered:
            if i in src.aux_nodes:
                continue
            node = src.nodes[i]
            for k, t in enumerate(node.output):
                if not t or t in outputs:
                    continue
                readers = src.consumers.get(t, [])
                needed = t in src.graph_outputs or (not readers and k == 0)
                for c in readers:
                    if c in members:
                        continue
                    if any(i not in self.node_sets[li] for li in self.node_layers.get(c, ())):
                        needed = True
                        break
                if needed:
                    outputs.append(t)
        return Boundary(tuple(inputs), tuple(outputs))

    def union(self, layer_indices: Iterable[int]) -> tuple[int, ...]:
        """The sorted source nodes of several layers (shared nodes once)."""
        return tuple(sorted(set().union(*(self.layers[k].nodes for k in layer_indices))))
