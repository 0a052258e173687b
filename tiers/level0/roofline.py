"""Level-0 predictions: roofline, on-chip refinement and a fitted efficiency factor.

Why: a designer wants inputs/s per (model, precision, platform, mode) before anything runs, and later
the gap between what was measured and what was possible. Formulas (QuTiBench, docs/level0.md):

* roofline: ``pp = min(peak(dtype) / ops, b · bw / weight_bytes)`` inputs/s — weights are read from
  off-chip memory once per batch of ``b`` inputs, activations stay on chip; ``b = 1`` is the plain formula.
* carrier datatype: a precision the platform lacks runs at the peak of the smallest supported datatype
  that represents it exactly (``int2 ⊂ int4 ⊂ int8 ⊂ fp16/bf16 ⊂ fp32``; ties → the higher peak); the
  weights still stream at the model's own precision.
* onchip: weights that fit in ``onchip_memory_mb`` are never re-read → compute-bound ``peak / ops``.
* fitted: ``η_platform · roofline``, with η the geometric mean of measured / roofline over a platform's
  measured points (the least-squares fit of ``log measured = log η + log predicted``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from mlperf_ext.errors import ConfigError
from tiers.level0.graph import PRECISION_BITS
from tiers.level0.platforms import PlatformPoint

PREDICTORS = ("roofline", "onchip", "fitted")

#: datatypes that represent each precision exactly, smallest first
CAN_CARRY = {
    "int2": ("int2", "int4", "int8", "fp16", "bf16", "fp32"),
    "int4": ("int4", "int8", "fp16", "bf16", "fp32"),
    "int8": ("int8", "fp16", "bf16", "fp32"),
    "fp8": ("fp16", "bf16", "fp32"),
    "fp16": ("fp16", "fp32"),
    "bf16": ("bf16", "fp32"),
    "fp32": ("fp32",),
    # TF32 tensor cores (fp32 range, 10-bit mantissa): its own peak where the platform lists one, else the
    # fp32 units run the same arithmetic exactly
    "tf32": ("tf32", "fp32"),
}


class ModelCost(Protocol):
    """What a prediction needs from a model: a graph analysis or a published requirement entry."""

    @property
    def ops(self) -> float: ...

    def weight_bytes_at(self, precision: str | None = None) -> float: ...


@dataclass(frozen=True)
class Prediction:
    model: str
    precision: str
    platform: str
    mode: str
    batch: int
    predictor: str  # the model that made the number: roofline | onchip | fitted
    carrier: str  # datatype whose peak is used
    inputs_per_s: float
    bound: str  # compute | memory
    operational_intensity: float  # ops / byte at this batch
    attainable_tops: float
    factor: float = 1.0  # fitted efficiency factor (1 for roofline/onchip)


@dataclass(frozen=True)
class EfficiencyFit:
    """η = exp(mean(log(measured / roofline))) over n points; log_sd = spread of the log ratios."""

    platform: str
    factor: float
    n: int
    log_sd: float


def carrier(point: PlatformPoint, precision: str) -> str | None:
    """The datatype whose peak runs ``precision`` on this platform, or None if it cannot run it."""
    prec = precision.lower()
    if prec not in CAN_CARRY:
        raise ConfigError(f"unknown precision '{precision}'; fix: use one of {', '.join(CAN_CARRY)}")
    supported = [d for d in CAN_CARRY[prec] if d in point.peak_tops]
    if not supported:
        return None
    bits = min(PRECISION_BITS[d] for d in supported)
    return max((d for d in supported if PRECISION_BITS[d] == bits), key=lambda d: point.peak_tops[d])


def predict(model: ModelCost, point: PlatformPoint, precision: str, batch: int = 1,
            predictor: str = "roofline", fits: dict[str, EfficiencyFit] | None = None,
            name: str | None = None, weight_precision: str | None = None) -> Prediction | None:
    """Predicted inputs/s of one model on one platform mode; None when the precision cannot run there
    (or, for ``fitted``, when the platform has no fit). ``precision`` is what the arithmetic runs in;
    the weights stream at ``weight_precision`` (default: the same), e.g. int2 weights run in fp32."""
    if predictor not in PREDICTORS:
        raise ConfigError(f"unknown predictor '{predictor}'; fix: use one of {', '.join(PREDICTORS)}")
    if batch < 1:
        raise ConfigError(f"batch {batch} must be >= 1; fix: pass a positive --batch")
    dt = carrier(point, precision)
    if dt is None:
        return None
    factor = 1.0
    if predictor == "fitted":
        fit = (fits or {}).get(point.platform)
        if fit is None:
            return None
        factor = fit.factor
    ops = float(model.ops)
    wbytes = float(model.weight_bytes_at(weight_precision or precision))
    peak = point.peak_tops[dt] * 1e12
    compute_fps = peak / ops if ops > 0 else math.inf
    memory_fps = batch * point.memory_bandwidth_gbs * 1e9 / wbytes if wbytes > 0 else math.inf
    if predictor == "onchip" and point.onchip_memory_mb is not None and wbytes <= point.onchip_memory_mb * 1e6:
        memory_fps = math.inf
    fps = min(compute_fps, memory_fps)
    oi = batch * ops / wbytes if wbytes > 0 else math.inf
    return Prediction(
        model=name or getattr(model, "name", None) or getattr(model, "model", "?"), precision=precision.lower(),
        platform=point.platform, mode=point.mode, batch=batch, predictor=predictor, carrier=dt,
        inputs_per_s=factor * fps, bound="compute" if compute_fps <= memory_fps else "memory",
        operational_intensity=oi, attainable_tops=factor * fps * ops / 1e12, factor=factor)


def fit_efficiency(points: list[tuple[str, float, float]]) -> dict[str, EfficiencyFit]:
    """Fit η per platform from (platform, roofline predicted fps, measured fps) triples."""
    by_platform: dict[str, list[float]] = {}
    for platform, predicted, measured in points:
        if predicted > 0 and measured > 0 and math.isfinite(predicted):
            by_platform.setdefault(platform, []).append(math.log(measured / predicted))
    fits = {}
    for platform, logs in by_platform.items():
        mean = sum(logs) / len(logs)
        sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)) if len(logs) > 1 else 0.0
        fits[platform] = EfficiencyFit(platform, math.exp(mean), len(logs), sd)
    return fits


@dataclass(frozen=True)
class RooflinePoint:
    """One model's operating point on one platform roofline (for plotting)."""

    model: str
    precision: str
    platform: str
    mode: str
    carrier: str
    batch: int
    operational_intensity: float  # ops/byte
    attainable_tops: float  # min(peak, bw · OI)
    peak_tops: float
    memory_bandwidth_gbs: float
    bound: str


def roofline_point(model: ModelCost, point: PlatformPoint, precision: str, batch: int = 1,
                   name: str | None = None) -> RooflinePoint | None:
    p = predict(model, point, precision, batch, "roofline", name=name)
    if p is None:
        return None
    return RooflinePoint(p.model, p.precision, p.platform, p.mode, p.carrier, batch, p.operational_intensity,
                         p.attainable_tops, point.peak_tops[p.carrier], point.memory_bandwidth_gbs, p.bound)
