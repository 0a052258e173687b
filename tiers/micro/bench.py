"""Levels 1 and 2 through the point runner: every unique cut becomes runnable model files, a seeded
synthetic dataset and points (SingleStream at batch 1 and Offline at the point's batch, on each backend),
next to the whole model's own points (level 3) at the same deployment, all in the same store.

A cut with a second activation input (a residual shortcut a stack reads from outside) runs with that
input bound as a constant of the point's batch, in a model of that fixed batch: its bytes are resident,
as the backend would hold a tensor another layer just wrote; the row says so. The cut's facts (level,
layer, op type, occurrences, parent model) travel in the JSON next to its model file and become the
row's `level`, `layer`, `op_type`, `occurrences` and `parent_model` columns.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from mlperf_ext.config import RunPoint
from mlperf_ext.result import PointResult
from tiers.micro.cut import Cut, CutSet, cut_model
from tiers.micro.inputs import synthetic_inputs
from tiers.micro.source import TensorSpec

#: LoadGen duration of a micro point: long enough for SingleStream's early-stopping query count on a
#: layer that takes microseconds, short enough that ResNet-50's ~45 unique layers take minutes
MICRO_MIN_DURATION_MS = 300
#: synthetic samples per cut dataset (the QSL's loaded set)
SAMPLES = 64
SEED = 0


@dataclass
class MicroTarget:
    """One runnable benchmark of a micro sweep: a cut (or the whole model, level 3) and its files."""

    level: int  # 1, 2 or 3 (the whole model)
    name: str  # the cut's name, or the model's for level 3
    size: int | None  # level 2: layers per stack
    cut: Cut | None
    models: dict[int, Path]  # batch -> model file
    dataset: Path
    points: list[RunPoint] = field(default_factory=list)
    results: list[PointResult | None] = field(default_factory=list)  # each point's stored result, after the run


def _primary(inputs: tuple[TensorSpec, ...]) -> TensorSpec:
    """The activation that flows through the cut: the largest input (the others are bound as constants)."""
    return max(inputs, key=lambda s: int(np.prod([d or 1 for d in s.shape])))


def runnable(cut: Cut, batch: int, seed: int = SEED) -> tuple[onnx.ModelProto, bool]:
    """The cut as a one-input model: (model, whether other inputs were bound as constants of `batch`)."""
    if len(cut.inputs) == 1:
        return cut.model, False
    primary = _primary(cut.inputs)
    model = onnx.ModelProto.FromString(cut.model.SerializeToString())
    others = [s for s in cut.inputs if s.name != primary.name]
    values = synthetic_inputs(others, batch=batch, seed=seed + 1)
    keep = [i for i in model.graph.input if i.name == primary.name]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = batch  # the constants fix the batch: say so in the input, not at run time
    model.graph.initializer.extend(numpy_helper.from_array(values[s.name], s.name) for s in others)
    onnx.checker.check_model(model)
    return model, True


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def file_stem(name: str) -> str:
    """A file name for a cut: node names such as torch's "/features/0/Conv" hold path separators, so the
    name is made safe, with a short hash of the original when it changed (two names cannot collide)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "layer"
    return stem if stem == name else f"{stem}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def materialize(cut: Cut, out_dir: Path, batches: tuple[int, ...], parent_meta: dict, size: int | None) -> MicroTarget:
    """Write the cut's model file(s), its metadata and its synthetic dataset under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[int, Path] = {}
    stem = file_stem(cut.name)
    for batch in batches:
        model, constants = runnable(cut, batch)
        path = out_dir / (f"{stem}-b{batch}.onnx" if constants else f"{stem}.onnx")
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(model.SerializeToString())
            tmp.replace(path)
        models[batch] = path
        _write_json(path.with_suffix(".json"), {
            "name": path.stem, "family": "micro", "precision": parent_meta.get("precision"),
            "pruning": parent_meta.get("pruning"),
            "micro": {"level": cut.level, "layer": cut.name, "op_type": cut.op_type, "occurrences": cut.occurrences,
                      "parent_model": cut.parent_model, "kind": cut.kind, "stack_size": size,
                      "signature": cut.signature, "ops": cut.ops, "weight_bytes": cut.weight_bytes,
                      "note": "shortcut inputs bound as constants of the batch" if constants else ""}})
    data = out_dir / f"{stem}-data"
    if not (data / "samples.npy").exists():
        data.mkdir(exist_ok=True)
        primary = _primary(cut.inputs)
        np.save(data / "samples.npy", synthetic_inputs([primary], batch=SAMPLES, seed=SEED)[primary.name])
    return MicroTarget(cut.level, cut.name, size, cut, models, data)


def whole_model_target(model: Path, name: str, out_dir: Path, batches: tuple[int, ...]) -> MicroTarget:
    """Level 3: the parent model itself, on a synthetic dataset of its input (for the sum of the parts)."""
    from sut.model_file import inspect_model

    info = inspect_model(model)
    specs = [TensorSpec(s.name, s.shape, np.dtype(s.dtype), 0) for s in info.inputs]
    if len(specs) > 1:  # named arrays, one per input (a decoder step: its tokens and its KV cache)
        data = out_dir / f"{name}-data.npz"
        if not data.exists():
            out_dir.mkdir(parents=True, exist_ok=True)
            np.savez(data, **synthetic_inputs(specs, batch=SAMPLES, seed=SEED))
        return MicroTarget(3, name, None, None, {b: Path(model) for b in batches}, data)
    data = out_dir / f"{name}-data"
    if not (data / "samples.npy").exists():
        data.mkdir(parents=True, exist_ok=True)
        np.save(data / "samples.npy", synthetic_inputs(specs, batch=SAMPLES, seed=SEED)[specs[0].name])
    return MicroTarget(3, name, None, None, {b: Path(model) for b in batches}, data)


def points_for(target: MicroTarget, backends: list[str], batch: int, threads: int | None, mlperf_model: str,
               device: str = "cpu", settings: dict | None = None) -> list[RunPoint]:
    """SingleStream at batch 1 and Offline at `batch`, on each backend (one LoadGen test per point)."""
    settings = {"min_duration_ms": MICRO_MIN_DURATION_MS, **(settings or {})}
    out = []
    for backend in backends:
        for scenario, b in (("SingleStream", 1), ("Offline", batch)):
            model = target.models[b]
            out.append(RunPoint(model=str(model), dataset=str(target.dataset), backend=backend, scenario=scenario,
                                batch=b, threads=threads, device=device, settings=dict(settings),
                                model_name=f"{mlperf_model}/{target.name}" if target.level < 3 else target.name,
                                mlperf_model=mlperf_model, timeout_s=600))
    target.points = out
    return out


def plan_micro(model: Path, name: str, levels: tuple[int, ...], sizes: tuple[int, ...], backends: list[str],
               batch: int, threads: int | None, out_dir: Path, parent_meta: dict | None = None,
               device: str = "cpu") -> tuple[list[MicroTarget], dict[str, CutSet]]:
    """Cut the model, write every unique cut's files, and make the points (level 3 included)."""
    parent_meta = parent_meta or {}
    cuts = cut_model(model, name=name, levels=tuple(lv for lv in levels if lv in (1, 2)), sizes=sizes)
    sets: dict[str, CutSet] = {}
    if cuts.level1 is not None:
        sets["1"] = cuts.level1
    for size, cutset in cuts.level2.items():
        sets[f"2x{size}"] = cutset
    batches = tuple(sorted({1, batch}))
    targets: list[MicroTarget] = []
    for label, cutset in sets.items():
        size = cutset.size
        for cut in cutset.cuts:
            target = materialize(cut, out_dir / f"level{label}", batches, parent_meta, size)
            points_for(target, backends, batch, threads, name, device)
            targets.append(target)
    whole = whole_model_target(model, name, out_dir, batches)
    points_for(whole, backends, batch, threads, name, device)
    targets.append(whole)
    return targets, sets
