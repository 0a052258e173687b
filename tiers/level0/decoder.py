"""Level 0 for decoders: the two steps a decoder repeats, each counted on its graph, and each one's roofline.

A decoder's graph has symbolic lengths, so one count says nothing. It is counted twice, at fixed lengths, with
the graph analysis every other model gets (`graph.analyze`):
- the prefill: S = the prompt's tokens, no past;
- one decode step: S = 1 token, a past of `context` tokens (the KV cache).
A step of a batch of B samples reads the weights once and each sample's cache: bytes = weights + B x cache,
ops = B x ops per sample. Its roofline time is the larger of ops / peak and bytes / bandwidth: the prefill of a
batch of prompts reuses each weight S x B times (compute-bound where the platform's ridge is lower), a decode step
only B times while it reads every cache (memory-bound). The cache's own bytes come from the graph's
`past_key_values.*` inputs at the context length and their stored type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import onnx

from mlperf_ext.errors import ModelError
from tiers.level0.graph import _DTYPE_BITS, analyze
from tiers.level0.platforms import PlatformPoint
from tiers.level0.roofline import carrier

PROMPT, PAST = "input_ids", "past_key_values."


@dataclass(frozen=True)
class StepCost:
    """One step of one sample, counted on the graph at fixed lengths."""

    step: str  # prefill | decode
    tokens: int  # new tokens per sample
    context: int  # past tokens the step attends to (its KV cache)
    ops: float  # per sample
    weight_bytes: float  # read once per batch
    cache_bytes: float  # per sample: the past cache the step reads
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepPrediction:
    step: str
    batch: int
    platform: str
    carrier: str
    ops: float  # the batch's
    bytes: float  # the batch's: weights once, each sample's cache
    operational_intensity: float
    seconds: float
    bound: str  # compute | memory


def is_decoder(model: onnx.ModelProto) -> bool:
    names = [i.name for i in model.graph.input]
    return PROMPT in names and any(n.startswith(PAST) for n in names)


def at_lengths(model: onnx.ModelProto, tokens: int, past: int, batch: int | None = 1) -> onnx.ModelProto:
    """A copy of the decoder with `tokens` new tokens, a past of `past` tokens and batch `batch` (None: the batch
    stays dynamic; every other dim as stored). ModelError when it has no `input_ids` and `past_key_values.*`
    inputs."""
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    names = [i.name for i in copy.graph.input]
    if not is_decoder(copy):
        raise ModelError(f"level 0 counts a decoder's steps on inputs named {PROMPT} and {PAST}<layer>.key/value; "
                         f"this graph has {', '.join(names)}; fix: export the decoder with its KV cache as inputs")
    for inp in copy.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name == PROMPT:
            wanted = {1: tokens}
        elif inp.name.startswith(PAST):
            wanted = {2: past}
        else:
            continue
        if batch is not None:
            wanted[0] = batch
        for axis, value in wanted.items():
            dims[axis].Clear()
            dims[axis].dim_value = value
    return copy


def _cache_bytes(model: onnx.ModelProto, past: int) -> float:
    total = 0.0
    for inp in model.graph.input:
        if inp.name.startswith(PAST):
            dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            dims[0], dims[2] = 1, past
            total += math.prod(dims) * _DTYPE_BITS.get(inp.type.tensor_type.elem_type, 32) / 8
    return total


def decoder_steps(path: str | Path, prompt_tokens: int, context: int) -> tuple[StepCost, StepCost]:
    """(prefill of `prompt_tokens`, one decode step at `context` past tokens), per sample."""
    model = onnx.load(str(path))
    out = []
    for step, tokens, past in (("prefill", prompt_tokens, 0), ("decode", 1, context)):
        analysis = analyze(at_lengths(model, tokens, past))
        out.append(StepCost(step=step, tokens=tokens, context=past, ops=float(analysis.ops),
                            weight_bytes=float(analysis.weight_bytes), cache_bytes=_cache_bytes(model, past),
                            unsupported=tuple(analysis.unsupported)))
    return out[0], out[1]


def step_roofline(cost: StepCost, point: PlatformPoint, precision: str, batch: int) -> StepPrediction | None:
    """The roofline time of one step of `batch` samples on a platform point; None when it cannot run the precision."""
    dt = carrier(point, precision)
    if dt is None:
        return None
    ops = batch * cost.ops
    moved = cost.weight_bytes + batch * cost.cache_bytes
    compute_s = ops / (point.peak_tops[dt] * 1e12)
    memory_s = moved / (point.memory_bandwidth_gbs * 1e9)
    return StepPrediction(step=cost.step, batch=batch, platform=point.label, carrier=dt, ops=ops, bytes=moved,
                          operational_intensity=ops / moved if moved else math.inf, seconds=max(compute_s, memory_s),
                          bound="compute" if compute_s >= memory_s else "memory")
