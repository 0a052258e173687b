"""The one module that imports `mlperf_loadgen`: settings, profiles, callbacks and one test per process.

LoadGen facts this module is built around (measured with mlcommons-loadgen 6.0.17; docs/architecture.md):
- the embedded mlperf.conf loads only on the *first* `FromConfig` of a process, so a process runs
  exactly one test and calls `FromConfig` exactly once (with an empty user.conf when the user gives none);
- LoadGen silently ignores unknown user.conf keys and lines for another model name: `check_user_conf`
  reports them instead;
- a missing log directory aborts the process: `run_test` creates it;
- an exception escaping a callback aborts the process: `guard_callback` catches and records it.
"""

from __future__ import annotations

import difflib
import math
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

#: Keys LoadGen 6.0.17 reads from a user.conf, unqualified (source: loadgen/test_settings_internal.cc
#: in github.com/mlcommons/inference, TestSettings::FromConfig).
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


#: user.conf keys LoadGen reads as unsigned integers (lookupkv with a uint64 target and strtoull, source:
#: loadgen/test_settings_internal.cc): "1e3" reads as 1, "-5" wraps around, "010" is octal.
USER_CONF_INTEGER_KEYS = frozenset({
    "mode", "use_token_latencies", "ttft_latency", "tpot_latency", "infer_token_latencies",
    "token_latency_scaling_factor", "performance_issue_unique", "performance_issue_same",
    "performance_issue_same_index", "sample_concatenate_permutation", "coalesce_queries", "max_async_queries",
    "min_duration", "max_duration", "min_query_count", "max_query_count", "performance_sample_count_override",
    "accuracy_sample_count_override", "print_timestamps", "accuracy_log_rng_seed", "accuracy_log_sampling_target",
})
#: (scenario, key) pairs LoadGen reads as integers although the key is a float for other scenarios
USER_CONF_INTEGER_SCENARIO_KEYS = {("Server", "target_latency"), ("MultiStream", "samples_per_query")}
#: keys the harness sets itself; a user.conf line would be overridden, so it is refused instead
USER_CONF_HARNESS_KEYS = {"mode": "the harness sets LoadGen's mode from --mode"}
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def _reads_as_integer(scenario: str, key: str) -> str | None:
    """The scenario that reads `scenario.key` as an integer ('*' for all of them), or None."""
    if key in USER_CONF_INTEGER_KEYS:
        return "*"
    for named, k in USER_CONF_INTEGER_SCENARIO_KEYS:
        if k == key and scenario in ("*", named):
            return named
    return None


def check_user_conf(path: Path, model_name: str, audit: bool = False) -> list[str]:
    """Problems with a user.conf that LoadGen would silently ignore, misread or reject; empty when clean.
    `audit`: the file is a compliance test's audit.config, which may set the mode (LoadGen applies it
    after the harness's settings, with model '*')."""
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
            continue
        if model not in ("*", model_name):
            problems.append(f"{where}: model '{model}' is not this run's model name '{model_name}' "
                            "(LoadGen would ignore the line)")
        if scenario != "*" and scenario not in USER_CONF_SCENARIO_KEYS:
            problems.append(f"{where}: unknown scenario '{scenario}' (one of {', '.join(SCENARIOS)} or *)")
            continue
        if key in MLPERF_CONF_ONLY_KEYS:
            problems.append(f"{where}: '{key}' is read from mlperf.conf only (LoadGen ignores it here)")
            continue
        if key in USER_CONF_HARNESS_KEYS and not audit:
            problems.append(f"{where}: '{key}' cannot be set in a user.conf: {USER_CONF_HARNESS_KEYS[key]}")
            continue
        known = key in USER_CONF_GENERIC_KEYS or (
            key in all_scenario_keys if scenario == "*" else key in USER_CONF_SCENARIO_KEYS[scenario])
        if not known:
            pool = USER_CONF_GENERIC_KEYS | (all_scenario_keys if scenario == "*"
                                             else USER_CONF_SCENARIO_KEYS.get(scenario, frozenset()))
            hint = difflib.get_close_matches(key, pool, n=1)
            problems.append(f"{where}: unknown key '{key}' for scenario '{scenario}' (LoadGen would ignore it)"
                            + (f"; did you mean '{hint[0]}'?" if hint else ""))
            continue
        reader = _reads_as_integer(scenario, key)
        if reader and not _DECIMAL.fullmatch(value):
            who = "LoadGen reads" if reader == "*" else f"LoadGen reads {reader}."
            problems.append(f"{where}: {who}{key} as a non-negative whole number with strtoull, so {value!r} "
                            f"would not be read as written; write the value in decimal digits")
    return problems


def user_conf_notes(path: Path | None, model_name: str, scenario: str) -> list[str]:
    """user.conf lines for another scenario: LoadGen does not read them in this run (worth saying, not wrong)."""
    if path is None or not path.is_file():
        return []
    notes = []
    for lineno, line in _conf_lines(path):
        match = _CONF_LINE.fullmatch(line)
        if match and match[1] in ("*", model_name) and match[2] not in ("*", scenario):
            notes.append(f"{path.name}:{lineno} sets {match[2]}.{match[3]}, which this {scenario} run does not read")
    return notes


