"""systems/<id>.json: present, a JSON object, every required field there and meaningful, consistent
with its directory (tools/submission/submission_checker/checks/system_check.py, messages kept)."""

from __future__ import annotations

import json
from pathlib import Path

from audit.checker.problems import Problem, problem
from audit.rules import (
    SYSTEM_MEANINGFUL_FIELDS,
    SYSTEM_NETWORK_FIELDS,
    SYSTEM_NETWORK_FLAG,
    SYSTEM_REQUIRED_FIELDS,
    SYSTEM_STATUSES,
    SYSTEM_TYPES,
    is_meaningful,
)


def read_json_object(
    path: Path, missing_rule: str, corrupt_rule: str, what: str
) -> tuple[dict | None, list[Problem]]:
    path = Path(path)
    if not path.is_file():
        return None, [problem(path, missing_rule, f"{what} file not found")]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [problem(path, corrupt_rule, f"{what} is not valid JSON ({exc})")]
    if not isinstance(data, dict):
        return None, [problem(path, corrupt_rule, f"{what} is not a JSON object")]
    return data, []


def is_network_system(system: dict) -> bool:
    flag = system.get(SYSTEM_NETWORK_FLAG)
    return str(flag).lower() == "true" if flag is not None else False


def system_problems(path: Path, division: str, submitter: str) -> tuple[dict | None, list[Problem]]:
    """The system description (None when unreadable) and its problems."""
    system, out = read_json_object(path, "system_json_missing", "system_json_corrupt", "system json")
    if system is None:
        return None, out
    status = str(system.get("status", "")).lower()
    if status not in SYSTEM_STATUSES:
        out.append(problem(path, "system_status", f"has invalid status ({system.get('status')})"))
    if system.get("system_type") not in SYSTEM_TYPES:
        out.append(problem(path, "system_type", f"has invalid system type ({system.get('system_type')})"))
    network = is_network_system(system)
    expected = {"network": True, "closed": False}.get(division)
    if expected is not None and network != expected:
        out.append(
            problem(
                path, "system_network_mode", f"incorrect network mode(={network}) for division '{division}'"
            )
        )
    required = list(SYSTEM_REQUIRED_FIELDS) + (
        list(SYSTEM_NETWORK_FIELDS) if system.get(SYSTEM_NETWORK_FLAG) else []
    )
    for key in required:
        if key not in system:
            out.append(problem(path, "system_field_missing", f"field {key} is missing"))
        elif key in SYSTEM_MEANINGFUL_FIELDS and not is_meaningful(system[key]):
            hint = ' (a CPU-only system writes "0", a string)' if system[key] == 0 else ""
            out.append(
                problem(
                    path,
                    "system_field_empty",
                    f"field {key} requires a meaningful response but is empty{hint}",
                )
            )
    if str(system.get("submitter", "")).lower() != submitter.lower():
        out.append(
            problem(
                path,
                "system_submitter",
                f"has submitter {system.get('submitter')}, directory has {submitter}",
            )
        )
    if str(system.get("division", "")).lower() != division.lower():
        out.append(
            problem(
                path, "system_division", f"has division {system.get('division')}, directory has {division}"
            )
        )
    return system, out


__all__ = ["is_network_system", "read_json_object", "system_problems"]
