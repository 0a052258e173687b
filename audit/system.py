"""`systems/<id>.json`: what the host tells about itself, plus what the user's system YAML gives.

Every field of MLCommons' list (`audit.rules.SYSTEM_REQUIRED_FIELDS`) must come from one of the two;
a field neither can supply stops packaging with an error naming it: nothing is invented. The YAML wins
where both give a value (a submitter may describe the machine better than /proc does). The truthiness
rule of the checker applies: a CPU-only system writes `"accelerators_per_node": "0"`, a string.

What the host tells: processor model, processors (sockets) per node, cores per processor, memory and
storage capacity, operating system, processor frequency and caches (sysfs), the frameworks the packaged
rows ran on, the software stack (Python, LoadGen, this project, numpy), one node; with no accelerator in
the packaged rows, the accelerator fields say so ("0", "N/A").
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from audit.rules import SYSTEM_MEANINGFUL_FIELDS, SYSTEM_REQUIRED_FIELDS, is_meaningful
from mlperf_ext import __version__, host
from mlperf_ext.errors import ConfigError
from mlperf_ext.yaml_file import read_yaml

#: the accelerator fields a CPU-only system answers with "N/A" (there is nothing to describe)
ACCELERATOR_FIELDS = ("accelerator_model_name", "accelerator_memory_capacity", "accelerator_frequency",
                      "accelerator_host_interconnect", "accelerator_interconnect", "accelerator_interconnect_topology",
                      "accelerator_memory_configuration", "accelerator_on-chip_memories")


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))}, {platform.system()} {platform.release()}"
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.0f} GB"


def _memory() -> str | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return _gib(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sockets_and_cores() -> tuple[int | None, int | None]:
    """(processors, cores per processor) from /proc/cpuinfo's physical id / core id pairs."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, None
    pairs = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "physical id" in fields and "core id" in fields:
            pairs.add((fields["physical id"], fields["core id"]))
    if not pairs:
        return None, None
    sockets = len({p for p, _ in pairs})
    return sockets, len(pairs) // sockets


def _caches() -> str | None:
    """'L1d 32 KiB, L1i 32 KiB, L2 1 MiB, L3 32 MiB' from cpu0's sysfs cache entries."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    parts = []
    for index in sorted(base.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        parts.append(f"L{level}{suffix} {size.replace('K', ' KiB').replace('M', ' MiB')}")
    return ", ".join(parts) or None


def host_facts(frameworks: list[str], storage_path: Path, accelerators: list[str]) -> dict:
    """The fields this machine can state about itself (absent where it cannot)."""
    sockets, cores = _sockets_and_cores()
    mhz = host.cpu_clock_mhz()
    facts = {
        "number_of_nodes": "1",
        "host_processor_model_name": host.cpu_model(),
        "host_processors_per_node": None if sockets is None else str(sockets),
        "host_processor_core_count": None if cores is None else str(cores),
        "host_memory_capacity": _memory(),
        "host_storage_capacity": _gib(shutil.disk_usage(storage_path).total),
        "host_processor_frequency": None if mhz is None else f"{mhz:.0f} MHz",
        "host_processor_caches": _caches(),
        "operating_system": _os_name(),
        "framework": ", ".join(frameworks) or None,
        "other_software_stack": (f"Python {platform.python_version()}, mlcommons-loadgen "
                                 f"{host.package_version('mlcommons-loadgen')}, mlperf-ext {__version__}, numpy "
                                 f"{host.package_version('numpy')}, usable CPUs {len(os.sched_getaffinity(0))}"),
    }
    if accelerators:
        facts["accelerators_per_node"] = str(len(accelerators))
        facts["accelerator_model_name"] = ", ".join(accelerators)
    else:
        facts["accelerators_per_node"] = "0"
        facts.update({name: "N/A" for name in ACCELERATOR_FIELDS})
    return {k: v for k, v in facts.items() if v is not None}


def system_description(division: str, submitter: str, system_yaml: Path | None, facts: dict) -> dict:
    """Every required field, from the YAML or the host; ConfigError naming what neither gives."""
    given = {}
    if system_yaml is not None:
        data = read_yaml(system_yaml, "system description")
        if not isinstance(data, dict):
            raise ConfigError(f"system description '{system_yaml}' must be a mapping of field: value; fix: write "
                              "'system_name: My host' lines")
        unknown = sorted(set(data) - set(SYSTEM_REQUIRED_FIELDS))
        if unknown:
            raise ConfigError(f"system description '{system_yaml}' has unknown field(s) {', '.join(unknown)}; fix: use "
                              "the field names of MLCommons' systems JSON (mlperf-ext submission package --help)")
        given = {k: v if isinstance(v, str) else str(v) for k, v in data.items()}
    out = {**facts, **given, "division": division, "submitter": submitter}
    missing = [f for f in SYSTEM_REQUIRED_FIELDS if f not in out]
    if missing:
        where = f"'{system_yaml}'" if system_yaml else "a system YAML (--system)"
        raise ConfigError(f"the systems JSON needs {missing[0]}" + (f" (and {len(missing) - 1} more: "
                          f"{', '.join(missing[1:4])}{'...' if len(missing) > 4 else ''})" if len(missing) > 1 else "")
                          + f", which this host cannot tell; fix: add it to {where}")
    empty = [f for f in SYSTEM_MEANINGFUL_FIELDS if not is_meaningful(out.get(f))]
    if empty:
        raise ConfigError(f"the systems JSON field {empty[0]} needs a meaningful value, not {out.get(empty[0])!r}; fix: "
                          "give it in the system YAML (write \"0\" for a count of zero)")
    return {f: out[f] for f in SYSTEM_REQUIRED_FIELDS}
