"""The one module that imports `mlperf_loadgen`: settings, profiles, callbacks and one test per process.

LoadGen facts this module is built around (measured, see shared/notes/mlperf-loadgen.md):
- the embedded mlperf.conf loads only on the *first* `FromConfig` of a process, so a process runs
  exactly one test and calls `FromConfig` exactly once (with an empty user.conf when the user gives none);
- LoadGen silently ignores unknown user.conf keys and lines for another model name: `check_user_conf`
  reports them instead;
- a missing log directory aborts the process: `run_test` creates it;
- an exception escaping a callback aborts the process: `guard_callback` catches and records it.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from itertools import repeat
from pathlib import Path

import mlperf_loadgen as lg
import numpy as np

from mlperf_ext.errors import ConfigError

LOADGEN_VERSION = metadata.version("mlcommons-loadgen")

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = ("performance", "accuracy", "submission")
PROFILES = ("quick", "submission")

_SCENARIO = {name: getattr(lg.TestScenario, name) for name in SCENARIOS}
_MODE = {
    "performance": lg.TestMode.PerformanceOnly,
    "accuracy": lg.TestMode.AccuracyOnly,
    "submission": lg.TestMode.SubmissionRun,  # accuracy, then performance, in one StartTest
}

#: Keys LoadGen 6.0.17 reads from a user.conf, unqualified (source: loadgen/test_settings_internal.cc,
#: summarised in shared/notes/mlperf-loadgen.md §1.3).
USER_CONF_GENERIC_KEYS = frozenset({
    "mode", "use_token_latencies", "performance_issue_unique", "performance_issue_same",
    "performance_issue_same_index", "sample_concatenate_permutation", "min_duration", "max_duration",
    "min_query_count", "max_query_count", "performance_sample_count_override",
    "accuracy_sample_count_override", "print_timestamps", "accuracy_log_rng_seed",
    "accuracy_log_sampling_target", "ttft_latency", "tpot_latency", "infer_token_latencies",
    "token_latency_scaling_factor",
})
#: Keys LoadGen reads only for one scenario (scenario -> keys).
USER_CONF_SCENARIO_KEYS = {
    "SingleStream": frozenset({"target_latency_percentile", "target_latency"}),
    "MultiStream": frozenset({"target_latency_percentile", "samples_per_query", "target_latency"}),
    "Server": frozenset({"target_latency_percentile", "target_latency", "coalesce_queries",
                         "max_async_queries", "target_qps"}),
    "Offline": frozenset({"target_qps"}),
}
#: Keys only the embedded mlperf.conf may set; LoadGen ignores them in a user.conf.
MLPERF_CONF_ONLY_KEYS = frozenset({"qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed",
                                   "accuracy_log_probability", "test05", "test05_qsl_rng_seed",
                                   "test05_sample_index_rng_seed", "test05_schedule_rng_seed"})

#: The `quick` profile: short runs for exploration, never submission-compliant. Query counts stay
#: at mlperf.conf's values where early stopping needs them (MultiStream 662 at p99).
QUICK_SETTINGS = {
    "SingleStream": {"min_duration_ms": 1000},
    "MultiStream": {"min_duration_ms": 1000},
    "Server": {"min_duration_ms": 1000},
    "Offline": {"min_duration_ms": 1000},
}

TEST_SETTINGS_FIELDS = frozenset(a for a in dir(lg.TestSettings()) if not a.startswith("_")
                                 and a not in {"FromConfig", "scenario", "mode"})


@dataclass
class CallbackErrors:
    """Exceptions caught inside LoadGen callbacks: the run completes, the row reports them."""

    count: int = 0
    first: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, exc: BaseException, where: str) -> None:
        with self._lock:
            self.count += 1
            if self.first is None:
                self.first = f"{where}: {type(exc).__name__}: {exc}"


def _conf_lines(path: Path):
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            yield lineno, line


_CONF_LINE = re.compile(r"([^.\s=]+)\.([^.\s=]+)\.([^\s=]+)\s*=\s*(\S+)")


def conf_sets(path: Path | None, model_name: str, scenario: str, key: str) -> bool:
    """Whether a user.conf line sets `scenario.key` for this model, by LoadGen's wildcard rules."""
    if path is None:
        return False
    for _lineno, line in _conf_lines(path):
        match = _CONF_LINE.fullmatch(line)
        if match and match[1] in ("*", model_name) and match[2] in ("*", scenario) and match[3] == key:
            return True
    return False


