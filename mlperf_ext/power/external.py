"""An external power logger as a meter: any device whose logger appends `unix_time_s,watts` lines to a file.

For boards without an on-board sensor (a USB power meter on a Coral stick, a bench supply, a smart
plug, a wall meter read by another machine with synchronised clocks): the logger runs on its own and
appends one line per reading, e.g. `1796162541.547,4.82`. Blank lines, `#` comments and a header line
are skipped; malformed lines are counted as errors. A last line without its newline is still being
written and is left for the next read.

The meter reads no device itself. `start()` notes the time; `stop()` waits (up to `settle_s`) until the
logger has written a reading at or after the stop time, so the trace covers the window, then keeps the
readings between start and stop plus the one just before and the one just after (the window's edges
are interpolated between them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from mlperf_ext.errors import ConfigError
from mlperf_ext.power.base import MAX_ERROR_MESSAGES, POWER, Domain, PowerTrace

DOMAIN = "external"
#: how long stop() waits for the logger's first reading after the stop time
SETTLE_S = 2.0
POLL_S = 0.05


def parse_power_log(text: str) -> tuple[list[tuple[float, float]], list[str], int]:
    """(readings as (t, W) in file order, first error messages, error count) of a `unix_time_s,watts` log."""
    rows: list[tuple[float, float]] = []
    errors: list[str] = []
    count = 0
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # being written: no newline yet
    for no, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) != 2:
                raise ValueError(f"{len(parts)} fields")
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError as exc:
            if not rows and count == 0 and not any(c.isdigit() for c in parts[0]):
                continue  # a header line such as "unix_time_s,watts"
            count += 1
            if len(errors) < MAX_ERROR_MESSAGES:
                errors.append(f"line {no}: {line[:60]!r} is not 'unix_time_s,watts' ({exc})")
    return rows, errors, count


class ExternalCsvMeter:
    """Reads the readings an external logger appended to `path` during [start, stop]."""

    mlperf_power_compliant = False
    method = "external logger (CSV unix_time_s,watts)"

    def __init__(self, path: str | Path, settle_s: float = SETTLE_S, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"external power log '{self.path}' does not exist; fix: start the logger appending "
                              "'unix_time_s,watts' lines to it before the run, or choose another --power-meter")
        self.name = f"external:{self.path}"
        self.settle_s = settle_s
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._stop: float | None = None
        self._stop_errors: list[str] = []

    @property
    def domains(self) -> list[Domain]:
        return [Domain(DOMAIN, POWER)]

    def start(self) -> None:
        self._start, self._stop, self._stop_errors = self._clock(), None, []

    def stop(self) -> PowerTrace:
        if self._start is None:
            raise RuntimeError(f"power meter {self.name} was not started")
        self._stop = self._clock()
        deadline = self._stop + self.settle_s
        while True:
            rows = self._read()[0]
            if rows and max(t for t, _ in rows) >= self._stop:
                break
            if self._clock() >= deadline:
                self._stop_errors = [f"no reading at or after the stop time within {self.settle_s:g} s "
                                     "(is the logger still running?)"]
                break
            self._sleep(POLL_S)
        return self.samples()

    def samples(self) -> PowerTrace:
        rows, errors, count = self._read()
        start = self._start if self._start is not None else float("-inf")
        stop = self._stop if self._stop is not None else float("inf")
        if any(b[0] < a[0] for a, b in zip(rows, rows[1:])):
            errors.append("timestamps are not in order; sorted")
            count += 1
            rows = sorted(rows)
        before = [r for r in rows if r[0] < start][-1:]
        inside = [r for r in rows if start <= r[0] <= stop]
        after = [r for r in rows if r[0] > stop][:1]
        kept = before + inside + after
        errors += self._stop_errors
        return PowerTrace(meter=self.name, method=self.method, compliant=False, domains=self.domains,
                          t=[t for t, _ in kept], values={DOMAIN: [w for _, w in kept]},
                          errors=errors, error_count=count + len(self._stop_errors))

    def close(self) -> None:
        """Nothing to release: the logger is not ours."""

    def _read(self) -> tuple[list[tuple[float, float]], list[str], int]:
        try:
            return parse_power_log(self.path.read_text(errors="replace"))
        except OSError as exc:
            return [], [f"cannot read {self.path}: {exc}"], 1
