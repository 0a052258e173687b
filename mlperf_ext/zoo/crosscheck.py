"""Run every built zoo artifact on ONNX Runtime and OpenVINO and print an accuracy table.

This is how the facts in compat.py were checked: `python -m mlperf_ext.zoo.crosscheck <models_dir>
[names...]` builds (cached) the requested models, measures held-out top-1 on both runtimes, and
flags any disagreement between what happened and what `runnable_on` claims.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from mlperf_ext.zoo.compat import runnable_on
from mlperf_ext.zoo.evaluate import accuracy
from mlperf_ext.zoo.metadata import read_metadata
from mlperf_ext.zoo.registry import build, model_info

BACKENDS = ("onnxruntime", "openvino")


@dataclass
class CrossResult:
    name: str
    backend: str
    accuracy: float | None
    error: str | None
    claimed_ok: bool
    claim_reason: str

    @property
    def claim_holds(self) -> bool:
        return self.claimed_ok == (self.error is None)


def _held_out(dataset: str | None):
    """(x, y) of the held-out split in the layout the family's models take."""
    from mlperf_ext.datasets.mnist import cnv_input, mlp_input, mnist_split

    _x_train, _y_train, x_test, y_test = mnist_split()
    if dataset == "mnist32":
        return cnv_input(x_test), y_test
    return mlp_input(x_test), y_test


def crosscheck(names: list[str] | None, models_dir: Path) -> list[CrossResult]:
    results = []
    for path in build(names, models_dir, progress=lambda m: print(m, file=sys.stderr)):
        meta = read_metadata(path) or {}
        info = model_info(meta.get("name", path.stem))
        x, y = _held_out(info.dataset)
        for backend in BACKENDS:
            ok, why = runnable_on(meta, backend)
            try:
                acc, err = accuracy(path, x, y, backend), None
            except Exception as exc:  # noqa: BLE001 - the point is to record what each runtime says
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                acc, err = None, f"{type(exc).__name__}: {' / '.join(lines[-2:])[:160]}"
            results.append(CrossResult(path.stem, backend, acc, err, ok, why))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models_dir", type=Path)
    ap.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    results = crosscheck(args.names or None, args.models_dir)
    print(f"{'model':24s} {'backend':12s} {'top-1':>7s}  claim  note")
    bad = 0
    for r in results:
        acc = f"{100 * r.accuracy:6.1f}%" if r.accuracy is not None else "   --  "
        mark = "ok" if r.claim_holds else "WRONG"
        bad += not r.claim_holds
        print(f"{r.name:24s} {r.backend:12s} {acc}  {mark:5s}  {r.error or ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