def apply_settings(settings: lg.TestSettings, values: dict) -> None:
    """Set TestSettings fields, each converted to the field's own type."""
    for key, value in values.items():
        setattr(settings, key, type(getattr(settings, key))(value))


def check_user_conf(path: Path, model_name: str) -> list[str]:
    """Problems with a user.conf that LoadGen would silently ignore or reject; empty when clean."""
    if not path.is_file():
        return [f"user.conf {path} does not exist"]
    problems = []
    all_scenario_keys = frozenset().union(*USER_CONF_SCENARIO_KEYS.values())
    for lineno, line in _conf_lines(path):
        where = f"{path.name}:{lineno}"
        match = _CONF_LINE.fullmatch(line)
        if not match:
            problems.append(f"{where}: expected 'model.scenario.key = value', got {line!r}")
            continue
        model, scenario, key, value = match.groups()
        try:
            float(value)
        except ValueError:
            problems.append(f"{where}: value {value!r} is not a number")
        if model not in ("*", model_name):
            problems.append(f"{where}: model '{model}' is not this run's model name '{model_name}' "
                            "(LoadGen would ignore the line)")
        if scenario != "*" and scenario not in USER_CONF_SCENARIO_KEYS:
            problems.append(f"{where}: unknown scenario '{scenario}' (one of {', '.join(SCENARIOS)} or *)")
            continue
        if key in MLPERF_CONF_ONLY_KEYS:
            problems.append(f"{where}: '{key}' is read from mlperf.conf only (LoadGen ignores it here)")
            continue
        known = key in USER_CONF_GENERIC_KEYS or (
            key in all_scenario_keys if scenario == "*" else key in USER_CONF_SCENARIO_KEYS[scenario])
        if not known:
            pool = USER_CONF_GENERIC_KEYS | (all_scenario_keys if scenario == "*"
                                             else USER_CONF_SCENARIO_KEYS.get(scenario, frozenset()))
            hint = difflib.get_close_matches(key, pool, n=1)
            problems.append(f"{where}: unknown key '{key}' for scenario '{scenario}' (LoadGen would ignore it)"
                            + (f"; did you mean '{hint[0]}'?" if hint else ""))
    return problems


def validate_user_conf(path: Path, model_name: str) -> None:
    problems = check_user_conf(path, model_name)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{problems[0]}{more}; fix: correct the user.conf line(s)")


def validate_overrides(overrides: dict) -> None:
    """Explicit TestSettings overrides must name real fields and carry values of their type (LoadGen
    would not complain about a typo, and int(1.5) would silently truncate)."""
    defaults = lg.TestSettings()
    for key, value in overrides.items():
        if key not in TEST_SETTINGS_FIELDS:
            hint = difflib.get_close_matches(key, TEST_SETTINGS_FIELDS, n=1)
            raise ConfigError(f"unknown LoadGen setting '{key}'"
                              + (f" (did you mean '{hint[0]}'?)" if hint else "")
                              + "; fix: use a mlperf_loadgen.TestSettings field name")
        kind = type(getattr(defaults, key))
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = (isinstance(value, bool) or value in (0, 1)) if kind is bool else (
            number and float(value).is_integer() if kind is int else number if kind is float else True)
        if not ok:
            raise ConfigError(f"LoadGen setting '{key}' takes {'a whole number' if kind is int else kind.__name__}, "
                              f"got {value!r}; fix: give a value of that type")


