"""Intel/AMD RAPL energy counters through the Linux powercap sysfs interface.

Layout (Linux `Documentation/power/powercap/powercap.rst`): `/sys/class/powercap/intel-rapl:N` is
package N (its `name` file says `package-N`), `intel-rapl:N:M` its sub-zones (`core`, `uncore`, `dram`),
and on some client parts a top-level `psys` zone (the platform). Each zone has `energy_uj` (a counter
in microjoules) and `max_energy_range_uj`, after which the counter wraps to 0. The package domain
covers the cores and uncore but not DRAM (Intel SDM vol. 3B, "RAPL Interfaces"), so the meter's total
is the packages plus the DRAM zones; core, uncore and psys are reported as domains but not summed.
`intel-rapl-mmio:*` zones repeat the package counter on some parts and are ignored (not double-counted).

Since Linux 5.10 `energy_uj` is readable by root only (CVE-2020-8694), so an unreadable counter is a
refusal with the fix, never 0 W. AMD Zen parts appear through the same driver, usually without DRAM.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from mlperf_ext.errors import ConfigError
from mlperf_ext.power.base import COUNTER_INTERVAL_S, ENERGY, Domain, SamplingMeter

DEFAULT_ROOT = "/sys/class/powercap"
ZONE_DIR = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
#: the sub-zones whose energy is not inside the package counter
SUMMED_SUBZONES = ("dram",)
UJ = 1e-6


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def rapl_absent(root: Path) -> ConfigError:
    return ConfigError(f"no RAPL powercap domains under {root} (this machine exposes none); fix: run on a host "
                       "with intel-rapl (Linux powercap, intel_rapl_msr), or use --power-meter external:FILE")


def discover_zones(root: Path) -> list[tuple[Domain, Path]]:
    """Every RAPL zone under `root` as (domain, zone directory), packages first; refuses when there is none."""
    root = Path(root)
    try:
        entries = sorted(p for p in root.iterdir() if ZONE_DIR.match(p.name))
    except OSError:
        raise rapl_absent(root) from None
    if not entries:
        raise rapl_absent(root)
    zones: list[tuple[Domain, Path]] = []
    names: dict[str, str] = {}  # "N" -> package zone's name
    for zone in sorted(entries, key=lambda p: tuple(int(g) for g in ZONE_DIR.match(p.name).groups() if g)):
        pkg, sub = ZONE_DIR.match(zone.name).groups()
        try:
            label = (zone / "name").read_text().strip()
            wrap = _read_int(zone / "max_energy_range_uj")
            _read_int(zone / "energy_uj")
        except PermissionError:
            raise ConfigError(f"cannot read {zone / 'energy_uj'} (permission denied: since Linux 5.10 RAPL "
                              "counters are root-only, CVE-2020-8694); fix: run as root, or make energy_uj "
                              "group-readable with a udev rule (SUBSYSTEM==\"powercap\", chmod g+r)") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read RAPL zone {zone} ({exc}); fix: check the powercap driver "
                              "(intel_rapl_msr) or use --power-meter external:FILE") from None
        if sub is None:
            names[pkg] = label
            in_total = label.startswith("package")
            domain_name = label
        else:
            domain_name = f"{names.get(pkg, f'zone-{pkg}')}/{label}"
            in_total = label in SUMMED_SUBZONES
        zones.append((Domain(domain_name, ENERGY, in_total=in_total, scale=UJ, wrap=float(wrap)), zone))
    if not any(d.in_total for d, _ in zones):
        raise ConfigError(f"RAPL zones under {root} ({', '.join(d.name for d, _ in zones)}) include no package; "
                          "fix: use --power-meter external:FILE")
    return zones


class RaplMeter(SamplingMeter):
    """Package and DRAM energy from `energy_uj`, wrap-around at `max_energy_range_uj` undone."""

    method = "energy counter (RAPL powercap energy_uj)"
    default_interval_s = COUNTER_INTERVAL_S

    def __init__(self, root: str | Path = DEFAULT_ROOT, interval_s: float | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(interval_s, clock)
        self.root = Path(root)
        zones = discover_zones(self.root)
        self._domains = [d for d, _ in zones]
        self._files = {d.name: zone / "energy_uj" for d, zone in zones}
        self.name = "rapl" if str(self.root) == DEFAULT_ROOT else f"rapl:{self.root}"

    def read_raw(self) -> dict[str, float]:
        return {name: float(_read_int(path)) for name, path in self._files.items()}
