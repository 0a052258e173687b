"""The zoo's public API: which models exist, where their artifacts live, and building them (cached).

Families plug in with `register_family(name, list_fn, build_fn)`. The built-in ones register
themselves when their module is imported; `_load_families()` imports `mlperf_ext.zoo.mlp` and every
module of this package whose name starts with `cnv` or `archs`, so a new family module needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlperf_ext.errors import ConfigError
from mlperf_ext.zoo.metadata import ModelInfo, read_metadata

Progress = Callable[[str], None]
#: build_fn(info, models_dir, progress, force) -> path of the ONNX artifact (builds or reuses the cache)
BuildFn = Callable[[ModelInfo, Path, Progress | None, bool], Path]

#: prefixes of this package's modules that register families when imported
FAMILY_MODULE_PREFIXES = ("mlp", "cnv", "archs", "tflite", "detector", "decoder")


@dataclass(frozen=True)
class Family:
    name: str
    list_fn: Callable[[], list[ModelInfo]]
    build_fn: BuildFn
    suffix: str = ".onnx"  # the artifact's file suffix


_FAMILIES: dict[str, Family] = {}
_loaded = False


def register_family(name: str, list_fn: Callable[[], list[ModelInfo]], build_fn: BuildFn,
                    suffix: str = ".onnx") -> None:
    """Add (or replace) a family: `list_fn()` names its models, `build_fn` builds one of them."""
    _FAMILIES[name] = Family(name, list_fn, build_fn, suffix)


def unregister_family(name: str) -> None:
    _FAMILIES.pop(name, None)


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    import mlperf_ext.zoo as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        if mod.startswith(FAMILY_MODULE_PREFIXES):
            importlib.import_module(f"mlperf_ext.zoo.{mod}")
    _loaded = True


def list_models() -> list[ModelInfo]:
    """Every model the registered families can build, in family registration order."""
    _load_families()
    out: list[ModelInfo] = []
    for fam in list(_FAMILIES.values()):
        out.extend(fam.list_fn())
    return out


def _lookup(name: str) -> tuple[Family, ModelInfo]:
    _load_families()
    for fam in list(_FAMILIES.values()):
        for info in fam.list_fn():
            if info.name == name:
                return fam, info
    valid = ", ".join(i.name for i in list_models())
    raise ConfigError(f"unknown model '{name}'; fix: use one of {valid}")


def model_info(name: str) -> ModelInfo:
    return _lookup(name)[1]


def model_path(name: str, models_dir: Path) -> Path:
    """Where the artifact of `name` is, or will be once built."""
    fam, _info = _lookup(name)
    return Path(models_dir) / f"{name}{fam.suffix}"


def build(names: list[str] | None, models_dir: Path, progress: Progress | None = None,
          force: bool = False) -> list[Path]:
    """Build (or reuse cached) artifacts for `names` (None = all) under `models_dir`; ONNX paths in order.

    All names are checked before anything is built, so a typo fails fast. `force` rebuilds the
    ONNX artifacts; trained weights stay cached under the family's own cache key.
    """
    targets = [_lookup(n) for n in names] if names is not None else [_lookup(i.name) for i in list_models()]
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    return [fam.build_fn(info, models_dir, progress, force) for fam, info in targets]


__all__ = ["BuildFn", "Family", "ModelInfo", "build", "list_models", "model_info", "model_path",
           "read_metadata", "register_family", "unregister_family"]
