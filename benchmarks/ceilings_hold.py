"""Do the host ceilings hold? The best zoo-model compute rate per executed precision against the ceilings
`platforms detect` stores, quick and full, measured in the same run.

Prints, per precision the host executes: the fastest zoo model's achieved TOP/s (compute throughput at its
deployment x level 0's ops per sample), the quick and the full ceiling, and the ratios
  best model / ceiling     (goal <= 1.0: a model above its ceiling makes efficiency exceed 100 %)
  quick ceiling / full     (goal >= 0.75: the quick profile may be shorter, not lower by a quarter)
then every model row. Models: ResNet-50 fp32 and int8 (seeded weights), the trained MLP-2048 fp32 and int8
(their layers are GEMMs at the batch), on ONNX Runtime and OpenVINO (fp32 also with OpenVINO's bf16 hint
where the CPU has bf16 kernels), each as one stream with every thread and as one stream per thread, at
batch 8 (ResNet-50) or 8 and 32 (MLP). Compute is timed as the point runner times it (tiers.runner.compute,
the median of its windows) for --seconds per deployment.

Usage: python benchmarks/ceilings_hold.py [--seconds 1.0] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"resnet50-fp32": (8,), "resnet50-int8": (8,), "mlp-w2048-fp32": (8, 32), "mlp-w2048-int8": (8, 32)}


def model_rows(models_dir: Path, seconds: float) -> list[dict]:
    import numpy as np

    from mlperf_ext.zoo import registry
    from sut.base import DeploymentOptions
    from sut.registry import create_backend
    from tiers.level0.graph import analyze
    from tiers.micro.kernels import usable_cpus
    from tiers.runner.compute import measure_compute

    paths = dict(zip(MODELS, registry.build(list(MODELS), models_dir, progress=lambda m: print(f"  {m}",
                                                                                                 file=sys.stderr))))
    n = usable_cpus()
    rows = []
    for name, batches in MODELS.items():
        ops = analyze(str(paths[name])).ops
        for backend_name, exec_precision in (("onnxruntime", "model"), ("openvino", "model"), ("openvino", "bf16")):
            if exec_precision == "bf16" and "int8" in name:
                continue
            for batch in batches:
                for threads, streams in {(n, 1), (n, n)}:
                    backend = create_backend(backend_name)
                    try:
                        backend.load(paths[name], DeploymentOptions(threads=threads, streams=streams, max_batch=batch,
                                                                    exec_precision=exec_precision))
                    except Exception as exc:  # noqa: BLE001 - e.g. bf16 refused on a CPU without bf16 kernels
                        print(f"  {name} {backend_name} {exec_precision}: not run ({exc})", file=sys.stderr)
                        continue
                    x = np.random.default_rng(0).random((batch, *backend.input_spec().shape[1:]), dtype=np.float32)
                    timing = measure_compute(backend, x, streams, seconds)
                    dtype = backend.describe().compute_dtype
                    backend.close()
                    rows.append({"model": name, "backend": backend_name, "exec": exec_precision, "batch": batch,
                                 "threads": threads, "streams": streams, "dtype": dtype,
                                 "tops": timing.throughput * ops / 1e12, "spread": timing.spread})
                    print(f"  {name} {backend_name} {exec_precision} b{batch} t{threads} s{streams}: "
                          f"{rows[-1]['tops']:.4f} TOP/s in {dtype}", file=sys.stderr, flush=True)
    return rows


def ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="compute timing per deployment")
    parser.add_argument("--workdir", type=Path, help="where the zoo models are built (cached); default: a temp dir")
    args = parser.parse_args()
    from tiers.level0.host_ceilings import measure

    print("measuring the quick ceilings (platforms detect --quick)...", file=sys.stderr)
    quick = measure(quick=True).measured_peak_tops()
    print("measuring the full ceilings (platforms detect)...", file=sys.stderr)
    full = measure(quick=False).measured_peak_tops()
    with tempfile.TemporaryDirectory() as tmp:
        rows = model_rows(args.workdir or Path(tmp), args.seconds)
    print(f"{'precision':<9} {'best model':<44} {'TOP/s':>7} {'quick':>7} {'full':>7} {'model/quick':>11} "
          f"{'model/full':>10} {'quick/full':>10}")
    for dtype in sorted({r["dtype"] for r in rows}):
        best = max((r for r in rows if r["dtype"] == dtype), key=lambda r: r["tops"])
        where = f"{best['model']} {best['backend']} b{best['batch']} t{best['threads']} s{best['streams']}"
        q, f = quick.get(dtype), full.get(dtype)
        verdict = "OK" if q and f and best["tops"] <= min(q, f) and q / f >= 0.75 else "CHECK"
        print(f"{dtype:<9} {where:<44} {best['tops']:>7.4f} {q or 0:>7.4f} {f or 0:>7.4f} "
              f"{ratio(best['tops'], q):>11} {ratio(best['tops'], f):>10} {ratio(q, f):>10}  "
              f"(goals: model/ceiling <= 1, quick/full >= 0.75) {verdict}")
    print("every model row:")
    for r in sorted(rows, key=lambda r: (r["dtype"], -r["tops"])):
        ceiling = full.get(r["dtype"])
        print(f"  {r['dtype']:<5} {r['model']:<15} {r['backend']:<11} {r['exec']:<5} b{r['batch']:<3} "
              f"t{r['threads']} s{r['streams']}: {r['tops']:.4f} TOP/s"
              + (f" = {100 * r['tops'] / ceiling:.1f} % of the full ceiling" if ceiling else " (no ceiling)"))


if __name__ == "__main__":
    main()
