"""Reading the project's YAML inputs (run specs, platform and model files) with one kind of error."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlperf_ext.errors import ConfigError


def read_yaml(path: str | Path, what: str) -> object:
    """Parsed YAML of `path`; a missing file or bad syntax is a ConfigError naming `what` and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} '{path}' not found; fix: pass an existing YAML file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{what} '{path}' is not valid YAML{where}; fix: correct the syntax") from exc
