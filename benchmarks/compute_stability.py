"""Is the compute timing stable enough that `noisy` means a noisy host? INT8 ResNet-50 points through the
whole runner, on a quiet host and with a competing load that starts mid-run, counting the `noisy` flags.

Each point is the zoo's resnet50-int8 (seeded weights) on --backend (ONNX Runtime or OpenVINO) in Offline
at batch 8 with 2 threads and 2 streams, quick profile, on 64 synthetic 224x224 images. `quiet` runs it as
it is; `loaded` runs it through tests.harness.faulty_backends' load-injecting subclass of that backend,
which starts one busy process per CPU at the first batch of the LoadGen run (so the compute timing after
the run shares the cores). With
--baseline-root DIR the quiet runs are repeated with the harness of another checkout (say a worktree of
an earlier commit), interleaved, so before and after are measured on the same host in the same run.

Prints for each variant: how many of --runs points were flagged noisy, and the median and largest drift
between the compute timing before and after the LoadGen run. Goal: quiet 0 of N, loaded N of N.

Usage: python benchmarks/compute_stability.py [--runs 5] [--backend onnxruntime|openvino] [--baseline-root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOADED = {"onnxruntime": "tests.harness.faulty_backends:LoadInjectingBackend",
          "openvino": "tests.harness.faulty_backends:LoadInjectingOpenVinoBackend"}


def child(root: str, model: str, dataset: str, backend: str, workdir: str) -> dict:
    sys.path.insert(0, root)
    from mlperf_ext.config import RunPoint
    from tiers.sweep import run_points

    point = RunPoint(model=model, dataset=dataset, backend=backend, scenario="Offline", batch=8, threads=2,
                     streams=2, profile="quick", timeout_s=600)
    r = run_points([point], Path(workdir))[-1]
    c = r.compute
    return {"status": r.status, "drift": c.drift, "before": c.before_throughput, "after": c.after_throughput,
            "noisy": "noisy" in r.flags, "system_above_compute": "system_above_compute" in r.flags}


def run_point(root: Path, model: Path, dataset: Path, backend: str) -> dict:
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.run([sys.executable, __file__, "--child", str(root), str(model), str(dataset), backend, work],
                              capture_output=True, text=True, cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})  # the point's own children too
    if proc.returncode != 0:
        raise SystemExit(f"{backend} from {root} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(directory: Path) -> tuple[Path, Path]:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from mlperf_ext.zoo import registry

    (model,) = registry.build(["resnet50-int8"], directory / "models")
    data = directory / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    np.save(data / "samples.npy", rng.standard_normal((64, 3, 224, 224), dtype=np.float32))
    np.save(data / "labels.npy", rng.integers(0, 1000, 64))
    return model, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=sorted(LOADED), default="onnxruntime")
    parser.add_argument("--baseline-root", type=Path, help="another checkout: its quiet runs, interleaved")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    variants = {"quiet": (ROOT, args.backend), "loaded": (ROOT, LOADED[args.backend])}
    if args.baseline_root:
        variants["baseline quiet"] = (args.baseline_root.resolve(), args.backend)
    found: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        model, dataset = prepare(Path(tmp))
        for k in range(args.runs):
            order = list(variants)
            order = order[k % len(order):] + order[:k % len(order)]  # rotated: none always runs first
            for variant in order:
                root, backend = variants[variant]
                r = run_point(root, model, dataset, backend)
                found[variant].append(r)
                print(f"  run {k + 1} {variant}: {r['status']}, drift {100 * r['drift']:.1f} % "
                      f"({r['before']:,.1f} -> {r['after']:,.1f}/s){' NOISY' if r['noisy'] else ''}",
                      file=sys.stderr, flush=True)
    for variant, rows in found.items():
        drifts = [100 * r["drift"] for r in rows]
        noisy = sum(r["noisy"] for r in rows)
        print(f"{variant:<15} noisy {noisy} of {len(rows)}; drift median {statistics.median(drifts):.1f} %, "
              f"max {max(drifts):.1f} %; system above compute {sum(r['system_above_compute'] for r in rows)}")


if __name__ == "__main__":
    main()