def validate_user_conf(path: Path, model_name: str, audit: bool = False) -> None:
    problems = check_user_conf(path, model_name, audit)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{problems[0]}{more}; fix: correct the user.conf line(s)")


#: TestSettings fields whose C++ type is a signed int (all other integer fields are uint64_t)
_SIGNED_INT_FIELDS = frozenset({"server_find_peak_qps_decimals_of_precision"})
_UINT64_MAX = 2 ** 64 - 1
#: sanity limits on hints that size what LoadGen pre-generates (lifted with --force-limits)
QPS_LIMITS = {"offline_expected_qps": 5_000_000.0, "server_target_qps": 1_000_000.0}
_POSITIVE = {"single_stream_expected_latency_ns", "multi_stream_expected_latency_ns", "server_target_qps",
             "offline_expected_qps", "server_target_latency_ns", "multi_stream_samples_per_query",
             "server_find_peak_qps_boundary_step_size"}
_FRACTIONS = {"single_stream_target_latency_percentile", "multi_stream_target_latency_percentile",
              "server_target_latency_percentile", "accuracy_log_probability"}
#: fields that cannot be used from Python (server_num_issue_query_threads needs RegisterIssueQueryThread,
#: which the binding does not expose)
_MUST_BE_ZERO = {"server_num_issue_query_threads": "the Python binding cannot register issue threads"}


def _check_value(key: str, kind: type, value, force_limits: bool) -> str | None:
    """Why `value` cannot go into the TestSettings field `key`, or None."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool:
        return None if isinstance(value, bool) or value in (0, 1) else "takes true/false (or 0/1)"
    if not number:
        return f"takes a number, got {value!r}"
    if not math.isfinite(value):
        return f"takes a finite number, got {value!r}"
    if kind is int:
        if not float(value).is_integer():
            return f"takes a whole number, got {value!r}"
        low, high = (-(2 ** 31), 2 ** 31 - 1) if key in _SIGNED_INT_FIELDS else (0, _UINT64_MAX)
        if not low <= int(value) <= high:
            return f"takes a whole number from {low} to {high} (a C++ {'int' if low else 'uint64_t'}), got {value!r}"
    if key in _MUST_BE_ZERO and value != 0:
        return f"must stay 0: {_MUST_BE_ZERO[key]}"
    if key in _POSITIVE and value <= 0:
        return f"must be above 0, got {value!r}"
    if key in _FRACTIONS and not 0 <= value <= 1:
        return f"is a fraction from 0 to 1 (0.99 for the 99th percentile), got {value!r}"
    limit = QPS_LIMITS.get(key)
    if limit is not None and value > limit and not force_limits:
        return (f"is limited to {limit:,.0f} (LoadGen pre-generates the run's queries at this rate, so more would "
                f"exhaust memory long before a Python SUT could complete them), got {value!r}; fix: give a real "
                f"estimate, or pass --force-limits")
    return None


def validate_overrides(overrides: dict, force_limits: bool = False) -> None:
    """Explicit TestSettings overrides must name real fields and carry values of their type and range
    (LoadGen would not complain about a typo, and int(1.5) would silently truncate)."""
    defaults = lg.TestSettings()
    for key, value in overrides.items():
        if key not in TEST_SETTINGS_FIELDS:
            hint = difflib.get_close_matches(key, TEST_SETTINGS_FIELDS, n=1)
            raise ConfigError(f"unknown LoadGen setting '{key}'"
                              + (f" (did you mean '{hint[0]}'?)" if hint else "")
                              + "; fix: use a mlperf_loadgen.TestSettings field name")
        problem = _check_value(key, type(getattr(defaults, key)), value, force_limits)
        if problem:
            fix = "" if "fix:" in problem else "; fix: give a value of that type and range"
            raise ConfigError(f"LoadGen setting '{key}' {problem}{fix}")


def make_settings(scenario: str, mode: str, profile: str, model_name: str, user_conf: Path | None,
                  overrides: dict, scratch_dir: Path, force_limits: bool = False) -> lg.TestSettings:
    """mlperf.conf (embedded) + user.conf + profile + explicit overrides, in that order of precedence."""
    if scenario not in _SCENARIO:
        raise ConfigError(f"unknown scenario '{scenario}'; fix: use one of {', '.join(SCENARIOS)}")
    if mode not in _MODE:
        raise ConfigError(f"unknown mode '{mode}'; fix: use one of {', '.join(MODES)}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'; fix: use one of {', '.join(PROFILES)}")
    validate_overrides(overrides, force_limits)
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


_SET_RESPONSE_ID = lg.QuerySampleResponse.id.fset


class ResponseSlots:
    """Reusable responses of one stream: a payload buffer and one QuerySampleResponse per slot, each
    pointing at its slot's 4 bytes, so completing a batch sets only each response's id.

    Constructing a pybind QuerySampleResponse costs ~0.7 us, setting its id ~0.25 us (measured, 64
    samples): at the batch sizes a small model runs, building responses was the harness's largest cost
    per sample. LoadGen copies a logged sample's bytes inside QuerySamplesComplete, so the buffer may be
    reused once that returns; one stream completes one batch at a time, so each stream owns its slots.
    """

    def __init__(self, capacity: int = 1):
        self._grow(max(capacity, 1))

    def _grow(self, capacity: int) -> None:
        self.payload = np.zeros(capacity, dtype="<i4")
        base, item = self.payload.ctypes.data, self.payload.itemsize
        self._responses = [lg.QuerySampleResponse(0, base + k * item, item) for k in range(capacity)]
        self._first = self._responses[:1]  # the array a batch of one completes with

    def complete(self, ids: Sequence[int], top1: np.ndarray) -> None:
        """Complete `ids` with the int32 values in `top1` (one per id)."""
        n = len(ids)
        if n == 1:  # a Server batch of one: the cheapest form of each step (~0.4 us less)
            self.complete_one(ids[0], top1[0])
            return
        if n > len(self._responses):
            self._grow(max(n, 2 * len(self._responses)))
        self.payload[:n] = top1
        responses = self._responses if n == len(self._responses) else self._responses[:n]
        for _ in map(_SET_RESPONSE_ID, responses, ids):
            pass
        lg.QuerySamplesComplete(responses)

    def complete_one(self, sample_id: int, value) -> None:
        """Complete one sample with the int32 `value`."""
        self.payload[0] = value
        _SET_RESPONSE_ID(self._first[0], sample_id)
        lg.QuerySamplesComplete(self._first)


def complete_payloads(ids: Sequence[int], payloads: Sequence[np.ndarray], tokens: bool = False) -> None:
    """Complete samples with payloads of any size, one contiguous array each (a task's responses); with `tokens`,
    each array's elements are counted as its generated tokens (LoadGen's tokens per second and TPOT). LoadGen
    copies the bytes inside QuerySamplesComplete, so the arrays need to live only until this returns."""
    if tokens:
        responses = [lg.QuerySampleResponse(sid, p.ctypes.data, p.nbytes, p.size) for sid, p in zip(ids, payloads)]
    else:
        responses = [lg.QuerySampleResponse(sid, p.ctypes.data, p.nbytes) for sid, p in zip(ids, payloads)]
    lg.QuerySamplesComplete(responses)


def first_tokens(ids: Sequence[int], tokens: np.ndarray) -> None:
    """Report each sample's first generated token (one int32 each) to LoadGen, which times TTFT from it."""
    base, item = tokens.ctypes.data, tokens.itemsize
    lg.FirstTokenComplete([lg.QuerySampleResponse(sid, base + k * item, item) for k, sid in enumerate(ids)])


