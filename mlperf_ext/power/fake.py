"""Fake sysfs trees for hardware this machine lacks: the real meters read them through their own code path.

`FakeRaplTree` writes a powercap tree (`intel-rapl:N`, `intel-rapl:N:M`, plus the `intel-rapl` control
type and an `intel-rapl-mmio:0` zone the meter must ignore) whose counters move only when the caller
says so (`advance`), wrapping at `max_energy_range_uj` like the hardware, so a test knows every joule.
`FakeJetsonTree` writes INA3221 rails in either driver layout. Files are replaced atomically, so a
sampling thread never reads half a number.
"""

from __future__ import annotations

import os
from pathlib import Path

#: a real package's max_energy_range_uj (2^38 uJ minus a little, ~262 kJ), as Intel parts report it
DEFAULT_MAX_RANGE_UJ = 262_143_999_938


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


class FakeRaplTree:
    """A powercap directory with `packages` packages, each with the given sub-zones.

    Domains are named as RaplMeter names them: "package-0", "package-0/dram", "psys".
    """

    def __init__(self, root: Path, packages: int = 1, subzones: tuple[str, ...] = ("core", "dram"),
                 max_energy_range_uj: int = DEFAULT_MAX_RANGE_UJ, start_uj: int = 0, psys: bool = False):
        self.root = Path(root)
        self.max_range_uj = int(max_energy_range_uj)
        self._zones: dict[str, Path] = {}
        self._uj: dict[str, int] = {}
        _write(self.root / "intel-rapl" / "enabled", "1")  # the control type, not a zone
        for p in range(packages):
            self._add(f"intel-rapl:{p}", f"package-{p}", f"package-{p}", start_uj)
            for i, sub in enumerate(subzones):
                self._add(f"intel-rapl:{p}:{i}", sub, f"package-{p}/{sub}", start_uj)
        if psys:
            self._add(f"intel-rapl:{packages}", "psys", "psys", start_uj)
        # the MMIO interface repeats package 0's counter on some parts; a meter summing it double-counts
        mmio = self.root / "intel-rapl-mmio:0"
        _write(mmio / "name", "package-0")
        _write(mmio / "energy_uj", "0")
        _write(mmio / "max_energy_range_uj", str(self.max_range_uj))

    def _add(self, dirname: str, name: str, domain: str, start_uj: int) -> None:
        zone = self.root / dirname
        _write(zone / "name", name)
        _write(zone / "max_energy_range_uj", str(self.max_range_uj))
        _write(zone / "enabled", "1")
        self._zones[domain] = zone
        self.set_uj(domain, start_uj)

    @property
    def domains(self) -> list[str]:
        return list(self._zones)

    def zone(self, domain: str) -> Path:
        return self._zones[domain]

    def energy_uj(self, domain: str) -> int:
        return self._uj[domain]

    def set_uj(self, domain: str, value: int) -> None:
        if not 0 <= value <= self.max_range_uj:
            raise ValueError(f"counter value {value} outside 0..{self.max_range_uj}")
        self._uj[domain] = int(value)
        _write(self._zones[domain] / "energy_uj", str(int(value)))

    def advance(self, domain: str, joules: float) -> None:
        """Add `joules` to a counter, wrapping past max_energy_range_uj to 0 as the hardware does.

        The hardware restarts one energy unit (~61 uJ) after max_energy_range_uj; the fake and the meter
        both take the range itself as the period, a difference below the counter's resolution.
        """
        value = self._uj[domain] + round(joules * 1e6)
        self.set_uj(domain, value % self.max_range_uj if value > self.max_range_uj else value)


class FakeJetsonTree:
    """INA3221 rails under a fake `/sys/bus/i2c/drivers`, in the upstream hwmon or the L4T iio layout.

    hwmon (`ina3221/<dev>/hwmon/hwmon0/`): `inN_label`, `inN_input` (mV), `currN_input` (mA), N = 1..3.
    iio (`ina3221x/<dev>/iio:device0/`): `rail_name_N`, `in_powerN_input` (mW), N = 0..2.
    """

    def __init__(self, root: Path, rails: list[str], layout: str = "hwmon", device: str = "1-0040"):
        if layout not in ("hwmon", "iio"):
            raise ValueError(f"layout must be hwmon or iio, not {layout!r}")
        self.root = Path(root)
        self.layout = layout
        if layout == "hwmon":
            self.dir = self.root / "ina3221" / device / "hwmon" / "hwmon0"
            self._index = {rail: i + 1 for i, rail in enumerate(rails)}
            for rail, n in self._index.items():
                _write(self.dir / f"in{n}_label", rail)
        else:
            self.dir = self.root / "ina3221x" / device / "iio:device0"
            self._index = {rail: i for i, rail in enumerate(rails)}
            for rail, n in self._index.items():
                _write(self.dir / f"rail_name_{n}", rail)
        for rail in rails:
            self.set_power(rail, 0.0)

    def set_power(self, rail: str, watts: float, volts: float = 5.0) -> None:
        """Make the rail read `watts` (hwmon: as `volts` x the matching current)."""
        n = self._index[rail]
        if self.layout == "hwmon":
            _write(self.dir / f"in{n}_input", str(round(volts * 1000)))
            _write(self.dir / f"curr{n}_input", str(round(watts / volts * 1000)))
        else:
            _write(self.dir / f"in_power{n}_input", str(round(watts * 1000)))
