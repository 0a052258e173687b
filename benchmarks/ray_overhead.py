"""What Ray costs per point: the same small sweep (null-backend Offline points, each its own child and
LoadGen test) through the local executor and through the Ray executor on a local cluster, alternating,
in one run. Prints seconds per point for each and their ratio (ray / local), medians over --rounds.
The Ray cluster is started once (its start-up is reported apart, not charged to the points).

Usage: python benchmarks/ray_overhead.py [--rounds 3] [--points 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--points", type=int, default=4)
    args = parser.parse_args()

    import ray
    from rich.console import Console

    from mlperf_ext.config import RunPoint
    from tiers.runner.ray_executor import HOST_RESOURCE, RayExecutor
    from tiers.sweep import run_points

    t0 = time.perf_counter()
    ray.init(resources={HOST_RESOURCE: 1}, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - the sweep's own lines are not the output
    points = [RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Offline", batch=256 * (k + 1),
                       settings={"min_duration_ms": 300}) for k in range(args.points)]
    per_point: dict[str, list[float]] = {"local": [], "ray": []}
    for round_no in range(args.rounds):
        order = ("local", "ray") if round_no % 2 == 0 else ("ray", "local")
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                results = run_points(points, Path(tmp), console=quiet,
                                     executor=RayExecutor() if name == "ray" else None)
                elapsed = time.perf_counter() - start
            assert len(results) == len(points) and all(r.status == "ok" for r in results), \
                [(r.status, r.error) for r in results]
            per_point[name].append(elapsed / len(points))
    ray.shutdown()
    local, remote = (statistics.median(per_point[k]) for k in ("local", "ray"))
    print(f"local executor: {local:.3f} s per point (median of {args.rounds} sweeps of {args.points} points)")
    print(f"ray executor  : {remote:.3f} s per point (one local node; cluster start-up {startup:.1f} s, not counted)")
    print(f"ratio ray/local: {remote / local:.3f}  (Ray's scheduling and result transfer per point: "
          f"{remote - local:+.3f} s)")


if __name__ == "__main__":
    main()
