"""Which layers form the level-2 stacks: windows of consecutive layers, and parallel modules cut whole.

Rules (why each is so is in the comments of ``plan_stacks``):

* Layers are taken in topological order (the order of their anchors in the graph).
* A **parallel module** is a fork whose branches rejoin, with at least two branches that compute (a
  GoogLeNet inception module: four; a ResNet block with a projection shortcut: two). Its region is every
  layer on a path from the fork to the join (the fork's immediate post-dominator), the join included.
  A module is one unit: cut whole as one stack (``modules="whole"``, kind ``module``) or recorded as a
  skip with the reason (``modules="skip"``); windows never enter it.
* Between modules, windows of ``size`` consecutive layers, every ``stride`` layers (default ``size``: a
  tiling, so the stacks of one size add up to the model and Σ level 2 can be set against level 3).
* A window must be connected (each layer linked to another by a tensor inside the window) and may read at
  most ``max_inputs`` activations from outside and give at most ``max_outputs``. With the default 2, a
  window that holds a residual Add but not the block's start takes the shortcut as a second graph input,
  and one that holds the block's start but not its Add gives the shortcut as a second output: the whole
  model reads and writes that tensor to memory too, so the stack measures what the model does, and the
  tiling keeps every layer of a ResNet. A bottleneck block (7 layers) never fits a window of 4 whole;
  only projection blocks, cut as modules, do.
* Layers in no stack (a segment's tail shorter than ``size``, a skipped window or module) are listed as
  ``uncovered``: their level-1 cuts complete a sum of the parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlperf_ext.errors import ConfigError
from tiers.micro.layers import LayerGraph

MODULE_POLICIES = ("whole", "skip")


@dataclass(frozen=True)
class Module:
    """A fork whose computing branches rejoin: the layers after the fork up to and including the join."""

    fork: int  # layer index of the fork (not part of the module)
    join: int
    layers: tuple[int, ...]
    branches: int


@dataclass(frozen=True)
class PlannedStack:
    layers: tuple[int, ...]
    kind: str  # "stack" or "module"
    note: str = ""


@dataclass(frozen=True)
class PlannedSkip:
    layers: tuple[int, ...]
    kind: str  # "window", "module" or "tail"
    reason: str


@dataclass
class StackPlan:
    size: int
    stride: int
    stacks: list[PlannedStack] = field(default_factory=list)
    skipped: list[PlannedSkip] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    uncovered: list[int] = field(default_factory=list)


def _post_dominators(lg: LayerGraph) -> list[int]:
    """Immediate post-dominator of every layer (``len(layers)`` = the virtual exit)."""
    n = len(lg.layers)
    exit_ = n
    ipdom = [exit_] * n
    outputs = lg.source.graph_outputs

    def meet(a: int, b: int) -> int:
        while a != b:  # in a DAG in topological order a post-dominator always has the larger index
            if a < b:
                a = ipdom[a]
            else:
                b = ipdom[b]
        return a

    for v in range(n - 1, -1, -1):
        succ = sorted(lg.successors[v])
        if not succ or any(t in outputs for t in lg.boundaries[v].outputs):
            ipdom[v] = exit_
            continue
        d = succ[0]
        for s in succ[1:]:
            d = meet(d, s)
        ipdom[v] = d
    return ipdom


def _descendants(lg: LayerGraph, v: int, limit: int) -> set[int]:
    seen: set[int] = set()
    stack = [v]
    while stack:
        for s in lg.successors[stack.pop()]:
            if s <= limit and s not in seen:
                seen.add(s)
                stack.append(s)
    return seen


def _ancestors(lg: LayerGraph, v: int, limit: int) -> set[int]:
    seen: set[int] = set()
    stack = [v]
    while stack:
        for p in lg.predecessors[stack.pop()]:
            if p >= limit and p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def find_modules(lg: LayerGraph) -> list[Module]:
    """Parallel modules (at least two computing branches from one fork to its join), outermost only."""
    ipdom = _post_dominators(lg)
    n = len(lg.layers)
    found: list[Module] = []
    for f in range(n):
        succ = lg.successors[f]
        j = ipdom[f]
        if len(succ) < 2 or j == n:
            continue
        region = (_descendants(lg, f, j) & (_ancestors(lg, j, f) | {j}))
        desc = {s: _descendants(lg, s, j) for s in succ}
        heads = [s for s in succ if s != j and not any(s in desc[o] for o in succ if o != s)]
        if len(heads) >= 2:
            found.append(Module(f, j, tuple(sorted(region)), len(heads)))
    found.sort(key=lambda m: -len(m.layers))
    kept: list[Module] = []
    taken: set[int] = set()
    for m in found:
        if taken.isdisjoint(m.layers):
            kept.append(m)
            taken.update(m.layers)
    return sorted(kept, key=lambda m: m.layers[0])


def _connected(lg: LayerGraph, layers: tuple[int, ...]) -> bool:
    members = set(layers)
    seen = {layers[0]}
    stack = [layers[0]]
    while stack:
        v = stack.pop()
        for w in (lg.successors[v] | lg.predecessors[v]) & members:
            if w not in seen:
                seen.add(w)
                stack.append(w)
    return seen == members


def plan_stacks(lg: LayerGraph, size: int, stride: int | None = None, max_inputs: int = 2,
                max_outputs: int = 2, modules: str = "whole") -> StackPlan:
    """The stacks of ``size`` layers of a layer graph, the modules, the skips and the uncovered layers."""
    if size < 2:
        raise ConfigError(f"a level-2 stack needs at least 2 layers, not {size}; fix: use --level 1 for single layers")
    stride = size if stride is None else stride
    if stride < 1:
        raise ConfigError(f"stack stride must be at least 1, not {stride}; fix: use a positive stride")
    if modules not in MODULE_POLICIES:
        raise ConfigError(f"unknown module policy '{modules}'; fix: use one of {', '.join(MODULE_POLICIES)}")
    if max_inputs < 1 or max_outputs < 1:
        raise ConfigError("a stack needs at least one input and one output; fix: use max_inputs/max_outputs >= 1")
    plan = StackPlan(size, stride, modules=find_modules(lg))
    names = [layer.name for layer in lg.layers]
    in_module = {v: m for m in plan.modules for v in m.layers}
    covered: set[int] = set()

    # units in topological order: a module stands where its first layer is; plain layers form segments
    segments: list[list[int]] = [[]]
    for v in range(len(lg.layers)):
        m = in_module.get(v)
        if m is None:
            segments[-1].append(v)
            continue
        if v != m.layers[0]:
            continue
        segments.append([])
        what = (f"{m.branches} computing branches from {names[m.fork]} joined at {names[m.join]} "
                f"({lg.layers[m.join].op_type}), {len(m.layers)} layers")
        if modules == "whole":
            # a window would leave a computing branch out, or need every branch's output as an input
            plan.stacks.append(PlannedStack(m.layers, "module", f"parallel module cut whole: {what}"))
            covered.update(m.layers)
        else:
            plan.skipped.append(PlannedSkip(m.layers, "module", (
                f"parallel module skipped: {what}; a stack of {size} would leave a computing branch out")))

    for seg in segments:
        start, end = 0, 0
        while start + size <= len(seg):
            window = tuple(seg[start:start + size])
            end = start + size
            start += stride
            b = lg.boundary(lg.union(window))
            reason = ""
            if not _connected(lg, window):
                reason = "its layers are not connected by a tensor inside the window (parallel branches)"
            elif len(b.inputs) > max_inputs:
                reason = f"needs {len(b.inputs)} activation inputs from outside (more than {max_inputs})"
            elif len(b.outputs) > max_outputs:
                reason = f"gives {len(b.outputs)} outputs used outside (more than {max_outputs})"
            if reason:
                plan.skipped.append(PlannedSkip(window, "window", reason))
                continue
            note = ""
            if len(b.inputs) > 1 or len(b.outputs) > 1:
                note = (f"{len(b.inputs)} inputs, {len(b.outputs)} outputs: a residual shortcut enters or "
                        "leaves the window")
            plan.stacks.append(PlannedStack(window, "stack", note))
            covered.update(window)
        if end < len(seg):
            tail = tuple(seg[end:])
            plan.skipped.append(PlannedSkip(tail, "tail", (
                f"the last {len(tail)} layer(s) of a run of {len(seg)} layers between modules do not fill "
                f"a stack of {size}; their level-1 cuts cover them")))
    plan.stacks.sort(key=lambda s: s.layers[0])  # topological order, modules among the windows
    plan.skipped.sort(key=lambda s: s.layers[0])
    plan.uncovered = [v for v in range(len(lg.layers)) if v not in covered]
    return plan
