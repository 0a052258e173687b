"""Cutting: every layer (level 1) and every stack (level 2) of a model as a standalone ONNX model.

A cut is extracted with ``onnx.utils.Extractor`` from the shape-inferred source between its boundary
tensors, so it carries the initializers it reads (weights as stored: int8/int4 behind their
DequantizeLinear, MatMulNBits blobs) and the source's value_info (a dynamic batch stays dynamic). It is
then shape-inferred again and passed through ``onnx.checker``. Identical cuts (``signature``) are kept
once with the layer names of every occurrence. Each cut carries its level-0 cost
(``tiers.level0.graph.analyze``: ops per input, weight bytes), computed on the cut model itself.

What a layer is: ``tiers.micro.layers``; what the dedup key holds: ``tiers.micro.signature``; which
layers form stacks: ``tiers.micro.stacks``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import shape_inference
from onnx.utils import Extractor

from mlperf_ext.errors import ConfigError, ModelError
from tiers.level0.graph import GraphAnalysis, analyze
from tiers.micro.layers import LayerGraph
from tiers.micro.signature import signature
from tiers.micro.source import SourceGraph, TensorSpec, load_source
from tiers.micro.stacks import StackPlan, plan_stacks

#: metadata_props keys written into every cut model (so a saved file says where it came from)
META_PREFIX = "mlperf_ext.micro."


@dataclass
class Cut:
    """One standalone benchmark model cut from a parent model."""

    level: int  # 1 (a layer) or 2 (a stack of layers)
    kind: str  # "layer", "stack" (consecutive layers) or "module" (a parallel module cut whole)
    name: str
    layers: tuple[str, ...]  # layer (anchor node) names of this cut's own occurrence, topological order
    layer_ops: tuple[str, ...]  # op types of those layers
    nodes: tuple[str, ...]  # every source node in the cut (companions, weight DQs, shape chains included)
    op_types: tuple[str, ...]  # op types of those nodes
    signature: str  # the dedup key (tiers.micro.signature)
    instances: list[tuple[str, ...]]  # the layer names of every occurrence; the first is this cut's own
    parent_model: str
    parent_sha256: str
    model: onnx.ModelProto
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    cost: GraphAnalysis  # level 0 of the cut model, per input (batch 1)
    note: str = ""

    @property
    def occurrences(self) -> int:
        return len(self.instances)

    @property
    def op_type(self) -> str:
        """The layer's op type (level 1) or the stack's layer ops joined with '+' (level 2)."""
        return "+".join(self.layer_ops)

    @property
    def ops(self) -> int:
        """Level-0 ops per input (2 per MAC) of one occurrence."""
        return self.cost.ops

    @property
    def weight_bytes(self) -> float:
        """Bytes of the weights one occurrence reads, as stored (scales and zero points included)."""
        return self.cost.weight_bytes

    def activation_bytes(self, batch: int = 1) -> int:
        """Bytes of the cut's inputs and outputs at ``batch``."""
        return sum(s.nbytes(batch) for s in self.inputs + self.outputs)

    def to_bytes(self) -> bytes:
        return self.model.SerializeToString()

    def save(self, path: str | Path) -> Path:
        """Write the cut model to ``path`` (atomically) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)
        return path

    def summary(self) -> dict:
        """The cut's facts without the model (for tables and JSON)."""
        return {"level": self.level, "kind": self.kind, "name": self.name, "op_type": self.op_type,
                "layers": list(self.layers), "occurrences": self.occurrences, "signature": self.signature,
                "parent_model": self.parent_model, "parent_sha256": self.parent_sha256,
                "inputs": [_spec_dict(s) for s in self.inputs], "outputs": [_spec_dict(s) for s in self.outputs],
                "ops": self.ops, "weight_bytes": self.weight_bytes, "note": self.note}


@dataclass(frozen=True)
class Skip:
    """A layer, window or module that was not cut, and why."""

    level: int
    kind: str  # "layer", "window", "module" or "tail"
    layers: tuple[str, ...]
    reason: str


