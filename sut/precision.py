"""Naming the precision that executed, from what a runtime reports about its compute-heavy ops.

Each backend reads its runtime's own evidence (OpenVINO's runtime model, ORT's profiler kernels) into
`HeavyOp`s; `summarize` turns them into the row's words ("int8", "fp32 with int4 weights", "mixed: 3
of 4 FullyConnected fp32 with int4 weights, 1 fp32") and into the one datatype level 0 predicts
against. A label (the variant's name) is never evidence of what ran.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

#: runtime element-type spellings (ORT profiler, OpenVINO element types and rt_info) -> project names
DTYPE_NAMES = {
    "float": "fp32", "float32": "fp32", "f32": "fp32", "double": "fp64", "f64": "fp64",
    "float16": "fp16", "f16": "fp16", "mlfloat16": "fp16", "half": "fp16",
    "bfloat16": "bf16", "bf16": "bf16",
    "uint8": "int8", "int8": "int8", "u8": "int8", "i8": "int8", "uint8_t": "int8", "int8_t": "int8",
    "uint4": "int4", "int4": "int4", "u4": "int4", "i4": "int4", "uint4_t": "int4", "int4_t": "int4",
    "int4x2": "int4", "uint4x2": "int4",
    "uint2": "int2", "int2": "int2", "u2": "int2", "i2": "int2", "int2x4": "int2", "uint2x4": "int2",
}
#: bits per datatype, to pick the widest compute type on a tie
#: (tf32 counts its 19 significant bits here, to rank it between fp32 and fp16; level 0 stores it in 32)
_BITS = {"fp64": 64, "fp32": 32, "tf32": 19, "bf16": 16, "fp16": 16, "int8": 8, "int4": 4, "int2": 2}


def dtype_name(spelling: str) -> str:
    """The project's name for a runtime's element-type spelling ('' for types that are not numbers)."""
    text = str(spelling).strip().lower()
    if text.startswith("<type: '"):
        text = text[len("<type: '"):].rstrip("'>")
    return DTYPE_NAMES.get(text, "")


@dataclass(frozen=True)
class HeavyOp:
    """One compute-heavy op as the runtime executes it: its kind, the datatype it computes in, and the
    datatype its weights are stored in (None when the same as the compute type or unknown)."""

    kind: str
    compute: str
    weights: str | None = None

    @property
    def words(self) -> str:
        if self.weights and self.weights != self.compute:
            return f"{self.compute} with {self.weights} weights"
        return self.compute


def summarize(ops: list[HeavyOp], suffix: str = "") -> tuple[str, str]:
    """(what executed, in words; the compute datatype level 0 should use). Mixed graphs name each share;
    the compute datatype is the one most heavy ops ran in (the wider one on a tie)."""
    ops = [op for op in ops if op.compute]
    if not ops:
        return "unknown (the runtime reported no compute-heavy op)", ""
    groups = Counter(op.words for op in ops)
    kinds = sorted({op.kind for op in ops})
    if len(groups) == 1:
        text = next(iter(groups))
    else:
        parts = [f"{n} of {len(ops)} {'/'.join(kinds)} {words}" if i == 0 else f"{n} {words}"
                 for i, (words, n) in enumerate(groups.most_common())]
        text = "mixed: " + ", ".join(parts)
    compute = Counter(op.compute for op in ops)
    top = max(compute.values())
    dtype = max((d for d, n in compute.items() if n == top), key=lambda d: _BITS.get(d, 0))
    return text + (f" ({suffix})" if suffix else ""), dtype