def complete_empty(ids: Sequence[int]) -> None:
    """Complete samples without a payload (used when the SUT failed on them)."""
    lg.QuerySamplesComplete([lg.QuerySampleResponse(sid, 0, 0) for sid in ids])


@dataclass
class LoadGenTest:
    """Handles for one test: a QSL built from plain Python callbacks, and a fast SUT built from the issue
    and flush callbacks, or `sut_handle`: a SUT implemented natively (scenarios/native.py), which LoadGen
    then calls without Python in between."""

    issue: Callable[[list[int], list[int]], None]
    flush: Callable[[], None]
    total_count: int
    performance_count: int
    load: Callable[[list[int]], None]
    unload: Callable[[list[int]], None]
    errors: CallbackErrors = field(default_factory=CallbackErrors)
    sut_handle: int | None = None

    @classmethod
    def of(cls, dispatcher, library, errors: CallbackErrors) -> LoadGenTest:
        """The test the harness runs: a scenario's dispatcher as the SUT (its native handle, or its issue
        and flush callbacks) and a SampleLibrary as the QSL. The child and the benchmarks build it here."""
        return cls(issue=dispatcher.issue, flush=dispatcher.flush, total_count=library.total_count,
                   performance_count=library.performance_count, load=library.load, unload=library.unload,
                   errors=errors, sut_handle=dispatcher.sut_handle)

    def run(self, settings: lg.TestSettings, log_dir: Path, enable_trace: bool = False,
            audit_config: Path | None = None) -> None:
        """Start the one test of this process; returns when LoadGen has written its logs.

        LoadGen applies an `audit.config` it finds (the compliance tests use it); unless one is given,
        it is pointed at a file that cannot exist, so a stray audit.config in the cwd changes nothing."""
        log_dir.mkdir(parents=True, exist_ok=True)
        sut = self.sut_handle
        if sut is None:
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
            audit = str(audit_config) if audit_config is not None else str(log_dir / "no-audit.config")
            lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, audit)
        finally:
            lg.DestroyQSL(qsl)
            if self.sut_handle is None:
                lg.DestroyFastSUT(sut)
