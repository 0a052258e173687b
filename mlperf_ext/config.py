"""Run points and run specs: a YAML spec's lists expand into a grid of fully resolved points.

A `RunPoint` holds everything that decides a measurement. Its `identity()` (the resolved config with
the model file's sha256 and the user.conf's contents) is the part of a point's key the point itself
knows; the runner adds the dataset's content hash and the versions of the software that measures it.
Where a file's bytes are in the key, its directory is not: the same spec gives the same keys in any
workdir and any checkout.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlperf_ext.errors import ConfigError
from mlperf_ext.loadgen import SCENARIOS as SCENARIO_NAMES
from mlperf_ext.yaml_file import read_yaml

#: every precision some backend can be asked to execute in (each backend's `exec_precisions` is a subset;
#: tests/harness/test_units.py holds them together): a value outside it is bad input, not a refused row
EXEC_PRECISIONS = ("model", "fp32", "bf16", "fp16", "tf32")  # tf32: fp32 layers on TF32 tensor cores (tensorrt)


#: the task of a point that names none: a classifier scored by top-1 (tasks/classification.py)
DEFAULT_TASK = "classification"


@dataclass(frozen=True)
class RunPoint:
    """One LoadGen run: a model on a backend in one scenario and mode with one set of deployment knobs."""

    model: str  # ONNX file path
    dataset: str  # .npy directory or built-in dataset name
    backend: str
    scenario: str
    mode: str = "performance"  # performance | accuracy | submission
    profile: str = "quick"  # quick (never compliant) | submission (LoadGen's official settings)
    batch: int = 1
    threads: int | None = None
    streams: int = 1
    device: str = "cpu"
    operating_mode: str | None = None
    platform: str = "host"
    user_conf: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # explicit TestSettings overrides
    max_wait_us: int = 1000  # Server dynamic-batching window
    mlperf_model: str | None = None  # model name for mlperf.conf/user.conf lookups (default: file stem)
    model_name: str | None = None  # display name (zoo name or file stem)
    timeout_s: float = 600.0  # watchdog for the child process; not part of the key
    exec_precision: str = "model"  # precision the runtime executes in: model (its own) | fp32 | bf16 | fp16 | tf32
    runtime_options: dict[str, Any] = field(default_factory=dict)  # backend-specific, checked by the backend
    audit_config: str | None = None  # a compliance test's audit.config text (LoadGen reads it from the cwd)
    loadgen_trace: bool = False  # LoadGen's trace log, for every sample's latency (LoadGen's IO thread writes it)
    power: str = "none"  # the power meter (mlperf_ext.power.open_meter spec) sampled during the LoadGen run
    allow_nonfinite: bool = False  # run accuracy/submission on a dataset with NaN/Inf; permits, not part of the key
    task: str = DEFAULT_TASK  # what the outputs mean and how they are scored (tasks/: classification, detection, raw, llm)

    def __post_init__(self):
        if self.scenario not in SCENARIO_NAMES:
            raise ConfigError(f"unknown scenario '{self.scenario}'; fix: use one of {', '.join(SCENARIO_NAMES)}")
        for name in ("batch", "streams", "threads"):
            value = getattr(self, name)
            if name == "threads" and value is None:
                continue
            if not _is_int(value) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}; fix: use 1 or more")
        if not _is_int(self.max_wait_us) or self.max_wait_us < 0:
            raise ConfigError(f"max_wait_us must be an integer >= 0, got {self.max_wait_us!r}; fix: e.g. 1000")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be a positive number of seconds, got {self.timeout_s!r}; fix: e.g. 600")
        if self.exec_precision not in EXEC_PRECISIONS:
            raise ConfigError(f"no backend executes in precision {self.exec_precision!r}; fix: use one of "
                              f"{', '.join(EXEC_PRECISIONS)} (model: the precision the model file has)")
        for name in ("loadgen_trace", "allow_nonfinite"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}; fix: {name}: true")
        if not isinstance(self.task, str) or not self.task:
            raise ConfigError(f"task must be a task name, got {self.task!r}; fix: e.g. task: detection")
        if not isinstance(self.runtime_options, dict):
            raise ConfigError(f"runtime_options must be a mapping, got {self.runtime_options!r}; fix: write "
                              "runtime_options: {graph_optimization_level: basic}")
        if not isinstance(self.settings, dict):
            raise ConfigError(f"settings must be a mapping of TestSettings fields, got {self.settings!r}; "
                              "fix: write settings: {min_duration_ms: 2000}")
        if self.scenario == "SingleStream" and self.batch != 1:
            # a SingleStream query holds one sample: any other batch would be a label, not a fact
            object.__setattr__(self, "batch", 1)
        for name in ("model", "dataset", "user_conf"):  # children run elsewhere: keep no relative path
            value = getattr(self, name)
            if value and Path(value).exists():
                object.__setattr__(self, name, str(Path(value).resolve()))
        if self.model_name is None:
            object.__setattr__(self, "model_name", Path(self.model).stem)
        if self.mlperf_model is None:
            object.__setattr__(self, "mlperf_model", self.model_name)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunPoint:
        # the store keeps booleans as SQLite integers: 0/1 read back as false/true, anything else is refused
        flags = {f.name for f in fields(cls) if f.type in ("bool", bool)}
        data = {k: bool(v) if k in flags and type(v) is int and v in (0, 1) else v for k, v in data.items()}
        return cls(**data)

    def identity(self) -> dict:
        """Everything of the point that decides its measurement, with the bytes of its input files."""
        data = self.to_dict()
        data.pop("timeout_s")
        data.pop("allow_nonfinite")  # lets a run go ahead; the run it allows is the same run
        if data["task"] == DEFAULT_TASK:  # the default: keys of classifier points are those stored before tasks
            data.pop("task")
        data["model_sha256"] = file_sha256(Path(self.model)) if Path(self.model).is_file() else None
        data["user_conf_sha256"] = (file_sha256(Path(self.user_conf))
                                    if self.user_conf and Path(self.user_conf).is_file() else None)
        # the bytes identify a file, not its directory (the runner adds the dataset's content hash)
        if data["model_sha256"]:
            data["model"] = Path(self.model).name
        if data["user_conf_sha256"]:
            data["user_conf"] = Path(self.user_conf).name
        if Path(self.dataset).exists():
            data["dataset"] = Path(self.dataset).name
        return data

    def label(self) -> str:
        parts = [self.model_name, self.backend, self.scenario, self.mode, f"b{self.batch}",
                 f"t{self.threads or 'auto'}", f"s{self.streams}"]
        if self.operating_mode:
            parts.append(self.operating_mode)
        if self.exec_precision != "model":
            parts.append(f"exec {self.exec_precision}")
        if self.task != DEFAULT_TASK:
            parts.append(self.task)
        parts.extend(f"{k}={v}" for k, v in sorted(self.runtime_options.items()))
        if self.audit_config:
            parts.append("audit")
        if self.power != "none":
            parts.append(f"power {self.power}")
        if self.loadgen_trace:
            parts.append("trace")
        return " ".join(str(p) for p in parts)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_SHA_CACHE: dict[tuple[str, float, int], str] = {}


def file_sha256(path: Path) -> str:
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    if cache_key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[cache_key] = digest.hexdigest()
    return _SHA_CACHE[cache_key]


# spec key -> (RunPoint field, is a grid axis)
SPEC_AXES = {
    "models": "model", "model": "model",
    "datasets": "dataset", "dataset": "dataset",
    "backends": "backend", "backend": "backend",
    "scenarios": "scenario", "scenario": "scenario",
    "modes": "mode", "mode": "mode",
    "batch": "batch", "batches": "batch",
    "threads": "threads",
    "streams": "streams",
    "devices": "device", "device": "device",
    "operating_modes": "operating_mode", "operating_mode": "operating_mode",
    "exec_precisions": "exec_precision", "exec_precision": "exec_precision",
}
SPEC_SCALARS = {"profile", "platform", "user_conf", "settings", "max_wait_us", "mlperf_model", "timeout_s",
                "runtime_options", "power", "loadgen_trace", "allow_nonfinite", "task"}
SPEC_KEYS = set(SPEC_AXES) | SPEC_SCALARS


@dataclass
class ModelEntry:
    """A spec's model: a file or a zoo name, optionally with its own dataset."""

    ref: str
    dataset: str | None = None


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _unknown_key_error(key: str, valid, where: str) -> ConfigError:
    hint = difflib.get_close_matches(key, sorted(valid), n=1)
    return ConfigError(f"unknown key '{key}' in {where}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                       + f"; fix: use one of {', '.join(sorted(valid))}")


def load_spec(path: Path) -> list[dict]:
    """Read and check a YAML run spec: one grid (a mapping) or several (a list of mappings).

    Relative paths inside are taken relative to the spec's folder.
    """
    data = read_yaml(path, "run spec")
    grids = data if isinstance(data, list) else [data]
    out = []
    for number, grid in enumerate(grids, 1):
        where = str(path) if len(grids) == 1 else f"{path} grid {number}"
        if not isinstance(grid, dict):
            raise ConfigError(f"{where} must be a mapping of keys (models, backends, scenarios, ...); "
                              "fix: write 'key: value' lines")
        for key in grid:
            if key not in SPEC_KEYS:
                raise _unknown_key_error(str(key), SPEC_KEYS, where)
        grid = dict(grid)
        grid["_base_dir"] = str(path.parent.resolve())
        out.append(grid)
    return out


def _resolve_path(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    candidate = Path(value)
    if not candidate.is_absolute() and (base / candidate).exists():
        return str((base / candidate).resolve())
    return str(candidate.resolve()) if candidate.exists() else value


def model_entries(spec: dict) -> list[ModelEntry]:
    raw = spec.get("models", spec.get("model"))
    if raw is None:
        raise ConfigError("the spec names no model; fix: add 'models: [path.onnx or zoo name, ...]'")
    entries = []
    for item in _as_list(raw):
        if isinstance(item, dict):
            extra = set(item) - {"model", "dataset"}
            if extra or "model" not in item:
                raise ConfigError(f"model entry {item} must have 'model' and optionally 'dataset'; "
                                  "fix: write {model: ..., dataset: ...}")
            entries.append(ModelEntry(str(item["model"]), item.get("dataset")))
        else:
            entries.append(ModelEntry(str(item)))
    return entries


def expand(spec: dict, resolve_model) -> list[RunPoint]:
    """The grid of points a spec describes.

    `resolve_model(ref) -> (onnx_path, display_name, default_dataset)` turns a file path or zoo name
    into a file (building zoo models as needed).
    """
    base = Path(spec.get("_base_dir", "."))
    axes: dict[str, list] = {}
    for key, field_name in SPEC_AXES.items():
        if key in spec and field_name not in ("model", "dataset"):
            if field_name in axes:
                raise ConfigError(f"the spec sets '{field_name}' twice; fix: keep one of the two keys")
            values = _as_list(spec[key])
            if field_name == "backend":  # YAML reads a bare `null` as None; the user meant the null backend
                values = ["null" if v is None else v for v in values]
            if field_name in ("backend", "scenario", "mode", "device", "operating_mode", "exec_precision") and not all(
                    isinstance(v, str) or (v is None and field_name == "operating_mode") for v in values):
                raise ConfigError(f"'{key}' must list names, got {values!r}; fix: write e.g. {key}: [name, ...]")
            axes[field_name] = values
    if "backend" not in axes:
        raise ConfigError("the spec names no backend; fix: add 'backends: [onnxruntime, ...]'")
    if "scenario" not in axes:
        raise ConfigError("the spec names no scenario; fix: add 'scenarios: [Offline, ...]'")
    settings = spec.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError("'settings' must be a mapping of LoadGen TestSettings fields; fix: write "
                          "'settings: {min_duration_ms: 500}'")
    scalars = {k: spec[k] for k in SPEC_SCALARS - {"settings", "user_conf", "runtime_options"} if k in spec}
    runtime_options = spec.get("runtime_options") or {}
    if not isinstance(runtime_options, dict):
        raise ConfigError("'runtime_options' must be a mapping of backend options; fix: write "
                          "'runtime_options: {graph_optimization_level: basic}'")
    user_conf = _resolve_path(spec.get("user_conf"), base)
    datasets = _as_list(spec["datasets"] if "datasets" in spec else spec.get("dataset"))
    points = []
    names = list(axes)
    for entry in model_entries(spec):
        model_path, display, default_dataset = resolve_model(_resolve_path(entry.ref, base))
        entry_datasets = [entry.dataset] if entry.dataset else [d for d in datasets if d] or [default_dataset]
        for dataset in entry_datasets:
            if dataset is None:
                raise ConfigError(f"no dataset for model '{entry.ref}'; fix: add 'dataset: DIR_OR_NAME'")
            dataset = _resolve_path(str(dataset), base)
            for combo in itertools.product(*(axes[n] for n in names)):
                values = dict(zip(names, combo))
                try:
                    point = RunPoint(model=model_path, dataset=dataset, model_name=display,
                                     user_conf=user_conf, settings=dict(settings),
                                     runtime_options=dict(runtime_options), **values, **scalars)
                except TypeError as exc:
                    raise ConfigError(f"bad value in spec: {exc}; fix: check the types of the values") from exc
                points.append(point)
    unique = list(dict.fromkeys(_point_identity(p) for p in points))
    by_identity = {_point_identity(p): p for p in points}
    return [by_identity[i] for i in unique]


def _point_identity(point: RunPoint) -> str:
    return json.dumps(point.to_dict(), sort_keys=True, default=str)


def with_overrides(point: RunPoint, **changes) -> RunPoint:
    valid = {f.name for f in fields(RunPoint)}
    for key in changes:
        if key not in valid:
            raise _unknown_key_error(key, valid, "run point")
    return replace(point, **changes)
