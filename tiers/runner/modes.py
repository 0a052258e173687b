"""Operating modes: named in the platform catalog, applied by the child before the backend loads, and
read back, so a row says the state it ran in, not the state it asked for.

A mode's `apply` block lists actions (tiers/level0/platforms.py validates their names):

| action | what the child does | read back from |
|---|---|---|
| `cpus: N` | pins itself and every thread it starts to the first N usable CPUs (`os.sched_setaffinity`) | `os.sched_getaffinity` |
| `threads_per_core: 1` | pins to one logical CPU per physical core (the first of each SMT sibling list) | `os.sched_getaffinity` |
| `cpufreq_governor: G` | writes `scaling_governor` of the CPUs it runs on; restores the old one at the end | the same sysfs files |
| `cpufreq_max_khz: F` | writes `scaling_max_freq`; restores it at the end | the same sysfs files |
| `nvpmodel: N` | `nvpmodel -m N` (Jetson; a system-wide power model, left as set) | `nvpmodel -q` |
| `openvino_hint: H` | OpenVINO's PERFORMANCE_HINT (the backend applies and reads it back) | the compiled model |
| `edgetpu_clock: max/std` | which libedgetpu build the Coral backend must find loaded | the backend |

A mode that cannot be applied here (no cpufreq in a VM, no nvpmodel off a Jetson, a hint for another
backend, more CPUs than are usable) is refused before its child starts, with the reason; it never runs
in another mode. Sources: sched_setaffinity(2); the kernel's cpufreq sysfs interface
(Documentation/admin-guide/pm/cpufreq.rst); NVIDIA Jetson Linux Developer Guide, "Power Management"
(nvpmodel -m / -q).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

from mlperf_ext.errors import ConfigError

CPU_SYSFS = Path("/sys/devices/system/cpu")
#: actions a backend applies itself (it declares them in `mode_actions`; the runner only checks they fit)
BACKEND_ACTIONS = ("openvino_hint", "edgetpu_clock")


def _declared(backend_class, name: str) -> tuple[str, ...]:
    try:
        return tuple(getattr(backend_class(name), "mode_actions", ()))
    except ConfigError:  # an installed backend that does not import: it applies nothing here
        return ()


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def one_per_core(cpus: list[int], sysfs: Path = CPU_SYSFS) -> list[int]:
    """The first logical CPU of each physical core among `cpus` (SMT siblings from sysfs topology)."""
    chosen, seen = [], set()
    for cpu in cpus:
        siblings = sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list"
        key = siblings.read_text().strip() if siblings.exists() else str(cpu)
        if key not in seen:
            seen.add(key)
            chosen.append(cpu)
    return chosen


def _cpufreq_file(cpu: int, name: str) -> Path:
    return CPU_SYSFS / f"cpu{cpu}" / "cpufreq" / name


def refusal(actions: dict, backend: str) -> str | None:
    """Why a mode cannot be applied on this machine with this backend (checked in the parent), or None."""
    cpus = usable_cpus()
    if "cpus" in actions and actions["cpus"] > len(cpus):
        return f"the mode pins to {actions['cpus']} CPUs but only {len(cpus)} are usable here"
    for action, name in (("cpufreq_governor", "scaling_governor"), ("cpufreq_max_khz", "scaling_max_freq")):
        if action in actions:
            path = _cpufreq_file(cpus[0], name)
            if not path.exists():
                return f"{action} needs cpufreq, which this machine does not expose ({path} is missing)"
            if not os.access(path, os.W_OK):
                return f"{action} needs write access to {path}; run as root or drop the mode"
    if "nvpmodel" in actions and shutil.which("nvpmodel") is None:
        return "nvpmodel is not installed here (it exists on NVIDIA Jetson boards only)"
    wanted = [a for a in BACKEND_ACTIONS if a in actions]
    if wanted:
        from sut.registry import backend_class, registered

        declared = getattr(backend_class(backend), "mode_actions", ())
        for action in wanted:
            if action not in declared:
                by = [n for n in registered() if action in _declared(backend_class, n)]
                return f"{action} is applied by the {' or '.join(by) or 'no installed'} backend, not by {backend}"
    return None


def backend_hint(actions: dict) -> str | None:
    """What the backend is told (DeploymentOptions.operating_mode) for a mode's backend actions."""
    return actions.get("openvino_hint") or (f"edgetpu-{actions['edgetpu_clock']}" if "edgetpu_clock" in actions else None)


@contextmanager
def applied(actions: dict):
    """Apply the host actions in this process for the block; yields the state read back. Raises ConfigError
    (the point becomes a refused row) when an action fails here."""
    restore: list[tuple[Path, str]] = []
    state: dict = {}
    try:
        cpus = usable_cpus()
        if "threads_per_core" in actions:
            cpus = one_per_core(cpus)
        if "cpus" in actions:
            cpus = cpus[: actions["cpus"]]
        if "cpus" in actions or "threads_per_core" in actions:
            os.sched_setaffinity(0, cpus)
        state["cpus"] = usable_cpus()
        for action, name in (("cpufreq_governor", "scaling_governor"), ("cpufreq_max_khz", "scaling_max_freq")):
            if action in actions:
                for cpu in state["cpus"]:
                    path = _cpufreq_file(cpu, name)
                    try:
                        old = path.read_text().strip()
                        path.write_text(str(actions[action]))
                    except OSError as exc:
                        raise ConfigError(f"cannot set {action} on cpu{cpu} ({exc.strerror or exc}); fix: run where "
                                          "cpufreq is writable, or drop the mode") from exc
                    restore.append((path, old))
                state[action] = {cpu: _cpufreq_file(cpu, name).read_text().strip() for cpu in state["cpus"]}
        if "nvpmodel" in actions:
            done = subprocess.run(["nvpmodel", "-m", str(actions["nvpmodel"])], capture_output=True, text=True)
            if done.returncode != 0:
                raise ConfigError(f"nvpmodel -m {actions['nvpmodel']} failed ({done.stderr.strip()[:200]}); fix: check "
                                  "the mode id for this board (nvpmodel -p --verbose)")
            state["nvpmodel"] = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True).stdout.strip()
        yield state
    finally:
        for path, old in reversed(restore):
            try:
                path.write_text(old)
            except OSError:
                pass
