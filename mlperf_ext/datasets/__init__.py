"""Datasets: the interface, the `.npy` directory reader, named input arrays (`.npz`, `inputs/`) for models with
several inputs, and the datasets shipped in packages.

`open_dataset(ref)` accepts a directory path, an `.npz` file or a built-in name from `BUILTIN` (e.g. `mnist`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlperf_ext.datasets.base import ArrayDataset, Dataset
from mlperf_ext.datasets.named_arrays import open_inputs_dir, open_npz
from mlperf_ext.datasets.npy_dir import NpyDirDataset
from mlperf_ext.errors import DatasetError

#: built-in dataset name -> factory; filled by the modules that ship data (see register_builtin)
BUILTIN: dict[str, Callable[[], Dataset]] = {}


def register_builtin(name: str, factory: Callable[[], Dataset]) -> None:
    BUILTIN[name] = factory


def _load_builtins() -> None:
    """Import the modules that register built-in datasets (kept lazy: some read files on first use)."""
    from mlperf_ext.datasets import builtin  # noqa: F401


def open_dataset(ref: str | Path) -> Dataset:
    """A dataset from a directory path or a built-in name; one clear error otherwise."""
    path = Path(ref)
    if path.is_dir():
        if (path / "inputs").is_dir():
            return open_inputs_dir(path)
        return NpyDirDataset(path)
    if path.suffix == ".npz" and path.is_file():
        return open_npz(path)
    try:
        _load_builtins()
    except ModuleNotFoundError:
        pass
    if str(ref) in BUILTIN:
        return BUILTIN[str(ref)]()
    names = ", ".join(sorted(BUILTIN)) or "none"
    raise DatasetError(f"dataset '{ref}' is neither a directory, an .npz file nor a built-in dataset ({names}); "
                       "fix: pass an existing .npy directory, an .npz file or one of those names")


__all__ = ["ArrayDataset", "BUILTIN", "Dataset", "NpyDirDataset", "open_dataset", "register_builtin"]
