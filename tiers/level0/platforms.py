"""Platform catalog: peak ops per datatype, memory bandwidth/capacity, on-chip memory, power, modes.

Why: level-0 predictions need hardware numbers as data with a source each, not if/else chains in code
(QuTiBench's script_add_columns.py anti-pattern). The built-in catalog is ``tiers/level0/platforms.yaml``;
user files and the measured ``host`` file (``<workdir>/host_platform.yaml``) use the same format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mlperf_ext.errors import ConfigError
from mlperf_ext.yaml_file import read_yaml

BUILTIN_CATALOG = Path(__file__).with_name("platforms.yaml")
HOST_MODES_FILE = Path(__file__).with_name("host_modes.yaml")
HOST_PLATFORM_FILE = "host_platform.yaml"
#: operating-mode actions a mode's `apply` block may hold, and the values each takes (tiers/runner/modes.py)
APPLY_ACTIONS = {
    "cpus": "positive int", "threads_per_core": (1,), "cpufreq_governor": "str", "cpufreq_max_khz": "positive int",
    "nvpmodel": "non-negative int", "openvino_hint": ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"),
    "edgetpu_clock": ("max", "std"),
}

DATATYPES = ("int2", "int4", "int8", "fp16", "bf16", "tf32", "fp32")  # tf32: NVIDIA TF32 tensor cores
KINDS = ("cpu", "gpu", "fpga", "asic", "vliw", "npu", "dsp")
_NUMERIC = ("memory_bandwidth_gbs", "memory_capacity_gb", "onchip_memory_mb", "tdp_w")
_REQUIRED = ("name", "kind", "peak_tops", "memory_bandwidth_gbs", "source")
_ALLOWED = set(_REQUIRED) | set(_NUMERIC) | {"modes", "description", "measured_with", "nominal_formula"}


@dataclass(frozen=True)
class PlatformPoint:
    """One platform in one operating mode: the numbers a prediction uses."""

    platform: str
    mode: str  # "" when the platform has no modes
    kind: str
    peak_tops: dict[str, float]
    memory_bandwidth_gbs: float
    memory_capacity_gb: float | None
    onchip_memory_mb: float | None
    tdp_w: float | None

    @property
    def label(self) -> str:
        return f"{self.platform}/{self.mode}" if self.mode else self.platform


@dataclass
class Platform:
    name: str
    kind: str
    peak_tops: dict[str, float]
    memory_bandwidth_gbs: float
    source: str
    memory_capacity_gb: float | None = None
    onchip_memory_mb: float | None = None
    tdp_w: float | None = None
    modes: dict[str, dict] = field(default_factory=dict)
    description: str = ""
    extra: dict = field(default_factory=dict)  # measured_with, nominal_formula (host)

    def point(self, mode: str | None = None) -> PlatformPoint:
        """Resolve a mode's overrides on top of the base numbers; None/"" = the base numbers. A mode with
        ``replace_peak_tops: true`` has exactly its own peaks (datatypes it lacks are absent, not inherited)."""
        over: dict = {}
        if mode:
            if mode not in self.modes:
                raise ConfigError(f"platform '{self.name}' has no mode '{mode}'; fix: use one of "
                                  f"{sorted(self.modes) or '(no modes)'}")
            over = self.modes[mode]
        if over.get("replace_peak_tops"):  # e.g. host/measured: only what was measured, no base fallback
            peak = dict(over["peak_tops"])
        else:
            peak = dict(self.peak_tops)
            peak.update(over.get("peak_tops", {}))
        return PlatformPoint(
            platform=self.name, mode=mode or "", kind=self.kind, peak_tops=peak,
            memory_bandwidth_gbs=float(over.get("memory_bandwidth_gbs", self.memory_bandwidth_gbs)),
            memory_capacity_gb=over.get("memory_capacity_gb", self.memory_capacity_gb),
            onchip_memory_mb=over.get("onchip_memory_mb", self.onchip_memory_mb),
            tdp_w=over.get("tdp_w", self.tdp_w))

    def points(self) -> list[PlatformPoint]:
        """Every column this platform contributes to a heatmap: each mode, or the base if none."""
        return [self.point(m) for m in self.modes] if self.modes else [self.point(None)]


def _check_peaks(where: str, peaks) -> dict[str, float]:
    if not isinstance(peaks, dict) or not peaks:
        raise ConfigError(f"{where}: peak_tops must be a mapping datatype -> TOP/s; fix: e.g. 'peak_tops: {{int8: 4.0}}'")
    out = {}
    for dt, v in peaks.items():
        if str(dt).lower() not in DATATYPES:
            raise ConfigError(f"{where}: unknown datatype '{dt}' in peak_tops; fix: use any of {', '.join(DATATYPES)}")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"{where}: peak_tops.{dt} = {v!r} is not a positive number; fix: give TOP/s as a number")
        out[str(dt).lower()] = float(v)
    return out


def _check_number(where: str, key: str, v, required: bool = False) -> float | None:
    if v is None and not required:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (required and v == 0):
        raise ConfigError(f"{where}: {key} = {v!r} is not a {'positive' if required else 'non-negative'} number; "
                          f"fix: give {key} as a number")
    return float(v)


def parse_platform(entry: dict, origin: str) -> Platform:
    """Validate one YAML entry; every error names the file, the platform and the fix."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{origin}: a platform entry is {type(entry).__name__}, not a mapping; fix: see tiers/level0/platforms.yaml")
    name = entry.get("name")
    where = f"{origin}: platform '{name}'"
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}; fix: add them (see docs/level0.md)")
    unknown = set(entry) - _ALLOWED
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; fix: remove or rename them")
    if entry["kind"] not in KINDS:
        raise ConfigError(f"{where}: kind '{entry['kind']}' unknown; fix: use one of {', '.join(KINDS)}")
    if not str(entry["source"]).strip():
        raise ConfigError(f"{where}: empty source; fix: say where the numbers come from")
    peaks = _check_peaks(where, entry["peak_tops"])
    nums = {k: _check_number(where, k, entry.get(k), required=(k == "memory_bandwidth_gbs")) for k in _NUMERIC}
    modes = entry.get("modes") or {}
    if not isinstance(modes, dict):
        raise ConfigError(f"{where}: modes must be a mapping mode -> overrides; fix: e.g. 'modes: {{maxn: {{tdp_w: 15}}}}'")
    checked_modes: dict[str, dict] = {}
    for mode, over in modes.items():
        mwhere = f"{where} mode '{mode}'"
        if not isinstance(over, dict):
            raise ConfigError(f"{mwhere}: overrides must be a mapping; fix: e.g. '{mode}: {{peak_tops: {{int8: 2}}}}'")
        bad = set(over) - ({"peak_tops", "replace_peak_tops", "source", "description", "apply"} | set(_NUMERIC))
        if bad:
            raise ConfigError(f"{mwhere}: cannot override {', '.join(sorted(bad))}; fix: override only peak_tops, "
                              f"{', '.join(_NUMERIC)} (and set replace_peak_tops)")
        replace = over.get("replace_peak_tops", False)
        if not isinstance(replace, bool):
            raise ConfigError(f"{mwhere}: replace_peak_tops = {replace!r} is not true/false; fix: write true or false")
        if replace and "peak_tops" not in over:
            raise ConfigError(f"{mwhere}: replace_peak_tops needs the mode's own peak_tops; fix: add peak_tops "
                              "to the mode or drop replace_peak_tops")
        co = dict(over)
        if "apply" in over:
            co["apply"] = check_apply(mwhere, over["apply"])
        if "peak_tops" in over:
            co["peak_tops"] = _check_peaks(mwhere, over["peak_tops"])
        for k in _NUMERIC:
            if k in over:
                co[k] = _check_number(mwhere, k, over[k], required=(k == "memory_bandwidth_gbs"))
        checked_modes[str(mode)] = co
    return Platform(name=str(name), kind=entry["kind"], peak_tops=peaks, source=str(entry["source"]),
                    memory_bandwidth_gbs=nums["memory_bandwidth_gbs"], memory_capacity_gb=nums["memory_capacity_gb"],
                    onchip_memory_mb=nums["onchip_memory_mb"], tdp_w=nums["tdp_w"], modes=checked_modes,
                    description=str(entry.get("description", "")),
                    extra={k: entry[k] for k in ("measured_with", "nominal_formula") if k in entry})


