"""Level-0 subcommands: ``platforms list|show|detect``, ``predict``, ``efficiency`` and ``token-roofline``.

Why: the main CLI (mlperf_ext/cli.py) registers these lazily through ``register(subparsers)``, so the
core never imports the tiers at module import time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
from dataclasses import asdict, fields
from pathlib import Path

from mlperf_ext.errors import ConfigError
from tiers.level0.platforms import DATATYPES, load_catalog
from tiers.level0.roofline import (
    PREDICTORS,
    EfficiencyFit,
    RooflinePoint,
    fit_efficiency,
    predict,
    roofline_point,
)

DEFAULT_WORKDIR = Path("work")
#: columns of the predict --csv table (long format)
HEATMAP_FIELDS = ("model", "precision", "platform", "mode", "batch", "predictor", "inputs_per_s", "bound", "carrier")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="work dir holding host_platform.yaml, models/ and results.sqlite (default: ./work)")
    p.add_argument("--platforms-file", action="append", default=[], type=Path,
                   help="extra platform YAML file (same format as tiers/level0/platforms.yaml); repeatable")


def register(subparsers: argparse._SubParsersAction) -> None:
    plat = subparsers.add_parser("platforms", help="level-0 platform catalog: list, show NAME, detect this host")
    plat.add_argument("action", choices=("list", "show", "detect"))
    plat.add_argument("name", nargs="?", help="platform to show")
    plat.add_argument("--quick", action="store_true", help="detect: short measurements (a few seconds)")
    _add_common(plat)
    plat.set_defaults(func=cmd_platforms)

    pred = subparsers.add_parser("predict", help="level-0 predicted inputs/s (heatmap: model x precision by platform x mode)")
    pred.add_argument("--model", action="append", default=[], type=Path, help="ONNX model file; repeatable")
    pred.add_argument("--zoo", action="append", default=[], help="model zoo name (built under <workdir>/models); repeatable")
    pred.add_argument("--models-file", action="append", default=[], type=Path,
                      help="model requirement YAML (ops_g, params_m, precisions); repeatable")
    pred.add_argument("--platform", action="append", default=[], help="platform name; repeatable (default: all)")
    pred.add_argument("--precision", action="append", default=[],
                      help="precision(s) to predict (default: the model's stored precision / listed precisions)")
    pred.add_argument("--batch", type=int, default=1, help="batch size (weights read once per batch)")
    pred.add_argument("--predictor", choices=PREDICTORS, default="roofline")
    pred.add_argument("--results", type=Path, help="results DB for the fitted predictor (default: <workdir>/results.sqlite)")
    pred.add_argument("--csv", type=Path, help="write the heatmap table (long format) to this CSV")
    pred.add_argument("--roofline-csv", type=Path, help="write roofline points (OI, attainable TOP/s) to this CSV")
    _add_common(pred)
    pred.set_defaults(func=cmd_predict)

    eff = subparsers.add_parser("efficiency", help="compute efficiency of measured rows and prediction correlation")
    eff.add_argument("--results", type=Path, help="results DB (default: <workdir>/results.sqlite)")
    eff.add_argument("--mode", help="platform mode for rows that name none (e.g. 'measured' for host)")
    eff.add_argument("--csv", type=Path, help="write per-row efficiency to this CSV")
    _add_common(eff)
    eff.set_defaults(func=cmd_efficiency)

    tok = subparsers.add_parser("token-roofline", help="level-0 prefill and decode-step rooflines of a decoder, next to "
                                "the stored task-llm rows' measured steps")
    tok.add_argument("--platform", required=True, help="platform name (host: after 'mlperf-ext platforms detect')")
    tok.add_argument("--mode", default=None, help="the platform's mode (default: its first)")
    tok.add_argument("--model", type=Path, help="a decoder ONNX file to predict alone (else: every stored llm row)")
    tok.add_argument("--prompt-tokens", type=int, default=32, help="--model: prompt length (32)")
    tok.add_argument("--context", type=int, default=48, help="--model: past tokens of the decode step (48)")
    tok.add_argument("--batch", type=int, default=1, help="--model: samples per step (1)")
    tok.add_argument("--precision", default="fp32", help="--model: the datatype the steps run in (fp32)")
    tok.add_argument("--results", type=Path, help="results DB (default: <workdir>/results.sqlite)")
    tok.add_argument("--csv", type=Path, help="write the rows to this CSV")
    _add_common(tok)
    tok.set_defaults(func=cmd_token_roofline)


# ---- platforms ----------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _peaks(peaks: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in peaks.items()) or "-"


def measured_above_nominal(entry: dict) -> list[str]:
    """Why a measured ceiling can exceed the nominal peak: the nominal clock is only the clock the kernel
    reports (the base clock on many VMs), and a core that turbos runs faster than the formula assumes."""
    nominal = entry["peak_tops"] if "nominal" in entry.get("modes", {}) else {}
    measured = entry.get("modes", {}).get("measured", {}).get("peak_tops", {})
    clock = entry.get("nominal_formula", {}).get("clock_mhz")
    out = []
    for dtype, value in measured.items():
        if dtype in nominal and value > nominal[dtype]:
            effective = f", an effective clock of about {clock * value / nominal[dtype]:,.0f} MHz" if clock else ""
            out.append(f"measured {dtype} {value:g} TOP/s is above the nominal {nominal[dtype]:g}: the nominal peak "
                       f"uses the clock the kernel reports ({clock} MHz), not the turbo clock the core ran at"
                       f"{effective}")
    return out


def cmd_platforms(args) -> int:
    from mlperf_ext.tables import table_console

    if args.action == "detect":
        from tiers.level0.host_ceilings import host_platform_entry, measure, write_host_platform

        c = measure(quick=args.quick)
        path = write_host_platform(c, args.workdir)
        print(f"wrote {path}")
        entry = host_platform_entry(c)
        print(entry["description"])
        for note in measured_above_nominal(entry):
            print(f"note: {note}")
        args.name = "host"
    cat = load_catalog(args.platforms_file, args.workdir)
    if args.action == "list":
        from rich.table import Table

        table = Table(title="platform catalog (level 0)")
        for header in ("name", "kind", "modes", "peak TOP/s", "GB/s", "on-chip MB", "TDP W"):
            table.add_column(header, justify="right" if header in ("GB/s", "on-chip MB", "TDP W") else "left")
        for p in cat:
            table.add_row(p.name, p.kind, ", ".join(p.modes) or "-", _peaks(p.peak_tops), f"{p.memory_bandwidth_gbs:g}",
                          _fmt(p.onchip_memory_mb), _fmt(p.tdp_w))
        if "host" not in cat.names():
            from tiers.level0.host_ceilings import detect

            spec = detect()
            table.add_row("host", "cpu", "(not measured)", _peaks({k: round(v, 4) for k, v in
                                                                    spec.nominal_peak_tops.items()}) + " nominal",
                          "-", "-", "-")
            table.caption = "host: nominal peaks from this CPU's flags; 'mlperf-ext platforms detect' measures it"
        table_console(False).print(table)
        return 0
    if not args.name:
        raise ConfigError("'platforms show' needs a platform name; fix: mlperf-ext platforms show NAME")
    p = cat.get(args.name)
    pts = p.points() if not p.modes else [p.point(None)] + p.points()
    print(f"{p.name} ({p.kind}) {p.description}")
    head = ["field"] + [pt.mode or "base" for pt in pts]
    rows = [[f"peak_tops.{d}"] + [_fmt(pt.peak_tops.get(d)) for pt in pts] for d in DATATYPES
            if any(d in pt.peak_tops for pt in pts)]
    for f in ("memory_bandwidth_gbs", "memory_capacity_gb", "onchip_memory_mb", "tdp_w"):
        rows.append([f] + [_fmt(getattr(pt, f)) for pt in pts])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"source: {p.source}")
    for k, v in p.extra.items():
        print(f"{k}: {v}")
    return 0


# ---- predict ------------------------------------------------------------------------------------
def _models(args) -> list[tuple[str, object, list[str]]]:
    """(label, cost, default precisions) for every model named on the command line."""
    from tiers.level0.graph import analyze
    from tiers.level0.requirements import load_requirements

    out = []
    paths = list(args.model)
    if args.zoo:
        import sys

        from mlperf_ext.zoo import registry

        models_dir = args.workdir / "models"
        for name in args.zoo:
            if not registry.model_path(name, models_dir).exists():
                print(f"building zoo model {name} into {models_dir} (a one-time build; large architectures take a "
                      "while and ~100 MB)", file=sys.stderr)
        paths += registry.build(list(args.zoo), models_dir, progress=lambda msg: print(f"  {msg}", file=sys.stderr))
    for path in paths:
        a = analyze(path)
        out.append((Path(path).stem, a, [a.stored_precision]))
    for f in args.models_file:
        for r in load_requirements(f):
            out.append((r.name, r, r.precisions))
    if not out:
        raise ConfigError("no model given; fix: pass --model M.onnx, --zoo NAME or --models-file F.yaml")
    return out


def _results_rows(args) -> list[dict]:
    from mlperf_ext.store import ResultsStore

    path = args.results or args.workdir / "results.sqlite"
    if not Path(path).is_file():
        raise ConfigError(f"results DB '{path}' not found; fix: run 'mlperf-ext run' first or pass --results")
    return ResultsStore(Path(path)).rows(status="ok")


def cmd_predict(args) -> int:
    cat = load_catalog(args.platforms_file, args.workdir)
    platforms = [cat.get(n) for n in args.platform] if args.platform else list(cat)
    points = [pt for p in platforms for pt in p.points()]
    models = _models(args)
    fits = _fit_per_mode(args, cat, points) if args.predictor == "fitted" else {}
    table: list[dict] = []
    roof: list[dict] = []
    for label, cost, default_precs in models:
        for prec in [p.lower() for p in args.precision] or default_precs:
            for pt in points:
                fit = fits.get((pt.platform, pt.mode))  # η learned in the very mode it is applied to
                pr = predict(cost, pt, prec, args.batch, args.predictor, {pt.platform: fit} if fit else {},
                             name=label)
                table.append({"model": label, "precision": prec, "platform": pt.platform, "mode": pt.mode,
                              "batch": args.batch, "predictor": args.predictor,
                              "inputs_per_s": None if pr is None else pr.inputs_per_s,
                              "bound": None if pr is None else pr.bound, "carrier": None if pr is None else pr.carrier})
                rp = roofline_point(cost, pt, prec, args.batch, name=label)
                if rp is not None:
                    roof.append(asdict(rp))
    _print_heatmap(table, points, args.predictor)
    if args.csv:
        _write_csv(args.csv, table, list(HEATMAP_FIELDS))
        print(f"wrote {args.csv}")
    if args.roofline_csv:
        _write_csv(args.roofline_csv, roof, [f.name for f in fields(RooflinePoint)])
        print(f"wrote {args.roofline_csv}")
    return 0


def _fit_per_mode(args, cat, points) -> dict[tuple[str, str], EfficiencyFit]:
    """η per (platform, mode): each mode column's η is learned from the measured rows predicted with that
    mode's roofline (rows naming no platform mode are read as that mode; rows naming another mode of the
    platform do not count), so a fit against nominal peaks is never applied to measured ones."""
    from tiers.level0.efficiency import row_efficiencies
    from tiers.level0.graph import analyze

    rows = _results_rows(args)
    analysed: dict[str, object] = {}

    def analyse(path: str):
        if path not in analysed:
            analysed[path] = analyze(path)
        return analysed[path]

    fits: dict[tuple[str, str], EfficiencyFit] = {}
    for mode in sorted({pt.mode for pt in points}):
        effs, _ = row_efficiencies(rows, cat, default_mode=mode or None, analyse=analyse)
        for f in fit_efficiency([(e.platform, e.predicted_fps, e.measured_fps) for e in effs
                                 if e.mode == mode]).values():
            fits[(f.platform, mode)] = f
    wanted = {(pt.platform, pt.mode) for pt in points}
    fits = {k: f for k, f in fits.items() if k in wanted}
    if not fits:
        raise ConfigError("no measured rows to fit efficiency factors; fix: run measurements first or use "
                          "--predictor roofline")
    for (platform, mode), f in sorted(fits.items()):
        print(f"fit {platform}{'/' + mode if mode else ''}: eta = {f.factor:.4g} from n = {f.n} points "
              f"(sd of log ratio {f.log_sd:.3g})")
    return fits


def _print_heatmap(table: list[dict], points, predictor: str) -> None:
    """One block per platform kind (fpga, gpu, asic, ...), each cut into column groups that fit the terminal:
    a heatmap over every platform mode would be ~300 columns wide."""
    import shutil

    width = shutil.get_terminal_size((160, 24)).columns
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in table:
        label = f"{r['platform']}/{r['mode']}" if r["mode"] else r["platform"]
        v = r["inputs_per_s"]
        cells.setdefault((r["model"], r["precision"]), {})[label] = (
            "" if v is None else f"{v:.4g}" + ("*" if r["bound"] == "memory" else ""))
    print(f"predicted inputs/s ({predictor}; * = memory-bound; empty = precision not supported)")
    kinds: dict[str, list[str]] = {}
    for pt in points:
        kinds.setdefault(pt.kind, []).append(pt.label)
    names = [[m, p] for m, p in cells]
    name_w = [max([len("model")] + [len(n[0]) for n in names]), max([len("precision")] + [len(n[1]) for n in names])]
    for kind, cols in kinds.items():
        col_w = {c: max([len(c)] + [len(v.get(c, "")) for v in cells.values()]) for c in cols}
        chunk: list[str] = []
        chunks: list[list[str]] = []
        for c in cols:
            if chunk and sum(name_w) + 4 + sum(col_w[x] + 2 for x in chunk) + col_w[c] > width:
                chunks.append(chunk)
                chunk = []
            chunk.append(c)
        chunks.append(chunk)
        for part in chunks:
            print(f"\n[{kind}]")
            print("  ".join(["model".ljust(name_w[0]), "precision".ljust(name_w[1])] + [c.rjust(col_w[c]) for c in part]))
            for (model, prec), row in cells.items():
                print("  ".join([model.ljust(name_w[0]), prec.ljust(name_w[1])]
                                + [row.get(c, "").rjust(col_w[c]) for c in part]))


def _write_csv(path: Path, rows: list[dict], fieldnames: list[str]) -> None:
    """Header always (an empty result is still a readable table), temp file + rename (never a half file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fieldnames)
            w.writeheader()
            w.writerows(rows)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write CSV '{path}' ({exc.strerror or exc}); fix: pass a writable file path, "
                          "not a directory") from exc


