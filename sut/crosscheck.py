"""Run every built zoo artifact on ONNX Runtime and OpenVINO and print an accuracy table.

This is how the backends' `supports` claims are checked: `python -m sut.crosscheck <models_dir>
[names...]` builds (cached) the requested models, measures held-out top-1 on both runtimes (called
directly, not through the backend, so a refusal the backend claims is put to the test), and flags any
disagreement between what happened and what the backend's `supports` says.

Models without a dataset (the standard architectures: seeded random weights, speed only) have no
accuracy to measure; they get a load-and-run check on a small random batch. Without names only the
models that have a dataset are checked, so a plain run never builds the large architectures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_ext.zoo.evaluate import accuracy, openvino_logits, ort_logits
from mlperf_ext.zoo.metadata import read_metadata
from mlperf_ext.zoo.registry import build, list_models, model_info
from sut.base import DeploymentOptions
from sut.model_file import inspect_model
from sut.registry import backend_class

BACKENDS = ("onnxruntime", "openvino")


@dataclass
class CrossResult:
    name: str
    backend: str
    accuracy: float | None
    error: str | None
    claimed_ok: bool
    claim_reason: str
    check: str = "top-1"  # "top-1" on the held-out set, or "load/run" for models without a dataset

    @property
    def claim_holds(self) -> bool:
        return self.claimed_ok == (self.error is None)


RUN_CHECK_BATCH = 2  # random inputs fed to a model without a dataset


def _held_out(dataset: str):
    """(x, y) of the held-out split in the layout the family's models take."""
    from mlperf_ext.datasets.mnist import cnv_input, mlp_input, mnist_split

    if dataset not in ("mnist", "mnist32"):
        raise ValueError(f"crosscheck has no held-out split for dataset {dataset!r} (knows mnist, mnist32)")
    _x_train, _y_train, x_test, y_test = mnist_split()
    if dataset == "mnist32":
        return cnv_input(x_test), y_test
    return mlp_input(x_test), y_test


def _random_input(path: Path) -> np.ndarray:
    """A small float32 batch of the model's first input shape (symbolic dims other than batch = 1)."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    shape = [RUN_CHECK_BATCH] + [d.dim_value if d.dim_value > 0 else 1 for d in dims[1:]]
    return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def _logits(path: Path, x: np.ndarray, backend: str) -> np.ndarray:
    if backend == "onnxruntime":
        return ort_logits(path, x)
    if backend == "openvino":
        return openvino_logits(path, x)
    raise ValueError(f"no evaluator for backend {backend!r}")


def default_names() -> list[str]:
    """What a crosscheck without names covers: the models that have a held-out dataset."""
    return [i.name for i in list_models() if i.dataset is not None and not i.family.endswith("-tflite")]


def claim(path: Path, backend: str) -> tuple[bool, str]:
    """(can run, why) as the backend's `supports` says for this file with default options."""
    reason = backend_class(backend).supports(inspect_model(path), DeploymentOptions())
    return reason is None, reason or f"{backend} claims it runs this variant"


def crosscheck(names: list[str] | None, models_dir: Path) -> list[CrossResult]:
    """Check `names` (None = default_names()) on each backend against what its `supports` claims."""
    if names is None:
        names = default_names()
    results = []
    for path in build(names, models_dir, progress=lambda m: print(m, file=sys.stderr)):
        meta = read_metadata(path) or {}
        info = model_info(meta.get("name", path.stem))
        held_out = _held_out(info.dataset) if info.dataset is not None else None
        for backend in BACKENDS:
            ok, why = claim(path, backend)
            acc, err = None, None
            try:
                if held_out is not None:
                    acc = accuracy(path, *held_out, backend)
                else:
                    x = _random_input(path)
                    out = _logits(path, x, backend)
                    if out.shape[0] != len(x) or not np.isfinite(out).all():
                        raise ValueError(f"output of shape {out.shape} is not {len(x)} finite rows")
            except Exception as exc:  # noqa: BLE001 - the point is to record what each runtime says
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                err = f"{type(exc).__name__}: {' / '.join(lines[-2:])[:160]}"
            results.append(CrossResult(path.stem, backend, acc, err, ok, why,
                                       "top-1" if held_out is not None else "load/run"))
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
        if r.accuracy is not None:
            acc = f"{100 * r.accuracy:6.1f}%"
        else:
            acc = " ran ok" if r.check == "load/run" and r.error is None else "   --  "
        mark = "ok" if r.claim_holds else "WRONG"
        bad += not r.claim_holds
        print(f"{r.name:24s} {r.backend:12s} {acc}  {mark:5s}  {r.error or ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
