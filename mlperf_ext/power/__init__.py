"""Power meters, their traces and a point's power figures.

`open_meter(spec)` gives a meter by name (`METER_SPECS`); a meter this host lacks is ONE refusal line
(`ConfigError`, or `BackendUnavailable` naming the pip extra) saying what is missing and the fix.
The runner measures an idle baseline (`measure_idle`), samples around the LoadGen run, and turns the
trace and LoadGen's window (`loadgen_window`) into `PowerFigures` (`power_figures`). No meter here is
MLPerf-Power-compliant (only SPEC PTDaemon is), and every row's note says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlperf_ext.errors import ConfigError, MlperfExtError
from mlperf_ext.power.base import COUNTER_INTERVAL_S, POWER_INTERVAL_S, Domain, PowerMeter, PowerTrace
from mlperf_ext.power.metrics import (
    IdleBaseline,
    PowerFigures,
    measure_idle,
    no_power,
    power_figures,
)
from mlperf_ext.power.window import loadgen_time, loadgen_window

#: what --power-meter accepts
METER_SPECS = ("rapl", "rapl:ROOT", "nvml", "nvml:INDEX", "jetson", "jetson:RAIL", "pmbus", "pmbus:RAIL[,RAIL]",
               "external:FILE", "none")
#: the meters `probe_meters` tries (external needs a file, so it is never probed)
PROBED = ("rapl", "nvml:0", "jetson", "pmbus")


def open_meter(spec: str, *, interval_s: float | None = None) -> PowerMeter | None:
    """The meter `spec` names (None for "none"); refuses in one line when this host lacks it."""
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "none" and not arg:
        return None
    if kind == "rapl":
        from mlperf_ext.power.rapl import DEFAULT_ROOT, RaplMeter

        return RaplMeter(arg or DEFAULT_ROOT, interval_s=interval_s)
    if kind == "nvml":
        from mlperf_ext.power.nvml import NvmlMeter

        if arg and not arg.isdigit():
            raise ConfigError(f"power meter '{spec}': the GPU index must be a number; fix: --power-meter nvml:0")
        return NvmlMeter(int(arg or 0), interval_s=interval_s)
    if kind == "jetson":
        from mlperf_ext.power.jetson import JetsonMeter

        return JetsonMeter(total_rail=arg or None, interval_s=interval_s)
    if kind == "pmbus":
        from mlperf_ext.power.pynq_pmbus import PmbusMeter

        rails = [r.strip() for r in arg.split(",") if r.strip()] if arg else None
        return PmbusMeter(rails, interval_s=interval_s)
    if kind == "external":
        from mlperf_ext.power.external import ExternalCsvMeter

        if not arg:
            raise ConfigError("power meter 'external' needs the logger's file; fix: --power-meter external:FILE")
        return ExternalCsvMeter(arg)
    raise ConfigError(f"unknown power meter '{spec}'; fix: use one of {', '.join(METER_SPECS)}")


@dataclass
class MeterProbe:
    """Whether this host has a meter: its name when it opened, the refusal line when it did not."""

    spec: str
    available: bool
    detail: str


def probe_meters(specs: tuple[str, ...] = PROBED) -> list[MeterProbe]:
    """Try to open each meter (and close it again); never raises for a missing one."""
    out = []
    for spec in specs:
        try:
            meter = open_meter(spec)
        except MlperfExtError as exc:
            out.append(MeterProbe(spec, False, str(exc)))
            continue
        if meter is None:
            continue
        out.append(MeterProbe(spec, True, f"{meter.name}: {getattr(meter, 'method', '')}"))
        meter.close()
    return out


def available_meters() -> list[str]:
    """The specs of the meters this host has (external:FILE is always possible and not listed)."""
    return [p.spec for p in probe_meters() if p.available]


__all__ = ["COUNTER_INTERVAL_S", "Domain", "IdleBaseline", "METER_SPECS", "MeterProbe", "POWER_INTERVAL_S",
           "PowerFigures", "PowerMeter", "PowerTrace", "available_meters", "loadgen_time", "loadgen_window",
           "measure_idle", "no_power", "open_meter", "power_figures", "probe_meters"]
