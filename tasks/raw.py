"""Raw: every output of a sample stored as it is, nothing scored.

A sample's payload is its slice of each output, in the model's output order, as C-contiguous bytes of the
output's own dtype, one after the other: what a user's own scorer reads back from LoadGen's accuracy log
(`decode`). For models whose answer this project has no task for, and for checking a new model end to end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from tasks.base import BaseTask


class RawTask(BaseTask):
    """Nothing is scored, so any dataset and any outputs will do (the defaults)."""

    name: ClassVar[str] = "raw"

    def payloads(self, outputs: dict[str, np.ndarray], indices: Sequence[int]) -> list[np.ndarray]:
        arrays = [np.ascontiguousarray(a) for a in outputs.values()]
        n = len(indices)
        if len(arrays) == 1:
            return [arrays[0][k].reshape(-1).view(np.uint8) for k in range(n)]
        return [np.concatenate([a[k].reshape(-1).view(np.uint8) for a in arrays]) for k in range(n)]


def decode(data_hex: str, layout: Sequence[tuple[str, str, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    """One accuracy-log entry's `data` back into named arrays; `layout` lists (name, dtype, per-sample shape) in
    the model's output order."""
    raw = bytes.fromhex(data_hex)
    out, offset = {}, 0
    for name, dtype, shape in layout:
        count = int(np.prod(shape))
        out[name] = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += count * np.dtype(dtype).itemsize
    if offset != len(raw):
        raise ValueError(f"payload holds {len(raw)} bytes, the layout {offset}")
    return out
