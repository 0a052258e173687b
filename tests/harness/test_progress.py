"""The progress bar: drawn on a terminal, advanced once per point, absent from pipes and logs."""

from __future__ import annotations

import io

from rich.console import Console

from mlperf_ext.config import RunPoint
from tests.harness.conftest import SHORT
from tiers.runner.progress import point_progress
from tiers.runner.runner import PointRunner


def _points(n: int) -> list[RunPoint]:
    return [RunPoint(model="none.onnx", dataset="mnist", backend="null", scenario="Offline", batch=2 ** i,
                     settings=dict(SHORT), timeout_s=120) for i in range(n)]


def test_a_terminal_gets_a_bar_that_ends_full(tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    PointRunner(tmp_path, console).run(_points(2))
    text = out.getvalue()
    assert "points" in text and "2/2" in text and "left about" in text


def test_a_pipe_gets_no_bar():
    console = Console(file=io.StringIO(), force_terminal=False, width=80)
    with point_progress(console, 3) as advance:
        advance()
    assert console.file.getvalue() == ""


def test_advance_counts_points():
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with point_progress(console, 3) as advance:
        for _ in range(3):
            advance()
    assert "3/3" in console.file.getvalue()
