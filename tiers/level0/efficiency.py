"""Compute efficiency of measured points and how well level-0 predictions track measurements.

Why: a measurement means little without the ceiling it is measured against. For each stored row
(columns of ``mlperf_ext.result``): efficiency = measured compute fps / roofline fps, and peak fraction
= measured compute ops/s / peak(dtype); per platform, Pearson and Spearman correlation of predicted vs
measured fps, with the number of points. The prediction uses the datatype that executed, as the
runtime reported it (``runtime_compute_dtype``), with the weights streamed as stored: an INT2 variant
that ORT dequantizes and runs as fp32 is predicted at the fp32 peak. Rows without that evidence fall
back to the variant's label, and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mlperf_ext.errors import MlperfExtError
from tiers.level0.graph import PRECISION_BITS, GraphAnalysis, analyze
from tiers.level0.platforms import Catalog
from tiers.level0.roofline import predict


@dataclass(frozen=True)
class EfficiencyRow:
    model: str
    platform: str
    mode: str
    precision: str
    batch: int
    measured_fps: float
    predicted_fps: float
    predictor: str
    bound: str
    efficiency: float  # measured / predicted
    peak_fraction: float  # measured ops/s / peak(carrier dtype)
    backend: str = ""  # which runtime measured it (rows of one model differ by backend)
    scenario: str = ""
    note: str = ""  # how the row was interpreted where it was not literal (e.g. a runtime hint as mode)


@dataclass(frozen=True)
class Skipped:
    row_index: int
    reason: str


@dataclass(frozen=True)
class Correlation:
    platform: str
    n: int
    pearson_r: float
    pearson_p: float
    spearman_r: float
    spearman_p: float


def normalise_precision(label: str | None) -> str | None:
    """Map a row's precision label ('INT8', 'int8-qdq', 'fp16') to a datatype name, or None."""
    if not label:
        return None
    s = str(label).lower()
    for p in sorted(PRECISION_BITS, key=len, reverse=True):
        if s == p or s.startswith(p):
            return p
    return None


def row_efficiencies(rows: Iterable[dict], catalog: Catalog, default_mode: str | None = None,
                     analyse: Callable[[str], GraphAnalysis] | None = None
                     ) -> tuple[list[EfficiencyRow], list[Skipped]]:
    """Efficiency of every row that names a known model file, platform and precision; others are skipped
    with the reason (never guessed)."""
    cache: dict[str, GraphAnalysis] = {}
    analyse = analyse or analyze
    out: list[EfficiencyRow] = []
    skipped: list[Skipped] = []
    for i, row in enumerate(rows):
        try:
            path = row.get("model")
            if row.get("runtime_simulated"):
                skipped.append(Skipped(i, "simulated timing (a stand-in for hardware): no device to predict for"))
                continue
            if not path or not Path(path).is_file():
                skipped.append(Skipped(i, f"model file {path!r} not found"))
                continue
            key = row.get("model_sha256") or str(path)
            if key not in cache:
                cache[key] = analyse(str(path))
            cost = cache[key]
            executed = row.get("runtime_compute_dtype")
            label = executed or row.get("precision")
            prec = normalise_precision(label) if label else cost.stored_precision
            if prec is None:
                skipped.append(Skipped(i, f"precision {label!r} is not a known datatype; fix: store one of "
                                          f"{', '.join(PRECISION_BITS)} (or a label starting with one)"))
                continue
            platform = catalog.get(row.get("platform") or "host")
            mode = row.get("operating_mode") or ""
            note = "" if executed else f"no executed precision stored; predicted at the label {label!r}"
            if mode and mode not in platform.modes:
                # e.g. an OpenVINO PERFORMANCE_HINT (sut/openvino.py): a runtime setting, not a platform mode
                used = default_mode if platform.modes and default_mode else ""
                note = "; ".join(filter(None, [note, f"operating_mode {mode!r} is not a mode of platform "
                                                     f"{platform.name}; predicted against {used or 'its base numbers'}"]))
                mode = used
            elif not mode and platform.modes and default_mode:
                mode = default_mode
            point = platform.point(mode or None)
            batch = int(row.get("compute_batch") or row.get("batch") or 1)  # compute fps is per compute batch
            pred = predict(cost, point, prec, batch, "roofline", name=Path(path).stem,
                           weight_precision=cost.stored_precision)
            measured = float(row.get("compute_throughput") or 0.0)
            if pred is None or measured <= 0:
                skipped.append(Skipped(i, "no prediction for this precision" if pred is None else "no compute throughput"))
                continue
            peak_ops = point.peak_tops[pred.carrier] * 1e12
            out.append(EfficiencyRow(
                model=Path(path).stem, platform=point.platform, mode=point.mode, precision=prec, batch=batch,
                measured_fps=measured, predicted_fps=pred.inputs_per_s, predictor=pred.predictor, bound=pred.bound,
                efficiency=measured / pred.inputs_per_s, peak_fraction=measured * cost.ops / peak_ops,
                backend=str(row.get("backend") or ""), scenario=str(row.get("scenario") or ""), note=note))
        except MlperfExtError as exc:
            skipped.append(Skipped(i, str(exc)))
    return out, skipped


def correlations(rows: list[EfficiencyRow]) -> list[Correlation]:
    """Pearson and Spearman r (and p) of predicted vs measured fps per platform; NaN below 3 points or for
    constant inputs, where a correlation is undefined."""
    from scipy import stats

    by: dict[str, list[EfficiencyRow]] = {}
    for r in rows:
        by.setdefault(r.platform, []).append(r)
    out = []
    for platform, rs in sorted(by.items()):
        pred = [r.predicted_fps for r in rs]
        meas = [r.measured_fps for r in rs]
        nan = math.nan
        if len(rs) < 3 or len(set(pred)) < 2 or len(set(meas)) < 2:
            out.append(Correlation(platform, len(rs), nan, nan, nan, nan))
            continue
        pr = stats.pearsonr(pred, meas)
        sr = stats.spearmanr(pred, meas)
        out.append(Correlation(platform, len(rs), float(pr.statistic), float(pr.pvalue),
                               float(sr.statistic), float(sr.pvalue)))
    return out
