"""The power-meter protocol, the trace every meter returns, and the background sampler most meters share.

One representation for every meter, so the metrics need not know where a number came from:

* A meter has **domains** (a RAPL package, its DRAM, a Jetson rail, a GPU). Each is either a
  **power** domain (a reading is the power at that instant, W) or an **energy** domain (a reading is a
  cumulative counter: RAPL `energy_uj`, NVML's total-energy counter).
* A `PowerTrace` holds the readings as aligned columns: `t[i]` is the time of reading i
  (`time.time()` seconds, the midpoint of the read), and `values[domain][i]` is that domain's value at
  it: watts for a power domain, **joules since the trace's first reading** for an energy domain, with
  the counter's wrap-around already undone. Energy in a window is then a difference of interpolated
  values, and power a trapezoid (`mlperf_ext.power.metrics`).
* `in_total` marks the domains whose sum is the meter's figure (RAPL: packages and DRAM, not the core
  and uncore sub-domains that lie inside a package; Jetson: the module-input rail only).

Sampling intervals (defaults; a meter may be given another): energy counters are polled every 10 ms.
The energy over a window is exact at any polling rate apart from the two edges, which are interpolated
between the readings either side, so polling faster only sharpens the edges (LoadGen's window edges
have 1 ms resolution) and catches every wrap-around (minutes apart). One reading of three RAPL zones
took 37 us of Python on this project's 2-vCPU VM (fake files; real sysfs adds the MSR read), so 100
reads/s stay under 1 % of one core. Power readings are polled every 100 ms:
the sensors average internally (NVML's power on Ampere and newer is a 1-s average; INA3221 conversions
are averaged in hardware) and Jetson/PMBus reads go over I2C, so faster polling re-reads the same value
and costs bus time. The sampler is a thread in the measured process: it takes the GIL for each read,
which is why the intervals are not shorter.

The sampling thread never raises into the caller: a failed read is recorded in `PowerTrace.errors`
(first few messages, plus a count) and the reading is skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

POWER = "power"  # a reading is W at that instant
ENERGY = "energy"  # a reading is a cumulative counter, stored as J since the first reading

#: default polling intervals (see the module docstring for why)
COUNTER_INTERVAL_S = 0.01
POWER_INTERVAL_S = 0.1
#: how many error messages a trace keeps verbatim (the rest are only counted)
MAX_ERROR_MESSAGES = 10


@dataclass(frozen=True)
class Domain:
    """One measured quantity of a meter."""

    name: str
    kind: str  # POWER or ENERGY
    in_total: bool = True  # part of the meter's figure (the sum of these domains)
    #: raw unit -> SI: raw x scale is W (power) or J (energy); e.g. 1e-6 for RAPL's uJ
    scale: float = 1.0
    #: energy counters: the raw value wraps to 0 after reaching this (RAPL max_energy_range_uj)
    wrap: float | None = None


@dataclass
class PowerTrace:
    """What a meter read: aligned columns, one row per successful reading (see the module docstring)."""

    meter: str
    method: str
    compliant: bool
    domains: list[Domain] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    #: domain name -> values aligned with `t`: W (power domains) or J since the first reading (energy)
    values: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def domain(self, name: str) -> Domain:
        return next(d for d in self.domains if d.name == name)

    @property
    def total_domains(self) -> list[str]:
        return [d.name for d in self.domains if d.in_total]


@runtime_checkable
class PowerMeter(Protocol):
    """What the runner needs from a meter. Only PTDaemon (not implemented here) is MLPerf-Power-compliant."""

    name: str
    mlperf_power_compliant: bool

    def start(self) -> None:
        """Forget earlier readings, take one now and keep sampling in the background."""

    def stop(self) -> PowerTrace:
        """Stop sampling after one last reading; the trace of everything since start()."""

    def samples(self) -> PowerTrace:
        """A copy of the readings so far (safe while sampling)."""

    def close(self) -> None:
        """Release the meter's library or device handles."""


class SamplingMeter:
    """A meter read by polling `read_raw()` from a background thread (RAPL, NVML, Jetson, PMBus).

    Subclasses set `name`, `method`, `_domains` and implement `read_raw()`, which returns every domain's
    raw value at once (in the domain's raw unit; see `Domain.scale`) or raises.
    """

    name: str = "meter"
    method: str = ""
    mlperf_power_compliant: bool = False
    default_interval_s: float = POWER_INTERVAL_S

    def __init__(self, interval_s: float | None = None, clock: Callable[[], float] = time.time):
        self.interval_s = float(interval_s if interval_s is not None else self.default_interval_s)
        if self.interval_s <= 0:
            raise ValueError(f"sampling interval must be positive, not {self.interval_s}")
        self._clock = clock
        self._domains: list[Domain] = []
        self._lock = threading.RLock()  # _append may record an error while holding it
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset()

    # -- what a subclass provides ----------------------------------------------------------------
    def read_raw(self) -> dict[str, float]:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""

    # -- the protocol ----------------------------------------------------------------------------
    @property
    def domains(self) -> list[Domain]:
        return list(self._domains)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"power meter {self.name} is already sampling")
        self._reset()
        self.read_once()
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._loop, name=f"power-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> PowerTrace:
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join()
            self._thread = None
        self.read_once()
        return self.samples()

    def samples(self) -> PowerTrace:
        with self._lock:
            return PowerTrace(meter=self.name, method=self.method, compliant=self.mlperf_power_compliant,
                              domains=list(self._domains), t=list(self._t),
                              values={k: list(v) for k, v in self._values.items()},
                              errors=list(self._errors), error_count=self._error_count)

    def read_once(self) -> bool:
        """Take one reading now (the thread calls this; so may a caller). Never raises; False on failure."""
        try:
            t0 = self._clock()
            raw = self.read_raw()
            t1 = self._clock()
            missing = [d.name for d in self._domains if d.name not in raw]
            if missing:
                raise KeyError(f"no reading for domain(s) {', '.join(missing)}")
            with self._lock:
                self._append((t0 + t1) / 2, raw)
            return True
        except Exception as exc:  # noqa: BLE001 - a sampler must not raise into the measured run
            self._record_error(f"{type(exc).__name__}: {exc}")
            return False

    # -- internals -------------------------------------------------------------------------------
    def _reset(self) -> None:
        with self._lock:
            self._t: list[float] = []
            self._values: dict[str, list[float]] = {d.name: [] for d in self._domains}
            self._last_raw: dict[str, float] = {}
            self._errors: list[str] = []
            self._error_count = 0

    def _loop(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.read_once()

    def _append(self, t: float, raw: dict[str, float]) -> None:
        """One row; energy counters become J since the first reading, wrap-around undone."""
        row: dict[str, float] = {}
        for d in self._domains:
            value = float(raw[d.name])
            if d.kind == POWER:
                row[d.name] = value * d.scale
                continue
            last = self._last_raw.get(d.name)
            if last is None:
                row[d.name] = 0.0
            else:
                delta = value - last
                if delta < 0:
                    if d.wrap is not None:
                        delta += d.wrap  # the counter passed its maximum and restarted at 0
                    else:
                        self._record_error(f"{d.name}: energy counter went back from {last:g} to {value:g} "
                                           "(reset?); that interval is not counted")
                        delta = 0.0
                row[d.name] = self._values[d.name][-1] + delta * d.scale
            self._last_raw[d.name] = value
        self._t.append(t)
        for name, v in row.items():
            self._values.setdefault(name, []).append(v)

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._error_count += 1
            if len(self._errors) < MAX_ERROR_MESSAGES:
                self._errors.append(message)
