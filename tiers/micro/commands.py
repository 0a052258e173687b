"""`mlperf-ext micro`: cut a model into layers (level 1) and stacks (level 2), run every unique cut and the
whole model on each backend through the point runner, and print one table per level, the op-type
breakdown, the sum of the parts and the runtime profilers' cross-check."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from rich.table import Table

from mlperf_ext.commands import add_wide, add_workdir
from mlperf_ext.errors import ConfigError
from mlperf_ext.store import ResultsStore
from mlperf_ext.tables import table_console


def _num(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _predictor(workdir: Path):
    """The roofline on the host platform (measured by `platforms detect`), or None without one."""
    from tiers.level0.platforms import load_catalog
    from tiers.level0.roofline import predict

    catalog = load_catalog(workdir=workdir)
    if "host" not in catalog.names():
        return None
    point = catalog.get("host").point(None)

    def run(cost, dtype: str, batch: int):
        p = predict(cost, point, dtype, batch, "roofline", weight_precision=cost.stored_precision)
        return None if p is None else (p.inputs_per_s, p.bound)

    return run


def decoder_step(model: Path, name: str, tokens: int | None, past: int | None, out_root: Path) -> tuple[Path, str]:
    """A decoder is cut at one step's lengths (its graph's are symbolic): the model with `tokens` new tokens and a
    past of `past` (batch left dynamic), written beside the cuts. Any other model is returned as it is."""
    import onnx

    from mlperf_ext.zoo.metadata import atomic_write_bytes
    from tiers.level0.decoder import at_lengths, is_decoder

    graph = onnx.load(str(model))
    if not is_decoder(graph):
        if tokens is not None or past is not None:
            raise ConfigError(f"--tokens/--past fix a decoder's lengths, and {model.name} has no input_ids and "
                              "past_key_values inputs; fix: drop them")
        return model, name
    if tokens is None or past is None or tokens < 1 or past < 0:
        raise ConfigError(f"{model.name} is a decoder, whose lengths are symbolic; fix: cut one step of it with "
                          "--tokens S --past P (a prefill: --tokens 32 --past 0; a decode step: --tokens 1 --past 48)")
    name = f"{name}-s{tokens}-p{past}"
    path = out_root / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, at_lengths(graph, tokens, past, batch=None).SerializeToString())
    return path, name


def cmd_micro(args) -> int:
    from tiers.micro.analysis import by_scenario, layer_rows, op_type_breakdown, sums_of_parts
    from tiers.micro.bench import plan_micro
    from tiers.micro.profile import PROFILERS
    from tiers.runner import layout
    from tiers.runner.runner import PointRunner
    from tiers.sweep import model_resolver

    if args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}; fix: e.g. --batch 8")
    started = time.perf_counter()
    model, name, _dataset = model_resolver(layout.models_dir(args.workdir), say=lambda m: print(m, file=sys.stderr))(
        args.model)
    from mlperf_ext.zoo.metadata import read_metadata

    meta = read_metadata(Path(model)) or {}
    model, name = decoder_step(Path(model), name, args.tokens, args.past, args.workdir / "micro")
    out_dir = args.workdir / "micro" / name
    targets, sets = plan_micro(Path(model), name, tuple(args.level), tuple(args.sizes), args.backend, args.batch,
                               args.threads, out_dir, meta)
    cut_s = time.perf_counter() - started
    for label, cutset in sets.items():
        print(f"level {label}: {cutset.layer_count} layers, {cutset.unique} unique cuts ({cutset.occurrences} "
              f"occurrences, {len(cutset.skipped)} skipped) in {cutset.seconds:.1f} s", file=sys.stderr)
        for skip in cutset.skipped[:5]:
            print(f"  skipped {skip.kind} {', '.join(skip.layers)[:80]}: {skip.reason}", file=sys.stderr)
    points = [p for t in targets for p in t.points]
    runner = PointRunner(args.workdir)
    plans = runner.plan(points)
    runner.run(points)
    store = ResultsStore(layout.store_path(args.workdir))
    by_key = {plan.key: store.latest(plan.key) for plan in plans}
    from mlperf_ext.result import PointResult

    results = iter(PointResult.from_row(by_key[plan.key]) if by_key[plan.key] else None for plan in plans)
    for target in targets:
        target.results = [next(results) for _ in target.points]
    predict = _predictor(args.workdir)
    rows = layer_rows(targets, args.backend, args.batch, predict or (lambda cost, dtype, batch: None))
    console = table_console(args.wide)
    if predict is None:
        console.print("no host platform measured here, so no level-0 predictions per layer: run "
                      "'mlperf-ext platforms detect --quick' first", markup=False)
    for label in sets:
        _layer_table(console, [r for r in rows if r.level == label], label, args.batch)
    whole = next(t for t in targets if t.level == 3)
    whole_ms = {b: (by_scenario(whole, b, "Offline").compute.lat_mean_ms if by_scenario(whole, b, "Offline") else None)
                for b in args.backend}
    for backend in args.backend:
        _breakdown_table(console, op_type_breakdown(rows, backend), backend,
                         _profile(PROFILERS.get(backend), Path(model), whole, args) if args.profile else {})
    table = Table(title=f"sum of the parts (batch {args.batch}): parts / whole model")
    for header in ("backend", "level", "parts ms", "whole ms", "ratio", "not measured"):
        table.add_column(header)
    for s in sums_of_parts(rows, sets, whole_ms):
        table.add_row(s.backend, s.level, f"{s.parts_ms:.4f}", f"{s.whole_ms:.4f}", f"{s.ratio:.3f}",
                      ", ".join(s.missing[:3]) + (" ..." if len(s.missing) > 3 else ""))
    console.print(table)
    if args.csv:
        _write_rows(args.csv, rows)
        print(f"wrote {args.csv}", file=sys.stderr)
    print(f"micro {name}: {len(points)} points, cutting {cut_s:.1f} s, {time.perf_counter() - started:.0f} s in all",
          file=sys.stderr)
    return 0


def _profile(profiler, model: Path, whole, args) -> dict[str, float]:
    if profiler is None:
        return {}
    import numpy as np

    samples = np.load(whole.dataset / "samples.npy")
    batch = np.ascontiguousarray(samples[np.arange(args.batch) % len(samples)])
    return profiler(model, batch, args.threads)


def _layer_table(console, rows, label: str, batch: int) -> None:
    table = Table(title=f"level {label} (batch {batch}; times are compute latency per execution)")
    for header in ("backend", "layer", "op", "occ", "ops", "weight B", "act B", "OI", "ran", "measured ms",
                   "SS p90 ms", "predicted ms", "bound", "efficiency"):
        table.add_column(header, justify="right" if header not in ("backend", "layer", "op", "ran", "bound") else "left")
    for r in rows:
        table.add_row(r.backend, r.name, r.op_type, str(r.occurrences), f"{r.ops:,.0f}", f"{r.weight_bytes:,.0f}",
                      f"{r.activation_bytes:,}", _num(r.oi, ".1f"), r.executed, _num(r.measured_ms, ".4f"),
                      _num(r.system_p90_ms, ".4f"), _num(r.predicted_ms, ".4f"), r.bound,
                      _num(None if r.efficiency is None else 100 * r.efficiency, ".1f"))
    console.print(table)


def _breakdown_table(console, breakdown, backend: str, profile: dict[str, float]) -> None:
    table = Table(title=f"{backend}: where the time goes (level 1, time x occurrences) vs its ops, and the "
                        "runtime profiler on the whole model")
    for header in ("op type", "layers", "time share", "ops share", "profiler share"):
        table.add_column(header, justify="left" if header == "op type" else "right")
    seen = set()
    for op, time_share, ops_share, n in breakdown:
        seen.add(op)
        table.add_row(op, str(n), f"{100 * time_share:.1f} %", f"{100 * ops_share:.1f} %",
                      _num(None if op not in profile else 100 * profile[op], ".1f") + (" %" if op in profile else ""))
    for op, share in profile.items():
        if op not in seen:
            table.add_row(op, "-", "-", "-", f"{100 * share:.1f} %")
    console.print(table)


def _write_rows(path: Path, rows) -> None:
    from tiers.micro.analysis import LayerRow

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(LayerRow)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    tmp.replace(path)


def register(sub: argparse._SubParsersAction) -> None:
    micro = sub.add_parser("micro", help="levels 1-2: single layers and stacks cut from a model, run on each backend")
    micro.add_argument("--model", required=True, help="ONNX file or zoo model name")
    micro.add_argument("--backend", nargs="+", default=["onnxruntime"], help="backends to run the cuts on")
    micro.add_argument("--level", nargs="+", type=int, default=[1, 2], choices=(1, 2), help="1: layers, 2: stacks")
    micro.add_argument("--sizes", nargs="+", type=int, default=[2, 4], help="level 2: layers per stack (2 4)")
    micro.add_argument("--batch", type=int, default=8, help="the Offline batch (SingleStream runs at 1)")
    micro.add_argument("--tokens", type=int, default=None, help="a decoder: new tokens of the step to cut (prefill: the "
                       "prompt's length; decode: 1)")
    micro.add_argument("--past", type=int, default=None, help="a decoder: past tokens (KV cache) of the step to cut")
    micro.add_argument("--threads", type=int, default=None, help="intra-op threads (runtime default)")
    micro.add_argument("--no-profile", dest="profile", action="store_false",
                       help="skip the runtime profilers' cross-check on the whole model")
    micro.add_argument("--csv", type=Path, default=None, help="write the per-layer rows to this CSV")
    add_wide(micro)
    add_workdir(micro)
    micro.set_defaults(func=cmd_micro)
