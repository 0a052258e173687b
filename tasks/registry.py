"""Finding tasks by name: packages declare them in the `mlperf_ext.tasks` entry-point group (this project's
own in pyproject.toml), as backends are declared in `mlperf_ext.backends`, so an out-of-tree task is a
`pip install` away. A task module imports its scorer lazily: `get_task` says which pip extra is missing
before anything runs."""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from importlib import metadata

from mlperf_ext.errors import ConfigError, MlperfExtError

ENTRY_POINT_GROUP = "mlperf_ext.tasks"


@cache
def registered() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted(registered())


def get_task(name: str):
    """A new instance of the task `name`; ConfigError for an unknown name, and an error naming the pip extra
    when its scorer is not installed."""
    entry = registered().get(name)
    if entry is None:
        known = ", ".join(names()) or "none: mlperf-ext is not installed (fix: pip install -e . in the project)"
        raise ConfigError(f"unknown task '{name}'; fix: use one of {known}")
    cls = entry.load()
    scorer = getattr(cls, "scorer_module", None)
    if scorer is not None and importlib.util.find_spec(scorer) is None:
        raise MlperfExtError(f"task '{name}' scores with python module '{scorer}', which is not installed; fix: "
                             f"pip install 'mlperf-ext[{cls.extra}]'")
    return cls()