def make_settings(scenario: str, mode: str, profile: str, model_name: str, user_conf: Path | None,
                  overrides: dict, scratch_dir: Path) -> lg.TestSettings:
    """mlperf.conf (embedded) + user.conf + profile + explicit overrides, in that order of precedence."""
    if scenario not in _SCENARIO:
        raise ConfigError(f"unknown scenario '{scenario}'; fix: use one of {', '.join(SCENARIOS)}")
    if mode not in _MODE:
        raise ConfigError(f"unknown mode '{mode}'; fix: use one of {', '.join(MODES)}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'; fix: use one of {', '.join(PROFILES)}")
    validate_overrides(overrides)
    settings = lg.TestSettings()
    settings.scenario = _SCENARIO[scenario]
    settings.mode = _MODE[mode]
    if user_conf is None:
        scratch_dir.mkdir(parents=True, exist_ok=True)
        user_conf = scratch_dir / "user.conf"
        user_conf.write_text("# empty: only the embedded mlperf.conf applies\n")
    else:
        validate_user_conf(user_conf, model_name)
    rc = settings.FromConfig(str(user_conf), model_name, scenario)
    if rc != 0:
        raise ConfigError(f"LoadGen rejected {user_conf} (FromConfig returned {rc}); fix: check the file")
    # FromConfig resets scenario/mode only when the conf sets 'mode'; re-assert what was asked for
    settings.scenario = _SCENARIO[scenario]
    settings.mode = _MODE[mode]
    applied = dict(QUICK_SETTINGS[scenario]) if profile == "quick" else {}
    applied.update(overrides)
    apply_settings(settings, applied)
    return settings


def settings_snapshot(settings: lg.TestSettings) -> dict:
    """The TestSettings fields as plain values, for the run's resolved config."""
    out = {}
    for key in sorted(TEST_SETTINGS_FIELDS):
        value = getattr(settings, key)
        out[key] = value if isinstance(value, (int, float, bool, str)) else str(value)
    out["scenario"] = str(settings.scenario).split(".")[-1]
    out["mode"] = str(settings.mode).split(".")[-1]
    return out


def guard_callback(fn: Callable, errors: CallbackErrors, where: str) -> Callable:
    """Wrap a callback so no exception reaches LoadGen (which would abort the process)."""

    def guarded(*args):
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - nothing may escape into LoadGen
            errors.record(exc, where)

    return guarded


def complete(ids: Sequence[int], top1: np.ndarray) -> None:
    """Complete samples with one little-endian int32 (the top-1 class) each.

    LoadGen copies the bytes inside QuerySamplesComplete (only for logged samples), so `top1` must
    stay alive until this returns, which holding it as an argument guarantees.
    """
    base, item, n = top1.ctypes.data, top1.itemsize, len(ids)
    # map() over the pybind constructor: ~25 % cheaper than a comprehension (measured, 64 samples)
    lg.QuerySamplesComplete(list(map(lg.QuerySampleResponse, ids, range(base, base + n * item, item),
                                     repeat(item, n))))


def complete_empty(ids: Sequence[int]) -> None:
    """Complete samples without a payload (used when the SUT failed on them)."""
    lg.QuerySamplesComplete([lg.QuerySampleResponse(sid, 0, 0) for sid in ids])


@dataclass
class LoadGenTest:
    """Handles for one test: a fast SUT and a QSL built from plain Python callbacks."""

    issue: Callable[[list[int], list[int]], None]
    flush: Callable[[], None]
    total_count: int
    performance_count: int
    load: Callable[[list[int]], None]
    unload: Callable[[list[int]], None]
    errors: CallbackErrors = field(default_factory=CallbackErrors)

    def run(self, settings: lg.TestSettings, log_dir: Path, enable_trace: bool = False) -> None:
        """Start the one test of this process; returns when LoadGen has written its logs."""
        log_dir.mkdir(parents=True, exist_ok=True)
        sut = lg.ConstructFastSUT(guard_callback(self.issue, self.errors, "issue_query"),
                                  guard_callback(self.flush, self.errors, "flush_queries"))
        qsl = lg.ConstructQSL(self.total_count, self.performance_count,
                              guard_callback(self.load, self.errors, "load_samples"),
                              guard_callback(self.unload, self.errors, "unload_samples"))
        output = lg.LogOutputSettings()
        output.outdir = str(log_dir)
        output.copy_summary_to_stdout = False
        log_settings = lg.LogSettings()
        log_settings.log_output = output
        log_settings.enable_trace = enable_trace
        try:
            # audit.config is looked up in the cwd; name a file that cannot exist unless asked for
            lg.StartTestWithLogSettings(sut, qsl, settings, log_settings,
                                        str(log_dir / "audit.config"))
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroyFastSUT(sut)
