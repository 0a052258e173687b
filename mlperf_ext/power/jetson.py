"""NVIDIA Jetson power from the INA3221 rail monitors, read through sysfs.

Two driver layouts, found under `/sys/bus/i2c/drivers`:

* upstream hwmon driver `ina3221` (newer JetPack): `ina3221/<dev>/hwmon/hwmon*/` with `in[123]_label`
  (the rail name), `in[123]_input` (bus voltage, mV) and `curr[123]_input` (current, mA); power is
  V x I = mV x mA / 1e6 W. Source: Linux `Documentation/hwmon/ina3221.rst`.
* NVIDIA's downstream iio driver `ina3221x` (L4T for TX1/TX2/Xavier): `ina3221x/<dev>/iio:device*/`
  with `rail_name_N` and `in_powerN_input` (mW). Source: ml-energy/zeus `zeus/device/soc/jetson.py`
  (github.com/ml-energy/zeus), which reads these files and cites NVIDIA's L4T 32.7 Development Guide,
  "Clock and power setup" (docs.nvidia.com/jetson/archives/l4t-archived/l4t-3276).

The rails are hierarchical: the module-input rail (`VDD_IN` on Xavier NX / Orin, `POM_5V_IN` on
TX1/TX2) already contains the CPU/GPU/SoC rails, and the rails do not add up to it (regulator losses).
So the meter's figure is ONE rail: the module input, or the rail the user names (`jetson:RAIL`); with
neither it refuses and lists the rails. Every rail is still reported as a domain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlperf_ext.errors import ConfigError
from mlperf_ext.power.base import POWER, Domain, SamplingMeter

DEFAULT_ROOT = "/sys/bus/i2c/drivers"
#: module-input rail names, by board generation (see the module docstring)
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")


@dataclass(frozen=True)
class Rail:
    name: str
    power_file: Path | None = None  # iio: mW
    volt_file: Path | None = None  # hwmon: mV
    curr_file: Path | None = None  # hwmon: mA

    def watts(self) -> float:
        if self.power_file is not None:
            return int(self.power_file.read_text().strip()) / 1e3
        volts_mv = int(self.volt_file.read_text().strip())
        amps_ma = int(self.curr_file.read_text().strip())
        return volts_mv * amps_ma / 1e6


def discover_rails(root: Path) -> list[Rail]:
    """Every labelled INA3221 channel under `root` (both layouts), with unique names."""
    root = Path(root)
    rails: list[Rail] = []
    for hwmon in sorted(root.glob("ina3221/*/hwmon/hwmon*")):
        for label in sorted(hwmon.glob("in*_label")):
            n = label.name[len("in"):-len("_label")]
            volt, curr = hwmon / f"in{n}_input", hwmon / f"curr{n}_input"
            if volt.is_file() and curr.is_file():
                rails.append(Rail(label.read_text().strip(), volt_file=volt, curr_file=curr))
    for iio in sorted(root.glob("ina3221x/*/iio:device*")):
        for label in sorted(iio.glob("rail_name_*")):
            n = label.name[len("rail_name_"):]
            power = iio / f"in_power{n}_input"
            if power.is_file():
                rails.append(Rail(label.read_text().strip(), power_file=power))
    seen: dict[str, int] = {}
    unique = []
    for rail in rails:
        seen[rail.name] = seen.get(rail.name, 0) + 1
        name = rail.name if seen[rail.name] == 1 else f"{rail.name}#{seen[rail.name]}"
        unique.append(Rail(name, rail.power_file, rail.volt_file, rail.curr_file))
    return unique


class JetsonMeter(SamplingMeter):
    """INA3221 rails sampled as power; the total is the module-input rail or the one named."""

    method = "sampled power (INA3221 rails, sysfs)"

    def __init__(self, root: str | Path = DEFAULT_ROOT, total_rail: str | None = None,
                 interval_s: float | None = None, clock: Callable[[], float] = time.time):
        super().__init__(interval_s, clock)
        self.root = Path(root)
        rails = discover_rails(self.root)
        if not rails:
            raise ConfigError(f"no INA3221 power rails under {self.root} (ina3221/*/hwmon or ina3221x/*/iio:device*: "
                              "not a Jetson, or its monitor driver is not loaded); fix: run on a Jetson, or use "
                              "--power-meter external:FILE")
        names = [r.name for r in rails]
        if total_rail is None:
            total_rail = next((n for n in INPUT_RAILS if n in names), None)
            if total_rail is None:
                raise ConfigError(f"Jetson rails {', '.join(names)} include no module-input rail "
                                  f"({' or '.join(INPUT_RAILS)}), and the rails do not add up to the module's power; "
                                  f"fix: name the rail to report, e.g. --power-meter jetson:{names[0]}")
        elif total_rail not in names:
            raise ConfigError(f"no Jetson rail '{total_rail}' (rails: {', '.join(names)}); fix: use "
                              "--power-meter jetson:RAIL with one of them")
        self._rails = rails
        self._domains = [Domain(r.name, POWER, in_total=r.name == total_rail) for r in rails]
        self.total_rail = total_rail
        self.name = f"jetson:{total_rail}"

    def read_raw(self) -> dict[str, float]:
        return {rail.name: rail.watts() for rail in self._rails}
