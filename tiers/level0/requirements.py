"""Model requirement files: level-0 costs of models that have no ONNX file (published tables).

Why: QuTiBench's model table (GOPs, million parameters) covers models we cannot build here
(EfficientNet-Edge, pruned ResNet-50 variants); predictions should work from such numbers as well.

Format (YAML)::

    models:
      - name: ResNet-50 100%
        ops_g: 7.7          # GOPs per input (2 per MAC)
        params_m: 25.5      # million parameter elements
        activations_m: 10.9 # optional, million activation elements
        precisions: [int8, fp16, fp32]
        source: QuTiBench cnn_topologies_compute_memory_requirements.csv
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mlperf_ext.errors import ConfigError
from mlperf_ext.yaml_file import read_yaml
from tiers.level0.graph import PRECISION_BITS


@dataclass
class ModelRequirement:
    """A model known by its published totals; weights are assumed stored at the precision asked for."""

    name: str
    ops: float  # per input
    params: float
    precisions: list[str]
    activation_elements: float | None = None
    source: str = ""

    def weight_bytes_at(self, precision: str | None = None) -> float:
        prec = precision or self.precisions[0]
        return self.params * PRECISION_BITS[prec] / 8

    def operational_intensity(self, precision: str | None = None, batch: int = 1) -> float:
        wb = self.weight_bytes_at(precision)
        return math.inf if wb == 0 else batch * self.ops / wb


def _positive(where: str, key: str, v, optional: bool = False) -> float | None:
    if v is None and optional:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
        raise ConfigError(f"{where}: {key} = {v!r} is not a non-negative number; fix: give {key} as a number")
    return float(v)


def parse_requirement(entry: dict, origin: str) -> ModelRequirement:
    if not isinstance(entry, dict):
        raise ConfigError(f"{origin}: a model entry must be a mapping; fix: see docs/level0.md")
    where = f"{origin}: model '{entry.get('name')}'"
    missing = [k for k in ("name", "ops_g", "params_m", "precisions") if k not in entry]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}; fix: add them (see docs/level0.md)")
    unknown = set(entry) - {"name", "ops_g", "params_m", "activations_m", "precisions", "source"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; fix: remove or rename them")
    precs = entry["precisions"]
    if isinstance(precs, str):
        precs = [precs]
    if not isinstance(precs, list) or not precs:
        raise ConfigError(f"{where}: precisions must be a non-empty list; fix: e.g. 'precisions: [int8, fp32]'")
    precs = [str(p).lower() for p in precs]
    bad = [p for p in precs if p not in PRECISION_BITS]
    if bad:
        raise ConfigError(f"{where}: unknown precision(s) {', '.join(bad)}; fix: use any of {', '.join(PRECISION_BITS)}")
    act = _positive(where, "activations_m", entry.get("activations_m"), optional=True)
    return ModelRequirement(
        name=str(entry["name"]), ops=_positive(where, "ops_g", entry["ops_g"]) * 1e9,
        params=_positive(where, "params_m", entry["params_m"]) * 1e6, precisions=precs,
        activation_elements=act * 1e6 if act is not None else None, source=str(entry.get("source", "")))


def load_requirements(path: str | Path) -> list[ModelRequirement]:
    path = Path(path)
    data = read_yaml(path, "models file")
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"models file '{path}' must hold a non-empty list under 'models:'; fix: see docs/level0.md")
    return [parse_requirement(e, str(path)) for e in entries]
