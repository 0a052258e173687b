"""The core's subcommands: `results` (the stored table, one run's evidence, CSV) and `models` (the zoo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlperf_ext.errors import ConfigError

DEFAULT_WORKDIR = Path("work")


def add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="where results.sqlite, runs/ and models/ live (default: ./work)")


def add_wide(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wide", action="store_true", help="lay tables out wide and never cut long text")


def _store(workdir: Path):
    from mlperf_ext.store import STORE_NAME, ResultsStore

    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file, not a directory; fix: name the workdir of a run")
    path = workdir / STORE_NAME
    if not path.exists():
        raise ConfigError(f"no results in {workdir}; fix: run 'mlperf-ext run' first or pass --workdir")
    return ResultsStore(path, create=False)


def cmd_results(args) -> int:
    from mlperf_ext.tables import print_results, print_run

    store = _store(args.workdir)
    if args.action == "show":
        if not args.run_id:
            raise ConfigError("'results show' needs a run id; fix: mlperf-ext results show RUN_ID (the 'run' column)")
        row = store.by_run_id(args.run_id) or next(
            (r for r in store.rows(latest_only=False) if r["run_id"].endswith(args.run_id)), None)
        if row is None:
            raise ConfigError(f"no run '{args.run_id}' in {args.workdir}; fix: copy a run id from 'mlperf-ext results'")
        from mlperf_ext.result import PointResult

        print_run(PointResult.from_row(row), wide=args.wide)
        return 0
    print_results(store.results(latest_only=not args.all), wide=args.wide)
    if args.csv:
        count = store.export_csv(args.csv, latest_only=not args.all)
        print(f"wrote {count} rows to {args.csv}", file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    from mlperf_ext.tables import print_models
    from mlperf_ext.zoo import registry

    models_dir = args.workdir / "models"
    if args.action == "list":
        print_models(registry.list_models(), models_dir, wide=args.wide)
        return 0
    paths = registry.build(args.names or None, models_dir,
                           progress=lambda msg: print(msg, file=sys.stderr), force=args.force)
    for path in paths:
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    results = sub.add_parser("results", help="print stored results; 'results show RUN_ID' for one run's evidence")
    results.add_argument("action", nargs="?", choices=("show",), help="show: one run in full")
    results.add_argument("run_id", nargs="?", help="the run to show (the 'run' column; a unique suffix will do)")
    results.add_argument("--csv", type=Path, default=None, metavar="FILE",
                         help="also write the rows (every column) to this CSV file")
    results.add_argument("--all", action="store_true", help="every row, not only the newest per point")
    add_wide(results)
    add_workdir(results)
    results.set_defaults(func=cmd_results)

    models = sub.add_parser("models", help="the model zoo: list or build")
    models.add_argument("action", choices=("list", "build"))
    models.add_argument("names", nargs="*", help="models to build (default: all)")
    models.add_argument("--force", action="store_true", help="rebuild even if cached")
    add_wide(models)
    add_workdir(models)
    models.set_defaults(func=cmd_models, rest_into="names")
