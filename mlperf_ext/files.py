"""Writing a file so that a reader never sees half of it: a temp file beside it, renamed over it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mlperf_ext.errors import ConfigError


def write_atomic(path: Path, data: str | bytes) -> int:
    """Write `data` (text as UTF-8) to `path` atomically; returns the bytes written. An OS error is one
    ConfigError line naming the path, and no temp file is left behind."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc}); fix: name a writable path") from exc
    return len(payload)