def check_apply(where: str, actions) -> dict:
    """A mode's operating-state actions: known names, values of their kind."""
    if not isinstance(actions, dict) or not actions:
        raise ConfigError(f"{where}: apply must be a mapping of actions; fix: e.g. 'apply: {{cpus: 1}}'")
    for name, value in actions.items():
        kind = APPLY_ACTIONS.get(name)
        if kind is None:
            raise ConfigError(f"{where}: unknown apply action '{name}'; fix: use one of {', '.join(APPLY_ACTIONS)}")
        whole = isinstance(value, int) and not isinstance(value, bool)
        ok = (value in kind if isinstance(kind, tuple) else
              whole and value > 0 if kind == "positive int" else
              whole and value >= 0 if kind == "non-negative int" else isinstance(value, str) and bool(value))
        if not ok:
            raise ConfigError(f"{where}: apply {name} = {value!r} is not a {kind if isinstance(kind, str) else kind}; "
                              "fix: give a value of that kind")
    return dict(actions)


def operating_modes(catalog: Catalog, platform: str) -> dict[str, dict]:
    """Operating mode -> its apply actions, for a platform (the host's come from host_modes.yaml, plus any
    its detected file defines). Modes without actions are level-0 numbers only and cannot be applied."""
    modes: dict[str, dict] = {}
    if platform == "host":
        data = read_yaml(HOST_MODES_FILE, "host modes file")
        for name, over in (data.get("modes") or {}).items():
            modes[str(name)] = check_apply(f"{HOST_MODES_FILE.name}: mode '{name}'", over["apply"])
    if platform in catalog.names():
        modes.update({name: over["apply"] for name, over in catalog.get(platform).modes.items() if "apply" in over})
    elif platform != "host":
        catalog.get(platform)  # the usual one-line error for an unknown platform
    return modes


