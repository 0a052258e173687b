"""Tables for people: stored results and the model zoo, printed with rich."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table


def _num(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _validity(row: dict) -> str:
    if row.get("status") != "ok":
        return row.get("status", "").upper()
    valid = row.get("valid")
    text = {1: "VALID", 0: "INVALID", None: "-"}[valid]
    return text + ("" if row.get("profile") == "submission" else "*")


RESULT_COLUMNS: Sequence[tuple[str, str, callable]] = (
    ("model", "model_name", lambda r: str(r.get("model_name") or "")),
    ("prec", "precision", lambda r: str(r.get("precision") or "")),
    ("backend", "backend", lambda r: str(r.get("backend") or "")),
    ("scenario", "scenario", lambda r: str(r.get("scenario") or "")),
    ("mode", "mode", lambda r: str(r.get("mode") or "")),
    ("b/t/s", "batch", lambda r: f"{r.get('batch')}/{r.get('threads') or 'auto'}/{r.get('streams')}"),
    ("result", "valid", _validity),
    ("accuracy", "accuracy", lambda r: _num(None if r.get("accuracy") is None else 100 * r["accuracy"], ".2f")),
    ("sys samples/s", "sys_throughput", lambda r: _num(r.get("sys_throughput"), ",.0f")),
    ("sys p90 ms", "sys_lat_p90_ms", lambda r: _num(r.get("sys_lat_p90_ms"), ".3f")),
    ("compute samples/s", "compute_throughput", lambda r: _num(r.get("compute_throughput"), ",.0f")),
    ("compute ms/batch", "compute_lat_mean_ms", lambda r: _num(r.get("compute_lat_mean_ms"), ".3f")),
)


def results_table(rows: Iterable[dict], title: str = "results") -> Table:
    table = Table(title=title, caption="* quick profile: short runs, not submission-compliant. "
                  "system = LoadGen (issue -> complete); compute = backend execution only, per batch.")
    for header, _key, _fmt in RESULT_COLUMNS:
        table.add_column(header, justify="right" if "/s" in header or "ms" in header else "left")
    for row in rows:
        table.add_row(*(fmt(row) for _h, _k, fmt in RESULT_COLUMNS))
    return table


def dataset_notes(rows: Sequence[dict]) -> dict[str, str]:
    """What each dataset in the rows is (e.g. "MNIST padded to 32x32 — not CIFAR-10"), said next to results."""
    from mlperf_ext.datasets import open_dataset
    from mlperf_ext.errors import MlperfExtError

    notes = {}
    for ref in dict.fromkeys(r.get("dataset") for r in rows if r.get("dataset")):
        try:
            notes[ref] = open_dataset(ref).description or "(no description)"
        except MlperfExtError as exc:
            notes[ref] = f"not readable now ({exc})"
    return notes


def print_results(rows: Sequence[dict], console: Console | None = None, title: str = "results") -> None:
    console = console or Console(width=200)
    console.print(results_table(rows, title))
    for ref, text in dataset_notes(rows).items():
        console.print(f"  dataset {ref}: {text}", markup=False)
    failed = [r for r in rows if r.get("status") != "ok"]
    for row in failed:
        console.print(f"  {row.get('model_name')} {row.get('backend')} {row.get('scenario')}: "
                      f"{row.get('status')}: {(str(row.get('error') or '') or '-').splitlines()[0][:200]}",
                      markup=False)


def print_models(models: Sequence, models_dir: Path, console: Console | None = None) -> None:
    from mlperf_ext.zoo.metadata import read_metadata
    from mlperf_ext.zoo.registry import model_path

    console = console or Console(width=200)
    table = Table(title=f"model zoo ({models_dir})")
    for header in ("name", "family", "pruning", "precision", "params", "held-out acc", "dataset", "produced by"):
        table.add_column(header)
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
        table.add_row(info.name, info.family, "" if info.pruning is None else f"{100 * info.pruning:g}%",
                      info.precision, _num(meta.get("params"), ","), acc_text, str(info.dataset or ""),
                      str(producer)[:80])
    console.print(table)
