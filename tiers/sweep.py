"""Level 3 driver: validate every point of a grid first, then run them one by one (a child each),
store one row per point, skip points already stored, and show progress with an ETA."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mlperf_ext.config import RunPoint
from mlperf_ext.store import ResultsStore
from tiers.runner.launch import launch, refused_row
from tiers.runner.validate import PointValidator


def store_path(workdir: Path) -> Path:
    return workdir / "results.sqlite"


def model_resolver(models_dir: Path, say: Callable[[str], None] | None = None):
    """`resolve(ref) -> (onnx path, display name, default dataset)`; zoo names are built (cached)."""

    def resolve(ref: str):
        path = Path(ref)
        if path.suffix == ".onnx" or path.exists() or "/" in ref:
            return str(path.resolve()) if path.exists() else ref, path.stem, None
        from mlperf_ext.zoo import registry

        info = registry.model_info(ref)  # ConfigError listing the zoo for an unknown name
        built = registry.build([ref], models_dir, progress=say)[0]
        return str(built), info.name, info.dataset

    return resolve


def variant_of(point: RunPoint) -> dict | None:
    """The zoo's metadata for the model file (family, precision, pruning, how produced), if any."""
    from mlperf_ext.zoo.metadata import read_metadata

    return read_metadata(Path(point.model)) if Path(point.model).is_file() else None


def runnable(meta: dict | None, backend: str) -> tuple[bool, str]:
    """The zoo's compatibility facts (e.g. no INT2 on OpenVINO); the backend re-checks when it loads."""
    if not meta:
        return True, ""
    from mlperf_ext.zoo.compat import runnable_on

    return runnable_on(meta, backend)


def summary_line(row: dict) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    cfg = f"{row['model_name']} {row['backend']} {row['scenario']} {row['mode']} b{row['batch']} " \
          f"t{row['threads'] or 'auto'} s{row['streams']}"
    if row["status"] != "ok":
        return f"{cfg}: {row['status'].upper()} {(str(row.get('error') or '') or '-').splitlines()[0][:160]}"
    validity = {None: "", 1: "VALID", 0: "INVALID"}[row.get("valid")]
    parts = [f"{cfg}: {validity}".rstrip()]
    if row.get("accuracy") is not None:
        parts.append(f"acc {100 * row['accuracy']:.2f}%")
    if row.get("sys_throughput") is not None:
        parts.append(f"system {fmt(row['sys_throughput'], ',.0f')}/s p90 {fmt(row.get('sys_lat_p90_ms'), '.3f')} ms")
    if row.get("compute_throughput") is not None:
        parts.append(f"compute {fmt(row['compute_throughput'], ',.0f')}/s "
                     f"{fmt(row.get('compute_lat_mean_ms'), '.3f')} ms/batch")
    if row["profile"] == "quick":
        parts.append("(quick: not compliant)")
    return " | ".join(parts)


def run_points(points: Sequence[RunPoint], workdir: Path, force: bool = False,
               console: Console | None = None) -> list[dict]:
    """Run every point not already stored; returns the rows stored by this call."""
    console = console or Console(stderr=True)
    validator = PointValidator()
    for point in points:
        validator.check(point)  # all bad input is reported before anything runs
    workdir.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(store_path(workdir))
    rows: list[dict] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("points", total=len(points))
        for number, point in enumerate(points, 1):
            key = point.key()
            progress.update(task, description=f"[{number}/{len(points)}] {point.label()}")
            if not force and store.has_ok(key):
                progress.console.print(f"[{number}/{len(points)}] {point.label()}: stored, skipped "
                                       "(use --force to re-run)", soft_wrap=True)
                progress.advance(task)
                continue
            meta = variant_of(point)
            ok, reason = runnable(meta, point.backend)
            row = launch(point, workdir, key, meta) if ok else refused_row(point, workdir, key, reason, meta)
            store.append(row)
            rows.append(row)
            progress.console.print(f"[{number}/{len(points)}] {summary_line(row)}", markup=False, soft_wrap=True)
            progress.advance(task)
    return rows
