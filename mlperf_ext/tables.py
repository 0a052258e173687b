"""Tables for people: stored results and the model zoo, printed with rich to fit the terminal.

The results table reads typed results (`mlperf_ext.result.PointResult`). Below it, every row that is
not plainly fine gets a line of its own: why it is INVALID, why it failed, what its flags say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlperf_ext.result import PointResult

#: --wide: the width a wide table is laid out for (long text is then never cut)
WIDE = 400


def _num(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _efficiency_figures(pw) -> str:
    """The energy figures the scenario has (samples/J or mJ/query, GOP/J with level-0 ops); absent ones are left out."""
    figures = [(pw.samples_per_j, ",.2f", "samples/J"), (pw.mj_per_query, ".4f", "mJ/query"),
               (pw.gop_per_j, ",.2f", "GOP/J")]
    return "".join(f"{format(v, spec)} {unit}; " for v, spec, unit in figures if v is not None)


def verdict(result: PointResult) -> str:
    """VALID / INVALID / - (no performance verdict), '*' for the quick profile; the status otherwise."""
    if result.status not in ("ok", "invalid"):
        return result.status.upper()
    valid = result.system.valid if result.system else None
    text = {True: "VALID", False: "INVALID", None: "-"}[valid]
    quick = result.point is not None and result.point.profile != "submission"
    return text + ("*" if quick else "")


def _point(result: PointResult, name: str, default=""):
    return default if result.point is None else getattr(result.point, name)


def _accuracy(r) -> str:
    """The score in %, with its metric where it is not top-1 (a detector's mAP is no top-1)."""
    acc = r.accuracy
    if not acc or acc.value is None:
        return _num(None, ".2f")
    shown = _num(100 * acc.value, ".2f")
    return shown if acc.metric in (None, "top1") else f"{shown} {acc.metric}"


def _deployment(r: PointResult) -> str:
    if r.point is None:
        return ""
    return f"{r.point.batch}/{r.point.threads or 'auto'}/{r.point.streams}"


def _precision(r: PointResult) -> str:
    """The variant's label, and what executed when that differs."""
    label = (r.variant.precision if r.variant else None) or ""
    ran = r.runtime.compute_dtype if r.runtime else ""
    if ran and label and ran != label:
        return f"{label}->{ran}"
    return label or ran or ""


def _flags(r: PointResult) -> str:
    marks = {"system_above_compute": "sys>comp", "noisy": "noisy"}
    return " ".join(marks.get(k, k) for k in r.flags)


Column = tuple[str, Callable[[PointResult], str], str, int]  # header, cell, justify, priority (1 = kept first)
RESULT_COLUMNS: Sequence[Column] = (
    ("run", lambda r: (r.run_id or "")[-10:], "left", 2),
    ("model", lambda r: str(_point(r, "model_name") or ""), "left", 1),
    ("prec", _precision, "left", 3),
    ("backend", lambda r: str(_point(r, "backend")), "left", 1),
    ("scenario", lambda r: str(_point(r, "scenario")), "left", 1),
    ("mode", lambda r: str(_point(r, "mode")), "left", 8),
    ("b/t/s", _deployment, "left", 4),
    ("result", verdict, "left", 1),
    ("accuracy", lambda r: _accuracy(r), "right", 3),
    ("system/s", lambda r: _num(r.system.throughput if r.system else None, ",.0f"), "right", 2),
    ("sys p90 ms", lambda r: _num(r.system.lat_p90_ms if r.system else None, ".3f"), "right", 5),
    ("compute/s", lambda r: _num(r.compute.throughput if r.compute else None, ",.0f"), "right", 2),
    ("compute ms/batch", lambda r: _num(r.compute.lat_mean_ms if r.compute else None, ".3f"), "right", 6),
    ("avg W", lambda r: _num(r.power.avg_w if r.power else None, ".2f"), "right", 8),
    ("samples/J", lambda r: _num(r.power.samples_per_j if r.power else None, ",.1f"), "right", 8),
    ("compliant", lambda r: {True: "yes", False: "no", None: "-"}[r.compliant], "left", 6),
    ("flags", _flags, "left", 7),
)
CAPTION = ("* quick profile: short runs, not submission-compliant. system = LoadGen (issue -> complete); compute = "
           "backend execution only, per batch, all streams at once; system/s and compute/s are samples per second. "
           "prec: variant label -> datatype that executed. compliant: the audit checker's verdict (- = not checked).")


def fitting_columns(columns: Sequence[Column], cells: list[list[str]], width: int) -> list[int]:
    """Indices of the columns to show in `width` characters: by priority, each at its widest cell."""
    need = [max([len(c[0])] + [len(row[i]) for row in cells]) + 3 for i, c in enumerate(columns)]
    chosen: set[int] = set()
    used = 1
    for i in sorted(range(len(columns)), key=lambda i: columns[i][3]):
        if columns[i][3] == 1 or used + need[i] <= width:
            chosen.add(i)
            used += need[i]
    return sorted(chosen)


def results_table(results: Sequence[PointResult], title: str = "results", width: int | None = None) -> Table:
    """The table; with a `width`, the columns that fit it (the others are named in the caption)."""
    cells = [[cell(r) for _h, cell, _j, _p in RESULT_COLUMNS] for r in results]
    shown = list(range(len(RESULT_COLUMNS))) if width is None else fitting_columns(RESULT_COLUMNS, cells, width)
    left = [RESULT_COLUMNS[i][0] for i in range(len(RESULT_COLUMNS)) if i not in shown]
    caption = CAPTION + (f" Not shown at this width: {', '.join(left)} (--wide shows all)." if left else "")
    table = Table(title=title, caption=caption)
    for i in shown:
        header, _cell, justify, _prio = RESULT_COLUMNS[i]
        table.add_column(header, justify=justify, no_wrap=True)
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    return table


def dataset_notes(results: Sequence[PointResult]) -> dict[str, str]:
    """What each dataset in the rows is (e.g. "MNIST padded to 32x32 — not CIFAR-10"), said next to results."""
    from mlperf_ext.datasets import open_dataset
    from mlperf_ext.errors import MlperfExtError

    notes = {}
    for ref in dict.fromkeys(_point(r, "dataset") for r in results if r.point):
        try:
            notes[ref] = open_dataset(ref).description or "(no description)"
        except MlperfExtError as exc:
            notes[ref] = f"not readable now ({exc})"
    return notes


def row_notes(result: PointResult, width: int | None = 200) -> list[str]:
    """Lines that explain a row: INVALID reasons, the error of a failure, flags."""
    name = f"{_point(result, 'model_name')} {_point(result, 'backend')} {_point(result, 'scenario')}"
    out = []
    if result.status not in ("ok",):
        text = (result.error or "-").splitlines()[0]
        out.append(f"{name}: {result.status}: {text if width is None else text[:width]}")
    for text in result.flags.values():
        out.append(f"{name}: flag: {text}")
    out.extend(f"{name}: {note}" for note in result.notes)
    return out


def table_console(wide: bool) -> Console:
    """A console for tables: the terminal's width, or unlimited when wide or when not writing to a terminal
    (a file keeps every column)."""
    console = Console()
    return console if console.is_terminal and not wide else Console(width=WIDE)


def print_results(results: Sequence[PointResult], console: Console | None = None, title: str = "results",
                  wide: bool = False) -> None:
    console = console or table_console(wide)
    console.print(results_table(results, title, None if wide else console.width))
    for ref, text in dataset_notes(results).items():
        console.print(f"  dataset {ref}: {text}", markup=False)
    for r in results:
        for line in row_notes(r, None if wide else 200):
            console.print(f"  {line}", markup=False)


def status_counts(results: Sequence[PointResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def print_models(models: Sequence, models_dir: Path, console: Console | None = None, wide: bool = False) -> None:
    from mlperf_ext.zoo.metadata import read_metadata
    from mlperf_ext.zoo.registry import model_path

    console = console or table_console(wide)
    headers = ("name", "family", "pruning", "precision", "params", "held-out acc", "dataset")
    rows = []
    for info in models:
        meta = read_metadata(model_path(info.name, models_dir)) or {}
        acc = meta.get("accuracy")
        if isinstance(acc, dict):
            acc = acc.get("value")
        if meta:
            acc_text = f"{100 * acc:.2f}%" if isinstance(acc, (int, float)) else "n/a"
        else:
            acc_text = "not built"
        producer = meta.get("producer", info.description)
        if isinstance(producer, dict):
            producer = ", ".join(f"{k}={v}" for k, v in producer.items() if k in ("tool", "recipe", "method"))
        rows.append((info.name, info.family, "" if info.pruning is None else f"{100 * info.pruning:g}%",
                     info.precision, _num(meta.get("params"), ","), acc_text, str(info.dataset or ""), str(producer)))
    # the facts that fit keep their width (by priority); the long description gets what is left of the
    # terminal, cut with an ellipsis; what does not fit is named in the caption
    priorities = (1, 2, 5, 2, 3, 3, 4)
    columns = [(h, None, "left", prio) for h, prio in zip(headers, priorities)]
    cells = [list(row[:-1]) for row in rows]
    shown = list(range(len(headers))) if wide else fitting_columns(columns, cells, console.width)
    used = 1 + sum(3 + max([len(headers[i]), *(len(c[i]) for c in cells)]) for i in shown)
    room = None if wide else console.width - used - 3
    show_producer = room is None or room >= 12
    left = [headers[i] for i in range(len(headers)) if i not in shown] + ([] if show_producer else ["produced by"])
    table = Table(title=f"model zoo ({models_dir})",
                  caption=f"not shown at this width: {', '.join(left)} (--wide shows all)" if left else None)
    for i in shown:
        table.add_column(headers[i], no_wrap=True)
    if show_producer:
        table.add_column("produced by", overflow="fold" if wide else "ellipsis", no_wrap=not wide, max_width=room)
    for row in rows:
        table.add_row(*(row[i] for i in shown), *([row[-1]] if show_producer else []))
    console.print(table)


def print_run(result: PointResult, console: Console | None = None, wide: bool = False) -> None:
    """One run in full: the resolved point, LoadGen's verdict and reasons, compute, what ran, the evidence."""
    console = console or table_console(wide)

    def line(text: str = "") -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    line(f"run {result.run_id}  point {result.point_key}")
    line(f"status {result.status}" + (f": {result.error}" if result.error else ""))
    if result.point:
        line("point:")
        for key, value in result.point.to_dict().items():
            line(f"  {key}: {value}")
    s = result.system
    if s:
        line(f"LoadGen ({s.loadgen_version}): {verdict(result)}  {s.metric_name} = {s.metric_value}")
        for name, met in s.conditions.items():
            line(f"  {name}: {'yes' if met else 'NO'}")
        for reason in s.invalid_reasons:
            line(f"  INVALID: {reason}")
        line(f"  system throughput {_num(s.throughput, ',.1f')} samples/s; latency ms mean {_num(s.lat_mean_ms, '.4f')} "
             f"p50 {_num(s.lat_p50_ms, '.4f')} p90 {_num(s.lat_p90_ms, '.4f')} p99 {_num(s.lat_p99_ms, '.4f')}; "
             f"queries {s.query_count}, samples {s.sample_count}")
        for err in s.errors:
            line(f"  ERROR: {err}")
    if result.settings and result.settings.auto:
        line(f"  hints the harness set: {result.settings.auto}")
    if result.search and result.search.trace:
        line(f"server target search: {result.search.note}")
        for n, probe in enumerate(result.search.trace, 1):
            line(f"  probe {n}: {probe.get('target_qps')} QPS -> {probe.get('valid')} {probe.get('reasons') or ''}")
    c = result.compute
    if c:
        windows = (f" (median of {len(c.window_throughputs)} windows, spread {_num(100 * c.spread, '.1f')} %)"
                   if c.window_throughputs and c.spread is not None else "")
        line(f"compute (batch {c.batch}, {c.streams} stream(s) at once): {_num(c.throughput, ',.1f')} samples/s"
             f"{windows}; "
             f"ms per execution mean {_num(c.lat_mean_ms, '.4f')} p50 {_num(c.lat_p50_ms, '.4f')} "
             f"p90 {_num(c.lat_p90_ms, '.4f')} p99 {_num(c.lat_p99_ms, '.4f')}; before {_num(c.before_throughput, ',.1f')} "
             f"after {_num(c.after_throughput, ',.1f')} (drift {_num(None if c.drift is None else 100 * c.drift, '.1f')} %)")
    if result.accuracy and result.accuracy.line:
        line(f"accuracy: {result.accuracy.line}")
    rt = result.runtime
    if rt:
        line(f"runtime: {rt.name} {rt.version} on {rt.device} ({', '.join(rt.providers)}); executed: {rt.precision}")
        for note in rt.notes:
            line(f"  note: {note}")
        line(f"  settings: {rt.settings}")
    if result.power and result.power.meter != "none":
        pw = result.power
        line(f"power ({pw.meter}, {pw.method}, window from {pw.window_source}): avg {_num(pw.avg_w, '.3f')} W, idle "
             f"{_num(pw.idle_w, '.3f')} W, net {_num(pw.net_w, '.3f')} W, {_num(pw.energy_j, '.3f')} J over "
             f"{_num(pw.duration_s, '.2f')} s; {_efficiency_figures(pw)}{pw.note}")
    if result.dispatch and result.dispatch.batch_sizes:
        d = result.dispatch
        by = "" if not d.impl else f" by the {d.impl} dispatcher" + (f" ({d.impl_note})" if d.impl_note else "")
        line(f"batches formed{by}: {d.batch_sizes} (size: count)")
    for text in result.flags.values():
        line(f"FLAG: {text}")
    for note in result.notes:
        line(f"note: {note}")
    if result.run_dir:
        run_dir = Path(result.run_dir)
        line("evidence:")
        for name in ("loadgen/mlperf_log_summary.txt", "loadgen/mlperf_log_detail.txt", "loadgen/mlperf_log_accuracy.json",
                     "accuracy.txt", "compute_latency_s.npy", "stderr.txt", "point.json", "result.json"):
            if (run_dir / name).exists():
                line(f"  {run_dir / name}")