@dataclass
class CutSet:
    """The cuts of one level (and, for level 2, one stack size) of one parent model."""

    level: int
    parent_model: str
    parent_sha256: str
    layer_count: int  # layers in the parent model
    cuts: list[Cut] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    size: int | None = None  # level 2: layers per window
    stride: int | None = None
    uncovered: list[str] = field(default_factory=list)  # level 2: layers in no stack
    seconds: float = 0.0  # wall time of the cutting (extraction, checks, level 0)

    @property
    def unique(self) -> int:
        return len(self.cuts)

    @property
    def occurrences(self) -> int:
        return sum(c.occurrences for c in self.cuts)


def _spec_dict(s: TensorSpec) -> dict:
    return {"name": s.name, "shape": list(s.shape), "dtype": str(s.dtype)}


def prepare(model: str | Path | onnx.ModelProto | SourceGraph | LayerGraph, name: str | None = None) -> LayerGraph:
    """The layer graph of ``model``; pass it to several cut calls to load and infer the model once."""
    if isinstance(model, LayerGraph):
        return model
    source = model if isinstance(model, SourceGraph) else load_source(model, name)
    return LayerGraph(source)


class _Cutter:
    """Extracts node sets of one source as checked, shape-inferred standalone models."""

    def __init__(self, lg: LayerGraph):
        self.lg = lg
        self.source = lg.source
        self.extractor = Extractor(self.source.model)

    def missing_shapes(self, tensors: tuple[str, ...]) -> list[str]:
        return [t for t in tensors if self.source.spec(t) is None]

    def extract(self, name: str, nodes: tuple[int, ...], inputs: tuple[str, ...], outputs: tuple[str, ...],
                meta: dict[str, str]) -> onnx.ModelProto:
        src = self.source
        model = self.extractor.extract_model(list(inputs), list(outputs))
        got = {n.name for n in model.graph.node}
        want = {src.nodes[i].name for i in nodes}
        if got != want:  # the boundary must enclose exactly the intended nodes
            raise ModelError(f"cut '{name}' of '{src.name}' extracted nodes {sorted(got ^ want)} it should not "
                             "(or missed them); fix: report this model to the mlperf-ext maintainers")
        model.graph.name = name
        # Extractor copies the value_info of the boundary tensors too; graph inputs and outputs carry it
        io = set(inputs) | set(outputs)
        kept = [vi for vi in model.graph.value_info if vi.name not in io]
        del model.graph.value_info[:]
        model.graph.value_info.extend(kept)
        onnx.helper.set_model_props(model, {META_PREFIX + k: v for k, v in meta.items()})
        contrib = any(n.domain == "com.microsoft" for n in model.graph.node)
        model = shape_inference.infer_shapes(model, strict_mode=not contrib, data_prop=True)
        onnx.checker.check_model(model)
        return model

    def make(self, level: int, kind: str, name: str, layer_ids: tuple[int, ...], nodes: tuple[int, ...],
             inputs: tuple[str, ...], outputs: tuple[str, ...], sig: str, note: str) -> Cut:
        src = self.source
        layers = tuple(self.lg.layers[k].name for k in layer_ids)
        meta = {"level": str(level), "kind": kind, "layers": ",".join(layers), "signature": sig,
                "parent_model": src.name, "parent_sha256": src.sha256}
        model = self.extract(name, nodes, inputs, outputs, meta)
        return Cut(level=level, kind=kind, name=name, layers=layers,
                   layer_ops=tuple(self.lg.layers[k].op_type for k in layer_ids),
                   nodes=tuple(src.nodes[i].name for i in nodes), op_types=tuple(src.nodes[i].op_type for i in nodes),
                   signature=sig, instances=[layers], parent_model=src.name, parent_sha256=src.sha256,
                   model=model, inputs=tuple(src.spec(t) for t in inputs),
                   outputs=tuple(src.spec(t) for t in outputs), cost=analyze(model), note=note)


