"""A power result's system: design power (nameplate), the power fields of the systems JSON, and the
analyzer table and power settings files."""

from __future__ import annotations

import re
from typing import Any

import yaml

from audit.checker.power.facts import (
    MEASURE_SEARCH_DEPTH,
    POWER_MEASURE_PATTERNS,
    SYSTEM_POWER_CAPACITY,
    SYSTEM_POWER_FIELDS,
)
from audit.checker.problems import Problem, problem
from audit.layout import ScenarioPaths

# ---------------------------------------------------------------- systems/<id>: nameplate and fields


def _design_power(node: Any) -> float:
    """system_check.py:287-313: the sum over components of their `Min PSUs Needed` largest PSUs'
    PowerCapacityWatts (redundant PSUs excluded)."""
    if isinstance(node, list):
        return sum(_design_power(item) for item in node)
    if not isinstance(node, dict):
        return 0
    keys = {str(k).lower(): k for k in node}
    if "psus" in keys and "min psus needed" in keys:
        capacities = sorted(
            (float(psu.get("PowerCapacityWatts", 0)) for psu in node[keys["psus"]]), reverse=True
        )
        return sum(capacities[: int(node[keys["min psus needed"]])])
    return sum(_design_power(v) for v in node.values() if isinstance(v, (dict, list)))


def nameplate(paths: ScenarioPaths, system: dict) -> tuple[float | None, list[Problem]]:
    """The design power (system_check.py:226-284): system_power_capacity, else the nameplate YAML."""
    if SYSTEM_POWER_CAPACITY in system:
        try:
            return float(system[SYSTEM_POWER_CAPACITY]), []
        except (TypeError, ValueError):
            return None, [
                problem(paths.system_json, "power_nameplate", f"{SYSTEM_POWER_CAPACITY} is not a number of W")
            ]
    path = paths.system_json.with_name(f"{paths.system}_power.yaml")  # constants.py:2177-2179
    if not path.is_file():
        return None, [
            problem(
                path,
                "power_nameplate",
                f"a power result needs the system's design power; fix: write {path.name} (PSUs, Min PSUs "
                f"Needed, PowerCapacityWatts) or {SYSTEM_POWER_CAPACITY} in {paths.system_json.name}",
            )
        ]
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return None, [
            problem(path, "power_nameplate_corrupt", f"nameplate power YAML could not be loaded ({exc})")
        ]
    if data is None:
        return None, [problem(path, "power_nameplate_corrupt", "nameplate power YAML is empty")]
    try:
        watts = _design_power(data)
    except (AttributeError, TypeError, ValueError) as exc:
        return None, [
            problem(path, "power_nameplate", f"has PSUs that are not PowerCapacityWatts entries ({exc})")
        ]
    if watts <= 0:
        return None, [
            problem(
                path, "power_nameplate", "states no PSU with 'Min PSUs Needed' and PowerCapacityWatts > 0"
            )
        ]
    return watts, []


def system_field_problems(paths: ScenarioPaths, system: dict) -> list[Problem]:
    absent = [k for k in SYSTEM_POWER_FIELDS if k not in system]
    if not absent:
        return []
    return [
        problem(
            paths.system_json, "power_system_fields", f"a power result's system lacks {', '.join(absent)}"
        )
    ]


def measure_file_problems(paths: ScenarioPaths) -> list[Problem]:
    """analyzer_table.* and power_settings.*, not empty, in the scenario directory or one of the three
    above it (submission_checker_old.py:3435-3472)."""
    dirs = [paths.dir, *list(paths.dir.parents)[: MEASURE_SEARCH_DEPTH - 1]]
    files = [f for d in dirs if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]
    out = []
    for pattern in POWER_MEASURE_PATTERNS:
        found = [f for f in files if re.match(pattern, f.name)]
        if not found:
            out.append(
                problem(
                    paths.dir,
                    "power_measure_files",
                    f"{paths.dir} is missing {pattern} (here or in the 3 directories above)",
                )
            )
        elif found[-1].stat().st_size == 0:
            out.append(problem(found[-1], "power_measure_files", f"{found[-1]} is empty"))
    return out
