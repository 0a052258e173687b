"""`mlperf-ext` command line. User errors print one line (problem and fix) and exit 2.

The CLI is the composition root: it imports the tiers (sweep driver, level 0) lazily inside the
commands that need them, so the core stays importable without them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlperf_ext.errors import ConfigError, MlperfExtError

DEFAULT_WORKDIR = Path("work")
#: `run` options that describe one point; with a spec file they belong in the spec
POINT_OPTIONS = ("model", "dataset", "backend", "scenario", "mode", "batch", "threads", "streams", "device",
                 "operating_mode", "platform", "user_conf", "setting", "max_wait_us")


def _setting(text: str) -> tuple[str, float | int]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        number: float | int = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"value of {key} must be a number, got {value!r}") from exc
    return key.strip(), number


def _add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help="where results.sqlite, runs/ and models/ live (default: ./work)")


def cmd_run(args) -> int:
    from mlperf_ext.config import RunPoint, expand, load_spec, with_overrides
    from tiers.sweep import model_resolver, run_points

    resolve = model_resolver(args.workdir / "models", say=lambda msg: print(msg, file=sys.stderr))
    if args.spec:
        single = [a for a in POINT_OPTIONS if getattr(args, a) is not None]
        if single:
            flag = "--" + single[0].replace("_", "-")
            raise ConfigError(f"{flag} cannot be combined with a spec file; fix: put it in the spec")
        points = []
        for grid in load_spec(args.spec):
            if args.profile:
                grid["profile"] = args.profile
            points.extend(expand(grid, resolve))
    else:
        missing = [a for a in ("model", "dataset", "backend", "scenario") if not getattr(args, a)]
        if missing:
            raise ConfigError(f"missing --{missing[0]}; fix: give --model, --dataset, --backend and "
                              "--scenario, or a spec.yaml")
        if args.scenario == "SingleStream" and args.batch not in (None, 1):
            raise ConfigError("a SingleStream query holds one sample, so --batch must be 1; fix: drop --batch "
                              "or use MultiStream/Server/Offline")
        model, name, default_dataset = resolve(args.model)
        given = {k: getattr(args, k) for k in POINT_OPTIONS if getattr(args, k) is not None}
        for key in ("model", "dataset", "backend", "scenario"):
            given.pop(key, None)
        if "user_conf" in given:
            given["user_conf"] = str(given["user_conf"].resolve())
        if "setting" in given:
            given["settings"] = dict(given.pop("setting"))
        points = [RunPoint(model=model, model_name=name, dataset=args.dataset or default_dataset,
                           backend=args.backend, scenario=args.scenario, profile=args.profile or "quick",
                           **given)]
    if args.timeout is not None:  # overrides the spec's timeout_s (default 600 s)
        points = [with_overrides(p, timeout_s=args.timeout) for p in points]
    rows = run_points(points, args.workdir, force=args.force)
    failed = [r for r in rows if r["status"] not in ("ok", "refused")]
    return 1 if failed else 0


def cmd_results(args) -> int:
    from mlperf_ext.store import ResultsStore
    from mlperf_ext.tables import print_results

    path = args.workdir / "results.sqlite"
    if not path.exists():
        raise ConfigError(f"no results in {args.workdir}; fix: run 'mlperf-ext run' first or pass --workdir")
    store = ResultsStore(path)
    rows = store.rows(latest_only=not args.all)
    print_results(rows)
    if args.csv:
        count = store.export_csv(args.csv, latest_only=not args.all)
        print(f"wrote {count} rows to {args.csv}", file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    from mlperf_ext.tables import print_models
    from mlperf_ext.zoo import registry

    models_dir = args.workdir / "models"
    if args.action == "list":
        print_models(registry.list_models(), models_dir)
        return 0
    paths = registry.build(args.names or None, models_dir,
                           progress=lambda msg: print(msg, file=sys.stderr), force=args.force)
    for path in paths:
        print(path)
    return 0


def cmd_demo(args) -> int:
    from tiers.demo import run_demo

    return run_demo(args.workdir, full=args.full)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlperf-ext", description="MLPerf-LoadGen-compatible "
                                     "inference benchmark with theoretical, micro and sweep tiers")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one point, or the grid of a YAML spec")
    run.add_argument("spec", nargs="?", type=Path, help="run spec (YAML); omit to give one point by options")
    run.add_argument("--model", help="ONNX file or zoo model name")
    run.add_argument("--dataset", help=".npy directory or built-in dataset name (e.g. mnist)")
    run.add_argument("--backend", help="onnxruntime, openvino, null, or module:Class")
    run.add_argument("--scenario", help="SingleStream, MultiStream, Server or Offline")
    run.add_argument("--mode", default=None, help="performance (default), accuracy or submission")
    run.add_argument("--profile", default=None, help="quick (default; never compliant) or submission")
    run.add_argument("--batch", type=int, default=None, help="largest batch handed to the backend (1)")
    run.add_argument("--threads", type=int, default=None, help="intra-op threads (runtime default)")
    run.add_argument("--streams", type=int, default=None, help="concurrent executions (1)")
    run.add_argument("--device", default=None, help="cpu (default), cuda, tensorrt, gpu ...")
    run.add_argument("--operating-mode", default=None, help="power/clock mode or runtime hint (e.g. LATENCY)")
    run.add_argument("--platform", default=None, help="platform catalog name for level-0 comparisons (host)")
    run.add_argument("--user-conf", type=Path, default=None, help="LoadGen user.conf")
    run.add_argument("--setting", type=_setting, action="append", metavar="KEY=VALUE",
                     help="TestSettings override, e.g. server_target_qps=500 (repeatable)")
    run.add_argument("--max-wait-us", type=int, default=None, help="Server dynamic-batching window (1000)")
    run.add_argument("--timeout", type=float, default=None, help="seconds before a point is killed (default: the spec's timeout_s, else 600)")
    run.add_argument("--force", action="store_true", help="re-run points already stored")
    _add_workdir(run)
    run.set_defaults(func=cmd_run)

    results = sub.add_parser("results", help="print stored results; --csv exports them")
    results.add_argument("--csv", type=Path, default=None)
    results.add_argument("--all", action="store_true", help="every row, not only the newest per point")
    _add_workdir(results)
    results.set_defaults(func=cmd_results)

    models = sub.add_parser("models", help="the model zoo: list or build")
    models.add_argument("action", choices=("list", "build"))
    models.add_argument("names", nargs="*", help="models to build (default: all)")
    models.add_argument("--force", action="store_true", help="rebuild even if cached")
    _add_workdir(models)
    models.set_defaults(func=cmd_models)

    demo = sub.add_parser("demo", help="build the MLP family and run it on both backends in all scenarios")
    demo.add_argument("--full", action="store_true", help="all four widths (default: a reduced grid)")
    _add_workdir(demo)
    demo.set_defaults(func=cmd_demo)

    try:
        from tiers.level0 import cli as tiers_cli
    except ImportError:  # level 0 not present in this build
        tiers_cli = None
    if tiers_cli is not None and hasattr(tiers_cli, "register"):
        tiers_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MlperfExtError as exc:
        print(f"mlperf-ext: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlperf-ext: interrupted; stored rows are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