def load_platform_file(path: str | Path) -> list[Platform]:
    path = Path(path)
    data = read_yaml(path, "platform file")
    entries = data.get("platforms") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ConfigError(f"platform file '{path}' must hold a list under 'platforms:'; fix: see tiers/level0/platforms.yaml")
    return [parse_platform(e, str(path)) for e in entries]


class Catalog:
    """Platforms by name from the built-in catalog, the work dir's host file and user files."""

    def __init__(self, platforms: list[Platform]):
        self._by_name: dict[str, Platform] = {}
        for p in platforms:
            self.add(p)

    def add(self, p: Platform, replace: bool = False) -> None:
        if p.name in self._by_name and not replace:
            raise ConfigError(f"platform '{p.name}' is defined twice; fix: rename one of them")
        self._by_name[p.name] = p

    def get(self, name: str) -> Platform:
        try:
            return self._by_name[name]
        except KeyError:
            hint = " (run 'mlperf-ext platforms detect' first)" if name == "host" else ""
            raise ConfigError(f"unknown platform '{name}'{hint}; fix: use one of {', '.join(sorted(self._by_name))} "
                              f"or pass --platforms-file") from None

    def names(self) -> list[str]:
        return list(self._by_name)

    def __iter__(self):
        return iter(self._by_name.values())


def load_catalog(extra_files: list[str | Path] = (), workdir: str | Path | None = None,
                 builtin: bool = True) -> Catalog:
    """The built-in catalog, plus ``<workdir>/host_platform.yaml`` when present, plus user files."""
    platforms = load_platform_file(BUILTIN_CATALOG) if builtin else []
    cat = Catalog(platforms)
    if workdir is not None and (Path(workdir) / HOST_PLATFORM_FILE).is_file():
        for p in load_platform_file(Path(workdir) / HOST_PLATFORM_FILE):
            cat.add(p, replace=True)
    for f in extra_files:
        for p in load_platform_file(f):
            cat.add(p)
    return cat
