"""Finding backends by name: installed packages declare them as entry points, so an out-of-tree
backend is a `pip install` away.

A package registers `name = "module:Class"` in the `mlperf_ext.backends` entry-point group (this
project's own backends are declared that way in pyproject.toml). A `module:Class` reference names a
class directly (out-of-tree code on the path; the test suite's fault-injection backends). Importing a
backend module is cheap: each imports its runtime inside `load`, so `check_backend` can say which
pip extra is missing before anything runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from functools import cache
from importlib import metadata

from mlperf_ext.errors import BackendUnavailable, ConfigError

ENTRY_POINT_GROUP = "mlperf_ext.backends"
#: methods a class must define to be used as a backend
REQUIRED_METHODS = ("load", "describe", "input_spec", "infer", "compute_step", "close")


@cache
def registered() -> dict[str, metadata.EntryPoint]:
    """Backend name -> entry point, for every installed package that declares backends."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted(registered())


def _known() -> str:
    found = names()
    if not found:
        return "none: mlperf-ext is not installed (fix: pip install -e . in the project)"
    return ", ".join(found)


def _import_class(module_name: str, class_name: str, ref: str):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"backend '{ref}' cannot be imported ({exc}); fix: use one of {_known()} or an "
                          "importable 'module:Class'") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"backend '{ref}': module {module_name} has no attribute {class_name}; fix: name an "
                          "existing class")
    if not inspect.isclass(cls):
        raise ConfigError(f"backend '{ref}' is a {type(cls).__name__}, not a class; fix: name a backend class "
                          "(module:Class)")
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ConfigError(f"backend '{ref}' ({cls.__name__}) lacks {', '.join(missing)} of the Backend protocol; "
                          "fix: implement sut.base.Backend")
    return cls


def backend_class(ref: str):
    """The class a backend name or `module:Class` reference names; ConfigError for an unknown one."""
    if ":" in ref:
        module_name, _, class_name = ref.partition(":")
        return _import_class(module_name, class_name, ref)
    entry = registered().get(ref)
    if entry is None:
        raise ConfigError(f"unknown backend '{ref}'; fix: use one of {_known()}")
    module_name, _, class_name = entry.value.partition(":")
    return _import_class(module_name, class_name, ref)


def check_backend(ref: str):
    """The backend's class, once its runtime is known to be importable (else BackendUnavailable naming the
    pip extra). Nothing of the runtime itself is imported here."""
    cls = backend_class(ref)
    runtime = getattr(cls, "runtime_module", None)
    if runtime is not None and importlib.util.find_spec(runtime) is None:
        raise BackendUnavailable(ref, getattr(cls, "extra", "") or ref, f"python module '{runtime}' not found")
    return cls


def create_backend(ref: str):
    """A new, unloaded instance of the backend `ref` names."""
    return check_backend(ref)()


def runtime_versions(ref: str) -> dict[str, str]:
    """Installed versions of the distributions the backend runs on (part of each point's key)."""
    cls = backend_class(ref)
    out = {}
    for dist in getattr(cls, "runtime_packages", ()):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
