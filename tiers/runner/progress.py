"""The sweep's progress bar: points done of points to run, elapsed, and the time left estimated from
the points measured so far (rich's Progress). Only on a terminal: logs and pipes get the plain lines
the executors print, with the same estimate in words."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def point_progress(console: Console, total: int) -> Iterator[Callable[[], None]]:
    """Yield `advance()`, called once per finished point; a live bar while it runs on a terminal."""
    if total < 2 or not console.is_terminal:
        yield lambda: None
        return
    columns = (TextColumn("points"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
               TextColumn("left about"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("points", total=total)
        yield lambda: progress.advance(task)
