"""measurements.json, README.md and user.conf of a scenario directory, and the submitter's src/
(tools/submission/submission_checker/checks/measurements_checks.py, messages kept)."""

from __future__ import annotations

from pathlib import Path

from audit.checker.problems import Problem, problem
from audit.checker.system import read_json_object
from audit.layout import ScenarioPaths
from audit.rules import MEASUREMENTS_REQUIRED_FIELDS, is_meaningful


def measurements_problems(paths: ScenarioPaths) -> tuple[dict | None, list[Problem]]:
    data, out = read_json_object(
        paths.measurements, "measurements_missing", "measurements_corrupt", "measurements json"
    )
    if data is not None:
        for key in MEASUREMENTS_REQUIRED_FIELDS:
            if key not in data:
                out.append(
                    problem(paths.measurements, "measurements_field_missing", f"field {key} is missing")
                )
            elif not is_meaningful(data[key]):
                out.append(
                    problem(
                        paths.measurements,
                        "measurements_field_empty",
                        f"field {key} is missing meaningful value",
                    )
                )
    for path in (paths.readme, paths.user_conf):
        if not path.is_file():
            out.append(problem(path, "file_missing", f"{paths.dir} is missing {path.name}"))
        elif path.stat().st_size == 0:
            out.append(problem(path, "file_empty", f"{paths.dir} is having empty {path.name}"))
    return data, out


def src_problems(src: Path) -> list[Problem]:
    src = Path(src)
    return [] if src.is_dir() else [problem(src, "src_missing", f"{src} src directory does not exist")]


__all__ = ["measurements_problems", "src_problems"]
