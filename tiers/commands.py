"""Level-3 subcommand: `run` (one point, or the grid of a YAML spec)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from mlperf_ext.commands import add_workdir
from mlperf_ext.errors import ConfigError

#: `run` options that describe one point; with a spec file they belong in the spec
POINT_OPTIONS = ("model", "dataset", "backend", "scenario", "mode", "batch", "threads", "streams", "device",
                 "operating_mode", "platform", "user_conf", "setting", "max_wait_us", "exec_precision", "runtime_option",
                 "power", "loadgen_trace", "allow_nonfinite", "task")


def _option(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


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


def points_of(args) -> list:
    """The points the `run` arguments describe (a spec's grids, or one point from options)."""
    from mlperf_ext.config import RunPoint, expand, load_spec, with_overrides
    from tiers.sweep import model_resolver

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
        if "runtime_option" in given:
            given["runtime_options"] = dict(given.pop("runtime_option"))
        points = [RunPoint(model=model, model_name=name, dataset=args.dataset or default_dataset,
                           backend=args.backend, scenario=args.scenario, profile=args.profile or "quick",
                           **given)]
    if args.timeout is not None:  # overrides the spec's timeout_s (default 600 s)
        points = [with_overrides(p, timeout_s=args.timeout) for p in points]
    return points


def cmd_run(args) -> int:
    from tiers.runner.executors import make_executor
    from tiers.sweep import dry_run, exit_status, run_points

    points = points_of(args)
    if args.dry_run:
        for point, state, reason in dry_run(points, args.workdir, force=args.force, force_limits=args.force_limits):
            print(f"{state:<16} {point.label()}" + (f": {reason}" if reason else ""))
        return 0
    executor = make_executor(args.executor, args.address, args.points_per_host)
    outcomes: list[str | None] = []
    run_points(points, args.workdir, force=args.force, force_limits=args.force_limits, executor=executor,
               outcomes=outcomes)
    status = exit_status(outcomes)
    if status:
        ended = Counter(str(o) for o in outcomes)
        print(f"mlperf-ext: {'no point ended ok' if 'ok' not in ended else 'not every point ended ok'} ("
              + ", ".join(f"{n} {s}" for s, n in ended.most_common()) + f"); exit status {status}", file=sys.stderr)
    return status


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run one point, or the grid of a YAML spec")
    run.add_argument("spec", nargs="?", type=Path, help="run spec (YAML); omit to give one point by options")
    run.add_argument("--model", help="ONNX file or zoo model name")
    run.add_argument("--dataset", help=".npy directory or built-in dataset name (e.g. mnist)")
    run.add_argument("--backend", help="a registered backend (onnxruntime, openvino, null, ...) or module:Class")
    run.add_argument("--scenario", help="SingleStream, MultiStream, Server or Offline")
    run.add_argument("--mode", default=None, help="performance (default), accuracy or submission")
    run.add_argument("--profile", default=None, help="quick (default; never compliant) or submission")
    run.add_argument("--batch", type=int, default=None, help="largest batch handed to the backend (1)")
    run.add_argument("--threads", type=int, default=None, help="intra-op threads over all streams (runtime default)")
    run.add_argument("--streams", type=int, default=None, help="concurrent executions (1)")
    run.add_argument("--device", default=None, help="cpu (default), cuda, tensorrt, gpu ...")
    run.add_argument("--operating-mode", default=None, help="power/clock mode or runtime hint (e.g. LATENCY)")
    run.add_argument("--exec-precision", default=None,
                     help="precision the runtime executes in: model (default: the model's own), fp32, bf16, fp16; "
                          "refused where the runtime or device cannot honour it")
    run.add_argument("--task", default=None, help="what the outputs mean: classification (default: top-1 of the first "
                     "output), detection (boxes/scores/classes, mAP by pycocotools) or raw (outputs stored, no score)")
    run.add_argument("--runtime-option", type=_option, action="append", metavar="KEY=VALUE",
                     help="a backend's own option, e.g. graph_optimization_level=basic for onnxruntime (repeatable)")
    run.add_argument("--platform", default=None, help="platform catalog name for level-0 comparisons (host)")
    run.add_argument("--power-meter", dest="power", default=None, help="sample power during the LoadGen run: rapl, nvml[:N], jetson, "
                     "pmbus, external:FILE, none (default); refused when this host lacks the meter")
    run.add_argument("--loadgen-trace", action="store_true", default=None,
                     help="keep LoadGen's trace log and every sample's latency (for the report's box plots)")
    run.add_argument("--allow-nonfinite", action="store_true", default=None,
                     help="score accuracy even on a dataset with NaN or Inf samples (refused otherwise)")
    run.add_argument("--user-conf", type=Path, default=None, help="LoadGen user.conf")
    run.add_argument("--setting", type=_setting, action="append", metavar="KEY=VALUE",
                     help="TestSettings override, e.g. server_target_qps=500 (repeatable)")
    run.add_argument("--max-wait-us", type=int, default=None, help="Server dynamic-batching window (1000)")
    run.add_argument("--timeout", type=float, default=None,
                     help="seconds before a point is killed (default: the spec's timeout_s, else 600)")
    run.add_argument("--force", action="store_true", help="re-run points already stored")
    run.add_argument("--force-limits", action="store_true",
                     help="lift the limits on streams, threads, batch memory and LoadGen rate hints")
    run.add_argument("--dry-run", action="store_true", help="list the points (stored, to run, refused); run none")
    run.add_argument("--executor", default="local", help="local (default: one point after another here) or ray "
                     "(one task per point on a Ray cluster; pip install 'mlperf-ext[ray]')")
    run.add_argument("--address", default=None, help="ray: the cluster to join (auto, or HOST:PORT); default: start "
                     "a cluster of this machine alone")
    run.add_argument("--points-per-host", type=int, default=1, help="ray: points timed at once on one host (1: "
                     "never two, since timing under contention is not a measurement)")
    add_workdir(run)
    run.set_defaults(func=cmd_run)