def _add(cutter: _Cutter, out: CutSet, by_sig: dict[str, Cut], dedup: bool, level: int, kind: str, name: str,
         layer_ids: tuple[int, ...], note: str = "") -> None:
    """Cut one layer or stack into ``out`` (or count it as another occurrence of an identical cut)."""
    lg = cutter.lg
    names = tuple(lg.layers[k].name for k in layer_ids)
    nodes = lg.union(layer_ids)
    b = lg.boundary(nodes)
    missing = cutter.missing_shapes(b.inputs + b.outputs)
    if missing:
        out.skipped.append(Skip(level, kind, names, "shape inference gave no shape or dtype for "
                                f"{', '.join(missing)}; fix: export the model with static shapes"))
        return
    if not b.outputs:
        out.skipped.append(Skip(level, kind, names, "nothing it computes is used (dead code)"))
        return
    sig = signature(lg.source, nodes, b.inputs, b.outputs)
    if dedup and sig in by_sig:
        by_sig[sig].instances.append(names)
        return
    try:
        cut = cutter.make(level, kind, name, layer_ids, nodes, b.inputs, b.outputs, sig, note)
    except (onnx.checker.ValidationError, shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        out.skipped.append(Skip(level, kind, names, f"the cut model fails onnx's checks ({first})"))
        return
    by_sig[sig] = cut
    out.cuts.append(cut)


def cut_layers(model: str | Path | onnx.ModelProto | SourceGraph | LayerGraph, *, name: str | None = None,
               dedup: bool = True) -> CutSet:
    """Level 1: every layer of ``model`` as a standalone model; identical layers once (``dedup``)."""
    start = time.perf_counter()
    lg = prepare(model, name)
    src = lg.source
    out = CutSet(1, src.name, src.sha256, len(lg.layers))
    cutter = _Cutter(lg)
    by_sig: dict[str, Cut] = {}
    for layer in lg.layers:
        _add(cutter, out, by_sig, dedup, 1, "layer", layer.name, (layer.index,))
    out.seconds = time.perf_counter() - start
    return out


def cut_stacks(model: str | Path | onnx.ModelProto | SourceGraph | LayerGraph, size: int, *,
               name: str | None = None, stride: int | None = None, max_inputs: int = 2, max_outputs: int = 2,
               modules: str = "whole", dedup: bool = True) -> CutSet:
    """Level 2: stacks of ``size`` consecutive layers (and parallel modules), rules in tiers.micro.stacks."""
    start = time.perf_counter()
    lg = prepare(model, name)
    src = lg.source
    plan: StackPlan = plan_stacks(lg, size, stride, max_inputs, max_outputs, modules)
    names = [layer.name for layer in lg.layers]
    out = CutSet(2, src.name, src.sha256, len(lg.layers), size=size, stride=plan.stride,
                 uncovered=[names[v] for v in plan.uncovered])
    cutter = _Cutter(lg)
    by_sig: dict[str, Cut] = {}
    for s in plan.stacks:
        label = f"{names[s.layers[0]]}..{names[s.layers[-1]]}"
        cut_name = f"module:{label}" if s.kind == "module" else f"stack{size}:{label}"
        _add(cutter, out, by_sig, dedup, 2, s.kind, cut_name, s.layers, s.note)
    out.skipped.extend(Skip(2, k.kind, tuple(names[v] for v in k.layers), k.reason) for k in plan.skipped)
    out.seconds = time.perf_counter() - start
    return out


@dataclass
class MicroCuts:
    """Level 1 and the level-2 sizes of one model, from one load and one shape inference."""

    level1: CutSet | None
    level2: dict[int, CutSet]
    seconds: float


def cut_model(model: str | Path | onnx.ModelProto, *, name: str | None = None, levels: tuple[int, ...] = (1, 2),
              sizes: tuple[int, ...] = (2, 4), **stack_options) -> MicroCuts:
    """Every cut of ``levels`` (1 and/or 2, stacks of each of ``sizes``) of one model."""
    bad = [lv for lv in levels if lv not in (1, 2)]
    if bad:
        raise ConfigError(f"micro levels are 1 and 2, not {bad}; fix: use --level 1 2")
    start = time.perf_counter()
    lg = prepare(model, name)
    level1 = cut_layers(lg) if 1 in levels else None
    level2 = {s: cut_stacks(lg, s, **stack_options) for s in sizes} if 2 in levels else {}
    return MicroCuts(level1, level2, time.perf_counter() - start)