# ---- efficiency ---------------------------------------------------------------------------------
def cmd_efficiency(args) -> int:
    from tiers.level0.efficiency import EfficiencyRow, correlations, row_efficiencies

    cat = load_catalog(args.platforms_file, args.workdir)
    effs, skipped = row_efficiencies(_results_rows(args), cat, default_mode=args.mode)
    print(f"{'model':24} {'backend':11} {'scenario':12} {'platform':16} {'prec':5} {'batch':>5} {'measured/s':>11} "
          f"{'predicted/s':>11} {'bound':7} {'efficiency':>10} {'of peak':>8}")
    for e in effs:
        label = f"{e.platform}/{e.mode}" if e.mode else e.platform
        print(f"{e.model[:24]:24} {e.backend[:11]:11} {e.scenario[:12]:12} {label[:16]:16} {e.precision:5} "
              f"{e.batch:>5} {e.measured_fps:>11.4g} "
              f"{e.predicted_fps:>11.4g} {e.bound:7} {e.efficiency:>10.2%} {e.peak_fraction:>8.2%}")
    for e in effs:
        if e.note:
            print(f"note: {e.model} ({e.backend}, {e.scenario}): {e.note}")
    above = [e for e in effs if e.efficiency > 1]
    if above:
        print(f"note: {len(above)} row(s) above 100 %: measured beats that roofline. Memory-bound rows: the weights "
              "fit in the caches and are not re-read from DRAM as the roofline assumes (--predictor onchip, or the "
              "platform's onchip_memory_mb); compute-bound rows: the core ran above the nominal clock (turbo), or "
              "the runtime used units the nominal peak does not count")
    for s in skipped:
        print(f"skipped row {s.row_index}: {s.reason}")
    print("\nprediction quality (predicted vs measured compute fps, per platform)")
    for c in correlations(effs):
        def f(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{x:.3f}"
        print(f"{c.platform:16} n={c.n:<4} pearson r={f(c.pearson_r)} (p={f(c.pearson_p)})  "
              f"spearman rho={f(c.spearman_r)} (p={f(c.spearman_p)})")
    if args.csv:
        _write_csv(args.csv, [asdict(e) for e in effs], [f.name for f in fields(EfficiencyRow)])
        print(f"wrote {args.csv}")
    return 0


# ---- token-roofline -----------------------------------------------------------------------------
TOKEN_FIELDS = ("model", "backend", "scenario", "batch", "step", "tokens", "context", "gops", "mbytes", "oi", "bound",
                "predicted_ms", "measured_ms", "efficiency")


def _token_cases(args) -> list[dict]:
    """(model file, lengths, batch, precision, measured step times) of each case to predict."""
    from mlperf_ext.store import ResultsStore

    if args.model is not None:
        return [{"model": args.model, "backend": "", "scenario": "", "batch": args.batch, "prompt": args.prompt_tokens,
                 "context": args.context, "precision": args.precision, "measured": {}}]
    path = args.results or args.workdir / "results.sqlite"
    if not Path(path).is_file():
        raise ConfigError(f"results DB '{path}' not found; fix: run 'mlperf-ext run --task llm' first, or pass --model")
    cases = []
    for r in ResultsStore(Path(path)).results(status="ok"):
        t = r.tokens
        if t is None or t.prefill_ms is None or r.point is None:
            continue
        cases.append({"model": Path(r.point.model), "backend": r.point.backend, "scenario": r.point.scenario,
                      "batch": r.compute.batch if r.compute else r.point.batch, "prompt": t.prompt_tokens,
                      "context": t.decode_context, "measured": {"prefill": t.prefill_ms, "decode": t.decode_step_ms},
                      "precision": (r.runtime.compute_dtype if r.runtime and r.runtime.compute_dtype else "fp32")})
    if not cases:
        raise ConfigError(f"results DB '{path}' holds no task-llm row; fix: run 'mlperf-ext run --task llm' first, or "
                          "pass --model")
    return cases


def cmd_token_roofline(args) -> int:
    from tiers.level0.decoder import decoder_steps, step_roofline

    platform = load_catalog(args.platforms_file, args.workdir).get(args.platform)
    points = platform.points()
    point = next((p for p in points if p.mode == args.mode), None) if args.mode else points[0]
    if point is None:
        raise ConfigError(f"platform {args.platform} has no mode '{args.mode}'; fix: use one of "
                          f"{', '.join(p.mode for p in points)}")
    rows = []
    for case in _token_cases(args):
        for cost in decoder_steps(case["model"], case["prompt"], case["context"]):
            pred = step_roofline(cost, point, case["precision"], case["batch"])
            if pred is None:
                continue
            measured = case["measured"].get(cost.step)
            rows.append({"model": Path(case["model"]).stem, "backend": case["backend"], "scenario": case["scenario"],
                         "batch": case["batch"], "step": cost.step, "tokens": cost.tokens, "context": cost.context,
                         "gops": pred.ops / 1e9, "mbytes": pred.bytes / 1e6, "oi": pred.operational_intensity,
                         "bound": pred.bound, "predicted_ms": 1e3 * pred.seconds, "measured_ms": measured,
                         "efficiency": None if not measured else 1e3 * pred.seconds / measured})
    print(f"roofline on {point.label}: a step of a batch reads the weights once and each sample's KV cache")
    print(f"{'model':18} {'backend':11} {'scenario':9} {'batch':>5} {'step':8} {'ctx':>4} {'GOP':>8} {'MB':>7} "
          f"{'OI':>7} {'bound':7} {'pred ms':>9} {'meas ms':>9} {'of roof':>8}")
    for r in rows:
        print(f"{r['model'][:18]:18} {r['backend'][:11]:11} {r['scenario'][:9]:9} {r['batch']:>5} {r['step']:8} "
              f"{r['context']:>4} {r['gops']:>8.4f} {r['mbytes']:>7.3f} {r['oi']:>7.2f} {r['bound']:7} "
              f"{r['predicted_ms']:>9.4f} {_fmt(r['measured_ms']):>9} "
              f"{'' if r['efficiency'] is None else format(r['efficiency'], '.1%'):>8}")
    if args.csv:
        _write_csv(args.csv, rows, list(TOKEN_FIELDS))
        print(f"wrote {args.csv}")
    return 0
