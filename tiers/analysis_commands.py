"""Analysis subcommands over stored results: `pareto` and `qutibench export|import|show`.

Why here: both read the results store and level 0 (the platform catalog, the graph analysis) and run
nothing, so they belong with the tiers that produce those rows; `mlperf_ext/cli.py` finds this module's
`register(subparsers)` through the `mlperf_ext.commands` entry-point group.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlperf_ext.commands import add_wide, add_workdir
from mlperf_ext.errors import ConfigError


def _add_level0(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platforms-file", action="append", default=[], type=Path,
                        help="extra platform YAML (format of tiers/level0/platforms.yaml); repeatable")
    parser.add_argument("--platform-mode", default=None, metavar="MODE",
                        help="platform mode level 0 uses for rows that name none (e.g. 'measured' for host)")


def _add_include_simulated(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include-simulated", action="store_true",
                        help="place rows whose timings come from a stand-in for hardware (--device fake on pynq); "
                             "they are left out by default and marked simulated when placed")


def _results(workdir: Path, scenarios: list[str] | None):
    """The latest row of each point in the workdir's store (the scenario names asked for are checked here;
    the callers filter, so that an accuracy can come from a row of another scenario)."""
    from mlperf_ext.loadgen import SCENARIOS
    from mlperf_ext.store import STORE_NAME, ResultsStore

    bad = [s for s in scenarios or () if s not in SCENARIOS]
    if bad:
        raise ConfigError(f"unknown scenario '{bad[0]}'; fix: use one of {', '.join(SCENARIOS)}")
    if workdir.exists() and not workdir.is_dir():
        raise ConfigError(f"--workdir {workdir} is a file, not a directory; fix: name the workdir of a run")
    if not (workdir / STORE_NAME).is_file():
        raise ConfigError(f"no results in {workdir}; fix: run 'mlperf-ext run' first or pass --workdir")
    return ResultsStore(workdir / STORE_NAME, create=False).results()


# -- pareto ----------------------------------------------------------------------------------------
def cmd_pareto(args) -> int:
    from tiers.level0.platforms import load_catalog
    from tiers.pareto import DEFAULT_OBJECTIVES, pareto_of_results, print_pareto, write_pareto_csv

    results = _results(args.workdir, args.scenario)
    catalog = None if args.no_level0 else load_catalog(args.platforms_file, args.workdir)
    report = pareto_of_results(results, args.objective or DEFAULT_OBJECTIVES, by_backend=args.by_backend,
                               catalog=catalog, default_mode=args.platform_mode,
                               borrow_accuracy=args.borrow_accuracy, scenarios=args.scenario or (),
                               platforms=args.platform or (), include_simulated=args.include_simulated)
    if not report.frontiers:
        print(f"no ok rows to place in {args.workdir} ({report.candidates} candidates); fix: run points first, "
              "or widen --scenario/--platform", file=sys.stderr)
    print_pareto(report, show_all=args.all, wide=args.wide)
    if args.csv:
        count = write_pareto_csv(report, args.csv)
        print(f"wrote {count} rows to {args.csv}", file=sys.stderr)
    return 0


# -- qutibench -------------------------------------------------------------------------------------
def cmd_qutibench(args) -> int:
    if args.action == "export":
        return _export(args)
    if args.action == "import":
        return _import(args)
    return _show(args)


def _export(args) -> int:
    from tiers.level0.platforms import load_catalog
    from tiers.qutibench import records_from_results, write_export

    if args.file is None:
        raise ConfigError("'qutibench export' needs a file to write; fix: mlperf-ext qutibench export OUT.csv")
    results = _results(args.workdir, args.scenario)
    catalog = load_catalog(args.platforms_file, args.workdir)
    export = records_from_results(results, catalog, args.platform_mode, scenarios=tuple(args.scenario or ()),
                                  include_simulated=args.include_simulated)
    settings = {"workdir": str(args.workdir.resolve()), "scenarios": args.scenario or "all",
                "platform_mode": args.platform_mode, "platforms_files": [str(p) for p in args.platforms_file],
                "rows": "the latest row per point, status ok" + (", simulated included" if args.include_simulated
                                                                   else ", simulated left out")}
    meta = write_export(export, args.file, settings)
    print(f"wrote {len(export.records)} rows to {args.file} (QuTiBench measured-data schema) and {meta}")
    if export.skipped:
        print(f"left out {len(export.skipped)} rows that are not ok (listed in {meta.name})", file=sys.stderr)
    return 0


def _import(args) -> int:
    from tiers.qutibench import import_into, read_csv

    if args.file is None:
        raise ConfigError("'qutibench import' needs a QuTiBench CSV; fix: mlperf-ext qutibench import FILE.csv")
    target = import_into(args.workdir, args.file, force=args.force)
    table = read_csv(target)
    _print_table(table, args)
    print(f"imported {len(table.records)} rows ({table.dialect} header) into {target}")
    return 0


def _show(args) -> int:
    from tiers.qutibench import imported_tables, read_csv

    tables = [read_csv(args.file)] if args.file else imported_tables(args.workdir)
    if not tables:
        raise ConfigError(f"nothing imported in {args.workdir}; fix: mlperf-ext qutibench import FILE.csv, or "
                          "name a file: mlperf-ext qutibench show FILE.csv")
    for table in tables:
        _print_table(table, args)
    return 0


def _print_table(table, args) -> None:
    from rich.table import Table

    from mlperf_ext.tables import table_console
    from tiers.pareto import pareto, print_pareto
    from tiers.qutibench import candidates_from_records, summary

    console = table_console(args.wide)
    source = " (an mlperf-ext export)" if table.sidecar else ""
    overview = Table(title=f"{table.path.name}: {len(table.records)} QuTiBench rows, {table.dialect} header{source}")
    for header in ("HWType", "rows", "topologies", "datatypes", "batch/thread/stream"):
        overview.add_column(header, justify="right" if header == "rows" else "left")
    for s in summary(table.records):
        overview.add_row(s["hw_type"], str(s["rows"]), ", ".join(s["topologies"]), ", ".join(s["datatypes"]),
                         ", ".join(str(b) for b in s["batches"]))
    console.print(overview)
    for note in table.notes:
        console.print(f"  note: {note}", markup=False)
    if args.rows:
        rows = Table(title=f"{table.path.name}: rows")
        for header in ("line", "NN_Topology", "HWType", "Datatype", "Op mode", "b/t/s", "lat-comp ms",
                       "fps-comp", "fps-system", "top1 %", "Full W", "Pruning %"):
            rows.add_column(header, justify="left" if header in ("NN_Topology", "HWType", "Datatype", "Op mode")
                            else "right", no_wrap=True)

        def num(v, spec=".4g"):
            return "" if v is None else format(v, spec)

        for r in table.records:
            rows.add_row(str(r.line), r.nn_topology or "", r.hw_type or "", r.datatype or "", r.op_mode or "",
                         num(r.batch, "d"), num(r.lat_comp_ms), num(r.fps_comp, ",.1f"), num(r.fps_system, ",.1f"),
                         num(r.top1_pct, ".2f"), num(r.full_pwr_w, ".3g"), num(r.pruning_pct, "g"))
        console.print(rows)
    if not args.no_pareto:
        report = pareto(candidates_from_records(table.records), args.objective or ("compute_throughput",),
                        level0=False)
        print_pareto(report, console=console, show_all=args.all)


def register(sub: argparse._SubParsersAction) -> None:
    from tiers.pareto import OBJECTIVES

    p = sub.add_parser("pareto", help="Pareto frontiers of accuracy vs throughput, p90/p99 latency, power and "
                                      "energy per inference, per scenario and platform, with level 0's overlay")
    p.add_argument("--objective", action="append", choices=tuple(OBJECTIVES), default=None,
                   help="the cost axis (repeatable; default: throughput, p90, p99, power, energy)")
    p.add_argument("--scenario", action="append", default=None, help="only these scenarios (repeatable)")
    p.add_argument("--platform", action="append", default=None, help="only rows of these platforms (repeatable)")
    p.add_argument("--by-backend", action="store_true", help="one frontier per backend too (default: backends "
                   "compete on one platform's frontier)")
    p.add_argument("--borrow-accuracy", action="store_true",
                   help="give a row without accuracy the accuracy of its variant's scored runs (same model bytes, "
                        "backend, device, execution precision, options, dataset) when they agree; marked †")
    p.add_argument("--no-level0", action="store_true", help="leave out the level-0 (roofline) overlay")
    _add_include_simulated(p)
    p.add_argument("--all", action="store_true", help="list dominated points too")
    p.add_argument("--csv", type=Path, default=None, metavar="FILE",
                   help="write every placed and left-out point (long format) to this CSV")
    _add_level0(p)
    add_wide(p)
    add_workdir(p)
    p.set_defaults(func=cmd_pareto)

    q = sub.add_parser("qutibench", help="QuTiBench's measured-data CSV: export our results, import or show a "
                                         "published file")
    q.add_argument("action", choices=("export", "import", "show"),
                   help="export: write FILE (+ FILE.json metadata) from the store; import: check FILE and keep it "
                        "in <workdir>/qutibench/; show: print FILE (or every imported file) and its frontiers")
    q.add_argument("file", nargs="?", type=Path, default=None, help="the CSV to write (export) or read")
    q.add_argument("--scenario", action="append", default=None, help="export: only these scenarios (repeatable)")
    q.add_argument("--force", action="store_true", help="import: replace an imported file of the same name")
    _add_include_simulated(q)
    q.add_argument("--rows", action="store_true", help="import/show: print every row")
    q.add_argument("--no-pareto", action="store_true", help="import/show: no frontier (top1 vs fps-comp per HWType)")
    q.add_argument("--objective", action="append", choices=("throughput", "compute_throughput", "power"),
                   default=None, help="import/show: the frontier's cost axis (default: compute_throughput = fps-comp)")
    q.add_argument("--all", action="store_true", help="import/show: list dominated points too")
    _add_level0(q)
    add_wide(q)
    add_workdir(q)
    q.set_defaults(func=cmd_qutibench)
