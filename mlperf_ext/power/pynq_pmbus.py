"""PYNQ boards' PMBus / INA rails through `pynq.pmbus` (pip extra `pynq`), for the PYNQ backend.

`pynq.get_rails()` (`pynq/pmbus.py`, github.com/Xilinx/PYNQ; docs `docs/source/pynq_libraries/pmbus.rst`)
maps rail names to `Rail` objects whose `power` sensor's `value` is watts, read through libsensors.
PYNQ's own example records `rails['12V'].power`: on the ZCU10x boards the 12 V rail is the board's input
and feeds the others, so the rails must not be summed. The meter's figure is the rails named
(`pmbus:RAIL[,RAIL]`), else `12V`; with neither it refuses and lists the rails.

This machine has no PYNQ board: only the refusals are tested here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from mlperf_ext.errors import BackendUnavailable, ConfigError
from mlperf_ext.power.base import POWER, Domain, SamplingMeter

INPUT_RAIL = "12V"


def import_get_rails():
    try:
        from pynq.pmbus import get_rails
    except ImportError as exc:
        raise BackendUnavailable("pmbus power meter", "pynq", f"pynq.pmbus: {exc}") from None
    return get_rails


class PmbusMeter(SamplingMeter):
    """PYNQ rails sampled as power; the total is the rails named, or the 12 V board input."""

    method = "sampled power (PYNQ PMBus rails, libsensors)"

    def __init__(self, rails: Sequence[str] | None = None, interval_s: float | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(interval_s, clock)
        get_rails = import_get_rails()
        try:
            found = get_rails()
        except Exception as exc:  # noqa: BLE001 - libsensors failures come as many types
            raise ConfigError(f"pynq.get_rails() failed ({type(exc).__name__}: {exc}); fix: run on a PYNQ board "
                              "with its libsensors configuration, or use --power-meter external:FILE") from None
        sensors = {name: rail.power for name, rail in (found or {}).items()
                   if getattr(rail, "power", None) is not None}
        if not sensors:
            raise ConfigError("PYNQ reports no rail with a power sensor (libsensors sees none on this board); "
                              "fix: install the board's libsensors configuration, or use --power-meter external:FILE")
        total = list(rails) if rails else ([INPUT_RAIL] if INPUT_RAIL in sensors else [])
        if not total:
            raise ConfigError(f"PYNQ rails {', '.join(sensors)} include no '{INPUT_RAIL}' board input, and the "
                              f"rails feed one another; fix: name the rails to report, e.g. "
                              f"--power-meter pmbus:{next(iter(sensors))}")
        unknown = [r for r in total if r not in sensors]
        if unknown:
            raise ConfigError(f"no PYNQ rail {', '.join(unknown)} (rails with power: {', '.join(sensors)}); "
                              "fix: use --power-meter pmbus:RAIL[,RAIL] with those names")
        self._sensors = sensors
        self._domains = [Domain(name, POWER, in_total=name in total) for name in sensors]
        self.name = f"pmbus:{','.join(total)}"

    def read_raw(self) -> dict[str, float]:
        return {name: float(sensor.value) for name, sensor in self._sensors.items()}
