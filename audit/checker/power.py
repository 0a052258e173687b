"""Power checks of one scenario directory: a result measured with SPEC PTDaemon through the MLPerf power
workflow (github.com/mlcommons/power-dev ptd_client_server) and the files it leaves in the tree.

Upstream (github.com/mlcommons/inference tools/submission/submission_checker/, HEAD b66003e1) checks a
result whose `performance/power/` directory exists: the file lists of power/, ranging/ and run_1/
(checks/power_check.py `required_files_check`), the Power WG's 11 checks (checks/power/power_checker.py,
"PWC" below, `check`: lines 796-837), the power metric from run_1/spl.txt (power_check.py
`get_power_metric_check`), and the nameplate power of the system (checks/system_check.py
`nameplate_power_check`). Line numbers below are of that snapshot; the rule names are in
audit.checker.problems.RULES.

A scenario without performance/power/ has no power result, and nothing here applies (power_check.py:59,
`has_power`). Every timestamp is UTC: LoadGen's power_begin/power_end (loadgen/utils.cc
`DateTimeStringForPower`, gmtime), PTDaemon's log and spl.txt (power-dev lib/server.py runs PTDaemon with
TZ=UTC), client/server phases (time.time()).

The Power WG's 11 checks (PWC:800-814) and the rules that carry them: client and server sources
checksum (PWC:186-195) -> power_sources; PTD commands and replies (PWC:198-283) -> power_ptd_messages;
UUID (PWC:286-297) -> power_uuid; session name (PWC:474-483) -> power_session_name; time difference
(PWC:333-471) -> power_phases, and its power comparison (PWC:409-471) -> power_ranging_delta; client
server messages (PWC:486-528) -> power_messages; results checksum (PWC:531-604) ->
power_results_checksum; errors and warnings from PTD logs (PWC:607-729) -> power_ptd_log and
power_ptd_errors; PTD configuration (PWC:732-764) -> power_ptd_config; debug (PWC:767-771) ->
power_debug. Reading client.json/server.json (PWC:137-159) -> power_session_json.

Stricter than upstream, on purpose: a file upstream crashes on is reported under the rule of the check
that reads it; every line of ptd_logs.txt is examined (upstream's check stops at the first warning, PWC
raises CheckerWarning); the testing stage during which an uncertainty warning fails is LoadGen's window
less 0.8 s each side (PWC:655-657 subtracts TIME_DELTA_TOLERANCE = 800, meant as ms, from seconds,
which leaves no window at all for a run shorter than 1600 s); and the "added" rules of RULES.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audit.checker.problems import Problem, problem
from audit.checker.runlogs import RunLogs, load_run
from audit.layout import ScenarioPaths
from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME, LogParseError
from mlperf_ext.power.window import loadgen_time

POWER_DIR = "power"
RANGING_DIR = "ranging"
TESTING_DIR = "run_1"  # PWC:58 TESTING_MODE
SPL_NAME = "spl.txt"
CLIENT_JSON = "client.json"
SERVER_JSON = "server.json"
PTD_LOG = "ptd_logs.txt"

#: constants.py:1397-1403 REQUIRED_POWER_FILES (the whole of performance/power/)
POWER_FILES = (CLIENT_JSON, "client.log", PTD_LOG, SERVER_JSON, "server.log")
#: constants.py:1394 REQUIRED_PERF_FILES + :1396 REQUIRED_PERF_POWER_FILES (run_1/ and ranging/)
RUN_FILES = (SUMMARY_NAME, DETAIL_NAME, SPL_NAME)
#: utils.py:43, optional in every file list
ALWAYS_OPTIONAL = ("mlperf_log_trace.json", "results.json", ".gitkeep")
#: constants.py:1395 OPTIONAL_PERF_FILES
RUN_OPTIONAL = ("mlperf_log_accuracy.json", *ALWAYS_OPTIONAL)

#: PWC:60-72 RESULT_PATHS less the two session files that record the others (PWC:547-553)
HASHED_PATHS = tuple(
    [f"{POWER_DIR}/{n}" for n in POWER_FILES if n not in (CLIENT_JSON, SERVER_JSON)]
    + [f"{d}/{n}" for d in (RANGING_DIR, TESTING_DIR) for n in (DETAIL_NAME, SUMMARY_NAME, SPL_NAME)]
)

#: PWC:145-155, the keys both client.json and server.json must have
SESSION_FIELDS = (
    "version",
    "timezone",
    "modules",
    "sources",
    "messages",
    "uuid",
    "session_name",
    "results",
    "phases",
)
#: PWC:42 SUPPORTED_VERSION (of PTDaemon, read from the Identify reply)
PTD_VERSIONS = ("1.11.1",)
#: PWC:43-55 SUPPORTED_MODEL: meter model -> PTDaemon device type
METER_DEVICE_TYPES = {
    "YokogawaWT210": 8,
    "YokogawaWT500": 35,
    "YokogawaWT500_multichannel": 48,
    "YokogawaWT310": 49,
    "YokogawaWT310E": 49,
    "YokogawaWT330": 52,
    "YokogawaWT330E": 52,
    "YokogawaWT330_multichannel": 77,
    "YokogawaWT210_DC": 508,
    "YokogawaWT310_DC": 549,
    "YokogawaWT330_DC": 586,
}
MULTICHANNEL_DEVICE = 77  # PWC:745, needs two channels
#: PWC:242-248: every command with this prefix gets this reply
PTD_REPLIES = (
    ("SR,A", "Range A changed"),
    ("SR,V", "Range V changed"),
    ("Go,1000,", "Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples"),
    ("Stop", "Stopping untimed measurement"),
)
#: PWC:233-236: from the third "Stop" on, PTDaemon has nothing left to stop
LATE_STOP_REPLY = "Error: no measurement to stop"
#: PWC:271-283: msgs[2] is the RR reply with the initial ranges; the 3rd or 4th SR,A and the 3rd SR,V
#: command restore them (power-dev lib/server.py sends SR,A,Auto twice when ranging)
RANGES_REPLY_INDEX = 2
RESTORE_AMPS_AT = (3, 4)
RESTORE_VOLTS_AT = 3
#: PWC:88 TIME_DELTA_TOLERANCE (ms) as seconds: client and server clocks of the same phase
TIME_TOLERANCE_S = 0.8
#: PWC:376-385: LoadGen's window must fall in the phase, or in it one hour later (a DST workaround)
DST_SHIFT_S = 3600
#: PWC:464-467: testing power may be at most 5 % below ranging power
MAX_POWER_DROP_PERCENT = 5
#: PWC:519-524, the protocol versions of the client's first message and the server's reply
CLIENT_MAGIC = re.compile(r"mlcommons/power client v(\d+)$")
SERVER_MAGIC = re.compile(r"mlcommons/power server v(\d+)$")
#: PWC:622, PTDaemon's log line timestamp
PTD_TIME = re.compile(r"^(\d\d-\d\d-\d\d\d\d \d\d:\d\d:\d\d.\d\d\d)")
#: PWC:705-706
UNCERTAINTY_ACTIVATED = re.compile(r"Uncertainty checking for Yokogawa\S+ is activated")
#: PWC:83-86, a warning that fails a test when it happens under load
UNCERTAINTY_TOO_HIGH = re.compile(r"Uncertainty \d+.\d+%, which is above 1.00% limit for the last sample!")
#: PWC:82 COMMON_ERROR_TESTING: an error accepted at any time (upstream: a warning)
ACCEPTED_ERROR = "USB."
#: PWC:728-729
PTD_WARNING = re.compile(r"(?<=WARNING:).+")
PTD_ERROR = re.compile(r"(?<=ERROR:).+")

#: constants.py:2014-2025 POWER_UNIT_DICT
POWER_UNITS = {
    "SingleStream": "millijoules",
    "MultiStream": "millijoules",
    "Offline": "Watts",
    "Server": "Watts",
}
ENERGY_SCENARIOS = ("SingleStream", "MultiStream")
MULTISTREAM_SAMPLES_PER_QUERY = 8  # power_check.py:226-235

#: constants.py:1906-1922 SYSTEM_DESC_REQUIRED_FIELDS_POWER
SYSTEM_POWER_FIELDS = (
    "power_management",
    "filesystem",
    "boot_firmware_version",
    "management_firmware_version",
    "other_hardware",
    "number_of_type_nics_installed",
    "nics_enabled_firmware",
    "nics_enabled_os",
    "nics_enabled_connected",
    "network_speed_mbit",
    "power_supply_quantity_and_rating_watts",
    "power_supply_details",
    "disk_drives",
    "disk_controllers",
    "system_power_only",
)
#: system_check.py:254: a design power stated in the systems JSON replaces the nameplate YAML
SYSTEM_POWER_CAPACITY = "system_power_capacity"
#: constants.py:1487 REQUIRED_POWER_MEASURE_FILES (regular expressions on file names)
POWER_MEASURE_PATTERNS = ("analyzer_table.*", "power_settings.*")
#: submission_checker_old.py:3436-3459 looks in the measurement directory and the three above it
MEASURE_SEARCH_DEPTH = 4

#: audit/power_sources_checksums.json: the released power-dev sources (PWC:192-195 reads the same list)
SOURCES_FILE = Path(__file__).resolve().parent.parent / "power_sources_checksums.json"

Window = tuple[float, float]


@dataclass
class PowerFindings:
    """What the checker read from a power result: its problems, the power metric (upstream reports it
    in a second summary row, results.py:133-137) in `units`, and the design power from the nameplate."""

    problems: list[Problem] = field(default_factory=list)
    metric: float | None = None
    units: str = ""
    design_power_w: float | None = None


@dataclass
class Sample:
    """One `Time,...` line of spl.txt (power-dev lib/server.py RE_PTD_LOG)."""

    time: float
    watts: float
    mark: str


# ---------------------------------------------------------------- reading the files


def _read_session(path: Path) -> tuple[dict | None, list[Problem]]:
    """client.json or server.json with every field PWC:137-159 requires (None when unusable; a missing
    file is the file list's problem)."""
    if not path.is_file():
        return None, []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [problem(path, "power_session_json", f"is not valid JSON ({exc})")]
    if not isinstance(data, dict):
        return None, [problem(path, "power_session_json", "is not a JSON object")]
    absent = [k for k in SESSION_FIELDS if k not in data]
    if absent:
        return None, [problem(path, "power_session_json", f"lacks the fields {', '.join(absent)}")]
    return data, []


def _spl_samples(path: Path) -> tuple[list[Sample], list[Problem]]:
    """The samples of an spl.txt; a `Time` line that is not PTDaemon's record is a problem (upstream
    crashes on a bad timestamp and on bad watts inside the window: power_check.py:182-194)."""
    if not path.is_file():
        return [], []
    samples, bad = [], []
    for no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.startswith("Time"):
            continue
        fields = line.split(",")
        try:
            mark = fields[11] if len(fields) > 11 and fields[10] == "Mark" else ""
            samples.append(Sample(loadgen_time(fields[1]), float(fields[3]), mark))
        except (IndexError, ValueError, LogParseError):
            bad.append(no)
    if bad:
        return samples, [
            problem(
                path,
                "power_spl_corrupt",
                f"line(s) {', '.join(map(str, bad[:5]))} are not PTDaemon's "
                "'Time,<MM-DD-YYYY HH:MM:SS.mmm>,Watts,<W>,...' samples",
            )
        ]
    return samples, []


def _loadgen_window(logs: RunLogs | None) -> Window | None:
    """LoadGen's power_begin..power_end of a run, in epoch seconds (None when absent or unreadable)."""
    if logs is None:
        return None
    try:
        return loadgen_time(str(logs.values["power_begin"])), loadgen_time(str(logs.values["power_end"]))
    except (KeyError, LogParseError):
        return None


def _ptd_line(line: str) -> tuple[float | None, str]:
    """(time, message after the timestamp) of a PTDaemon log line; time None for an untimed line."""
    match = PTD_TIME.match(line)
    if match is None:
        return None, line.strip()
    try:
        return loadgen_time(match.group(1)), line[match.end() :].strip()
    except LogParseError:
        return None, line.strip()


def average_watts(samples: list[Sample], window: Window) -> float | None:
    """The mean of the positive readings strictly inside LoadGen's window (power_check.py:191-194,
    PWC:428-447), None when there is none."""
    begin, end = window
    inside = [s.watts for s in samples if begin < s.time < end and s.watts > 0]
    return sum(inside) / len(inside) if inside else None


def power_metric(
    scenario: str, run_scenario: str, avg_watts: float, window: Window, query_count: int | None
) -> float | None:
    """The reported power figure (power_check.py:204-238): average W for Offline and Server, energy per
    query in mJ for SingleStream and MultiStream (a MultiStream result inferred from a SingleStream run
    counts 8 samples per query)."""
    if scenario not in ENERGY_SCENARIOS:
        return avg_watts
    if not isinstance(query_count, (int, float)) or isinstance(query_count, bool) or query_count <= 0:
        return None
    energy_mj = avg_watts * (window[1] - window[0]) * 1000
    if scenario == "MultiStream" and run_scenario == "SingleStream":
        energy_mj *= MULTISTREAM_SAMPLES_PER_QUERY
    return energy_mj / query_count


def _known_sources() -> list[dict]:
    return json.loads(SOURCES_FILE.read_text(encoding="utf-8"))["checksums"]


# ---------------------------------------------------------------- the Power WG's checks (PWC)
# Each returns the reasons the check fails, one line each; `_run` turns a malformed field (upstream:
# an unhandled exception, which fails the check) into a reason too.


def _sources_reasons(session: dict, name: str) -> list[str]:
    """PWC:186-195: the recorded source checksums are those of a released power-dev."""
    sources = session["sources"]
    known = _known_sources()
    if sources in known:
        return []
    if not isinstance(sources, dict):
        return [f"{name}'s 'sources' is not a file -> checksum mapping"]
    closest = min(({k for k in set(e) | set(sources) if e.get(k) != sources.get(k)} for e in known), key=len)
    return [
        f"{name} was written by power-dev sources that are not a release in sources_checksums.json "
        f"(differing: {', '.join(sorted(closest)[:5])}); fix: measure with an unmodified power-dev release"
    ]


def _ptd_version_reasons(messages: list[dict]) -> list[str]:
    """PWC:213-226: PTDaemon's Identify reply names a supported version and meter."""
    identify = next((m["reply"] for m in messages if m["cmd"] == "Identify"), "")
    if not identify:
        return ["There is no answer to the 'Identify' command for PTD."]
    reasons = []
    found = re.search(r"(?<=version=)(.+?)-", identify)
    version = found.group(1) if found else ""
    if version not in PTD_VERSIONS:
        reasons.append(
            f"PTD version {version!r} is not supported. Supported versions are {list(PTD_VERSIONS)}"
        )
    meter = identify.split(",")[0]
    if meter not in METER_DEVICE_TYPES:
        reasons.append(
            f"Power meter {meter!r} is not supported. Only {', '.join(METER_DEVICE_TYPES)} are supported."
        )
    return reasons


def _ptd_reply_reasons(messages: list[dict]) -> list[str]:
    """PWC:228-248: range, Go and Stop commands got PTDaemon's normal replies."""
    reasons = []
    for prefix, expected in PTD_REPLIES:
        stops = 0
        for m in messages:
            if not m["cmd"].startswith(prefix):
                continue
            wanted = expected
            if m["cmd"] == "Stop":
                wanted = LATE_STOP_REPLY if stops >= 2 else expected
                stops += 1
            if m["reply"] != wanted:
                reasons.append(
                    f"Wrong reply for {m['cmd']!r} command. Expected {wanted!r}, but got {m['reply']!r}"
                )
    return reasons


def _initial_range(fields: list[str], at: int) -> str:
    """PWC:250-258: the RR reply's range (a disabled autorange and a positive value), else 'Auto'."""
    if fields[at] == "0" and float(fields[at + 1]) > 0:
        return fields[at + 1]
    return "Auto"


def _nth_command(messages: list[dict], prefix: str, n: int) -> str | None:
    found = [m["cmd"] for m in messages if m["cmd"].startswith(prefix)]
    return found[n - 1] if len(found) >= n else None


def _ptd_restore_reasons(messages: list[dict]) -> list[str]:
    """PWC:271-283: after the test the analyzer's initial ranges are set again."""
    if len(messages) <= RANGES_REPLY_INDEX:
        return ["Can not get power meters initial values: fewer than 3 PTD messages"]
    fields = str(messages[RANGES_REPLY_INDEX]["reply"]).split(",")
    try:
        amps, volts = _initial_range(fields, 1), _initial_range(fields, 3)
    except (IndexError, ValueError):
        return [f"Can not get power meters initial values from {messages[RANGES_REPLY_INDEX]['reply']!r}"]
    reasons = []
    amps_cmds = [_nth_command(messages, "SR,A", n) for n in RESTORE_AMPS_AT]
    if None in amps_cmds:
        reasons.append(f"Can not find the {RESTORE_AMPS_AT[-1]} command starting with 'SR,A'.")
    elif f"SR,A,{amps}" not in amps_cmds:
        reasons.append(
            f"Do not set Amps range as initial. Expected 'SR,A,{amps}', "
            f"got {amps_cmds[0]!r} and {amps_cmds[1]!r}."
        )
    volts_cmd = _nth_command(messages, "SR,V", RESTORE_VOLTS_AT)
    if volts_cmd is None:
        reasons.append(f"Can not find the {RESTORE_VOLTS_AT} command starting with 'SR,V'.")
    elif volts_cmd != f"SR,V,{volts}":
        reasons.append(f"Do not set Volts range as initial. Expected 'SR,V,{volts}', got {volts_cmd!r}.")
    return reasons


def _ptd_message_reasons(server: dict) -> list[str]:
    """PWC:198-283 (Check PTD commands and replies)."""
    messages = server["ptd_messages"]
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("cmd"), str) and isinstance(m.get("reply"), str)
        for m in messages
    ):
        return ["'ptd_messages' is not a list of {cmd, reply} strings"]
    return _ptd_version_reasons(messages) + _ptd_reply_reasons(messages) + _ptd_restore_reasons(messages)


def _uuid_reasons(client: dict, server: dict) -> list[str]:
    """PWC:286-297: both files name the same client and server."""
    return [
        f"'{side} uuid' is not equal in client.json and server.json"
        for side in ("client", "server")
        if uuid.UUID(str(client["uuid"][side])) != uuid.UUID(str(server["uuid"][side]))
    ]


def _session_name_reasons(client: dict, server: dict) -> list[str]:
    """PWC:474-483."""
    c, s = client["session_name"], server["session_name"]
    if c == s:
        return []
    return [f"Session name is not equal. Client session name is {c!r}. Server session name is {s!r}"]


def _in_phase(moment: float, phases: list) -> bool:
    start, stop = float(phases[1][0]), float(phases[2][0])
    return start < moment < stop or start < moment - DST_SHIFT_S < stop


def _phase_reasons(client: dict, server: dict, windows: dict[str, Window | None]) -> list[str]:
    """PWC:333-406: client and server agree on each phase within 0.8 s, and LoadGen's window of each
    run lies inside the client's phase (between 'started' and 'stopping')."""
    reasons = []
    for mode, run_dir in (("ranging", RANGING_DIR), ("testing", TESTING_DIR)):
        pc, ps = client["phases"][mode], server["phases"][mode]
        if len(pc) != len(ps):
            reasons.append(f"Phases amount is not equal for {run_dir} mode.")
        else:
            for i, (c, s) in enumerate(zip(pc, ps)):
                gap = abs(float(c[0]) - float(s[0]))
                if gap > TIME_TOLERANCE_S:
                    reasons.append(
                        f"The time difference for {i + 1} phase of {run_dir} mode is more than "
                        f"{TIME_TOLERANCE_S * 1000:.0f}ms. Observed difference is {gap * 1000:.0f}ms"
                    )
        window = windows[mode]
        if window is None:
            reasons.append(f"Can not get power_begin and power_end from {run_dir}/{DETAIL_NAME}")
            continue
        if len(pc) < 3:
            reasons.append(f"client.json has fewer than 3 {mode} phases")
            continue
        for name, moment in zip(("begin", "end"), window):
            if not _in_phase(moment, pc):
                reasons.append(f"Loadgen test {name} time is not within {mode} mode time interval.")
    return reasons


def _message_reasons(client: dict, server: dict) -> list[str]:
    """PWC:486-528: the client's and the server's record of their conversation agree."""
    mc, ms = client["messages"], server["messages"]
    if len(mc) != len(ms):
        return [
            f"Client commands list length ({len(mc)}) should be equal to server commands list length "
            f"({len(ms)})."
        ]
    reasons = []
    for i, (c, s) in enumerate(zip(mc, ms)):
        if c["cmd"] != s["cmd"]:
            reasons.append(
                f"Commands {i} are different. Server command is {s['cmd']!r}. Client command is {c['cmd']!r}."
            )
        elif c["cmd"] != "time" and c["reply"] != s["reply"]:
            reasons.append(f"Replies on command {c['cmd']!r} are different.")
    if not ms:
        return reasons + ["server.json records no message"]
    client_version, server_version = CLIENT_MAGIC.search(ms[0]["cmd"]), SERVER_MAGIC.search(ms[0]["reply"])
    if client_version is None or server_version is None:
        reasons.append(f"Server version is not defined in: {ms[0]['cmd']!r} / {ms[0]['reply']!r}")
    elif client_version.group(1) != server_version.group(1):
        versions = client_version.group(1), server_version.group(1)
        reasons.append("Client.py version ({}) is not equal server.py version ({}).".format(*versions))
    return reasons


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _results_reasons(client: dict, server: dict, perf_dir: Path) -> list[str]:
    """PWC:531-604: the checksums client.json and server.json recorded agree with each other and with the
    files in the tree (a file missing from the tree is the file list's problem)."""
    rc = {k: v for k, v in client["results"].items() if k in HASHED_PATHS}
    rs = {k: v for k, v in server["results"].items() if k in HASHED_PATHS}
    reasons = [
        f"server.json and client.json record different checksums for {k}"
        for k in sorted(rc.keys() & rs.keys())
        if rc[k] != rs[k]
    ]
    recorded = {**rc, **rs}
    for name in HASHED_PATHS:
        path = perf_dir / name
        if name not in recorded:
            reasons.append(f"client.json and server.json record no checksum for {name}")
        elif path.is_file() and _sha1(path) != recorded[name]:
            reasons.append(
                f"{name} is not the file the power session recorded (its sha1 differs); "
                "fix: put back the file the session wrote"
            )
    return reasons


def _ranging_stage(lines: list[tuple[float | None, str]], session: str) -> Window | None:
    """PWC:672-697: from PTDaemon's "Go with mark '<session>_ranging'" to the next "Completed test"."""
    go = f": Go with mark {session + '_ranging'!r}"
    start = None
    for moment, message in lines:
        if moment is None:
            continue
        if start is None and message == go:
            start = moment
        elif start is not None and message == ": Completed test":
            return start, moment
    return None


def _ptd_log_reasons(lines: list[tuple[float | None, str]], session: str) -> list[str]:
    """PWC:699-725: the ranging stage is in the log, and uncertainty checking was on before it began."""
    stage = _ranging_stage(lines, session)
    if stage is None:
        return ["Can not find ranging time in ptd_logs.txt."]
    for moment, message in lines:
        if UNCERTAINTY_ACTIVATED.search(message):
            if moment is None:
                return [
                    "Can not get timestamp for 'Uncertainty checking for Yokogawa... is activated' message."
                ]
            if moment >= stage[0]:
                return ["Uncertainty checking Yokogawa... was activated after ranging mode was started."]
            return []
    return ["Line 'Uncertainty checking for Yokogawa... is activated' is not found."]


def _ptd_error_reasons(lines: list[tuple[float | None, str]], session: str, load: Window | None) -> list[str]:
    """PWC:628-670, 727-729: an ERROR only during ranging (or the accepted 'USB.'), and no 'uncertainty
    above 1 %' warning while LoadGen's testing run is under way (0.8 s from each end)."""
    stage = _ranging_stage(lines, session)
    if stage is None:
        return []  # reported by _ptd_log_reasons
    reasons = []
    for moment, message in lines:
        error, warning = PTD_ERROR.search(message), PTD_WARNING.search(message)
        if (error or warning) and moment is None:
            reasons.append(f"{message!r} has no timestamp")
        elif error and error.group(0).strip() != ACCEPTED_ERROR and not stage[0] < moment < stage[1]:
            reasons.append(f"{message!r} outside the ranging stage")
        elif (
            warning and load is not None and load[0] + TIME_TOLERANCE_S < moment < load[1] - TIME_TOLERANCE_S
        ):
            if UNCERTAINTY_TOO_HIGH.search(warning.group(0).strip()):
                reasons.append(f"{message!r} during the testing run")
    return reasons


def _ptd_config_reasons(server: dict) -> list[str]:
    """PWC:732-764: each analyzer is a supported device; a multichannel WT330 uses two channels."""
    reasons = []
    for analyzer in server["ptd_config"]:
        device = analyzer["device_type"]
        if device not in METER_DEVICE_TYPES.values():
            supported = ", ".join(str(d) for d in sorted(set(METER_DEVICE_TYPES.values())))
            reasons.append(f"Device number {device} is not supported. Supported numbers are {supported}")
        elif device == MULTICHANNEL_DEVICE:
            command = list(analyzer["command"])
            channels = command[command.index("-c") + 1] if "-c" in command[:-1] else ""
            if len(channels.split(",")) != 2 or not analyzer["channel"] or len(analyzer["channel"]) != 2:
                reasons.append(
                    "Expected multichannel mode for YokogawaWT330_multichannel, but got 1-channel."
                )
    return reasons


def _debug_reasons(server: dict) -> list[str]:
    """PWC:767-771."""
    return [] if server.get("debug", False) is False else ["Server was running in debug mode"]


def _ranging_delta_reasons(ranging_w: float | None, testing_w: float | None) -> list[str]:
    """PWC:449-471: average testing power not more than 5 % below ranging power (rounded as upstream)."""
    if ranging_w is None or testing_w is None:
        return []  # power_no_samples
    delta = round((round(testing_w, 5) / round(ranging_w, 5) - 1) * 100, 2)
    if delta > -MAX_POWER_DROP_PERCENT:
        return []
    return [
        f"Average power during the testing mode run is lower than that during the ranging run by more than "
        f"{MAX_POWER_DROP_PERCENT}%: delta {delta}% (ranging {ranging_w:.5f} W, testing {testing_w:.5f} W)"
    ]


def _run(out: list[Problem], path: Path, rule: str, check: Callable[..., list[str]], *args: Any) -> None:
    """Add a check's reasons as problems of `path`; a malformed field fails the check (as upstream)."""
    try:
        reasons = check(*args)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        reasons = [f"is not what the MLPerf power workflow writes ({type(exc).__name__}: {exc})"]
    out.extend(problem(path, rule, reason) for reason in reasons)


# ---------------------------------------------------------------- the scenario's power files


def _file_list_problems(
    directory: Path, required: tuple[str, ...], optional: tuple[str, ...]
) -> list[Problem]:
    """power_check.py:75-117: exactly the required files, less the optional ones."""
    if not directory.is_dir():
        return [problem(directory, "power_files", f"{directory} is not a directory; a power result needs it")]
    present = {p.name for p in directory.iterdir() if p.is_file()}
    diff = (present ^ set(required)) - set(optional)
    return (
        [problem(directory, "power_files", f"{directory} has file list mismatch ({sorted(diff)})")]
        if diff
        else []
    )


def _spl_mark_problems(path: Path, samples: list[Sample], mark: str) -> list[Problem]:
    """Every sample carries the session's mark for the stage (power-dev lib/server.py Session.stop): an
    spl.txt of another session or stage does not describe this run."""
    other = sorted({s.mark for s in samples if s.mark != mark})
    if not other:
        return []
    return [problem(path, "power_spl_mark", f"has samples marked {other[:3]}, not '{mark}' (this session's)")]


def _ranging_run_problems(ranging: Path, testing: RunLogs | None) -> tuple[RunLogs | None, list[Problem]]:
    """The ranging run's logs: LoadGen's performance run of the scenario the testing run ran."""
    if not (ranging / DETAIL_NAME).is_file():
        return None, []  # the file list's problem
    logs, out = load_run(ranging)
    if logs is None or testing is None:
        return logs, out
    if logs.result.mode != "PerformanceOnly" or logs.result.scenario != testing.result.scenario:
        out.append(
            problem(
                ranging / DETAIL_NAME,
                "power_ranging_run",
                f"is a {logs.result.mode} {logs.result.scenario} run, not the {testing.result.scenario} "
                "performance run it measures power ranges for",
            )
        )
    return logs, out


def _no_samples_problem(path: Path, window: Window) -> Problem:
    """power_check.py:196-203 for run_1; for ranging/, PWC:444-447 averages -1 W, which fails the
    power comparison of PWC:462-467."""
    return problem(
        path,
        "power_no_samples",
        f"has no power samples falling in power range: {window[0]:.3f} - {window[1]:.3f} (LoadGen's "
        "power_begin..power_end, epoch s)",
    )


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


def _nameplate(paths: ScenarioPaths, system: dict) -> tuple[float | None, list[Problem]]:
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


def _system_field_problems(paths: ScenarioPaths, system: dict) -> list[Problem]:
    absent = [k for k in SYSTEM_POWER_FIELDS if k not in system]
    if not absent:
        return []
    return [
        problem(
            paths.system_json, "power_system_fields", f"a power result's system lacks {', '.join(absent)}"
        )
    ]


def _measure_file_problems(paths: ScenarioPaths) -> list[Problem]:
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


# ---------------------------------------------------------------- the entry point


def power_findings(
    paths: ScenarioPaths, scenario: str, system: dict | None, testing: RunLogs | None
) -> PowerFindings:
    """Every power check of one scenario directory (nothing when it has no performance/power/).
    `testing` is the run_1 logs the tree checker loaded (None when unusable, reported there)."""
    perf = paths.performance_run.parent
    found = PowerFindings(units=POWER_UNITS.get(scenario, ""))
    if not (perf / POWER_DIR).exists():
        return found
    out = found.problems
    out += _file_list_problems(perf / POWER_DIR, POWER_FILES, ALWAYS_OPTIONAL)
    out += _file_list_problems(perf / RANGING_DIR, RUN_FILES, RUN_OPTIONAL)
    out += _file_list_problems(paths.performance_run, RUN_FILES, RUN_OPTIONAL)
    if system:
        found.design_power_w, nameplate = _nameplate(paths, system)
        out += nameplate + _system_field_problems(paths, system)
    out += _measure_file_problems(paths)
    ranging, ranging_problems = _ranging_run_problems(perf / RANGING_DIR, testing)
    out += ranging_problems
    windows = {"ranging": _loadgen_window(ranging), "testing": _loadgen_window(testing)}
    spl, watts = _spl_findings(out, perf, windows)
    if watts.get("testing") is not None and testing is not None:
        query_count = testing.values.get("result_query_count")
        found.metric = power_metric(
            scenario, testing.result.scenario, watts["testing"], windows["testing"], query_count
        )
    client, client_problems = _read_session(perf / POWER_DIR / CLIENT_JSON)
    server, server_problems = _read_session(perf / POWER_DIR / SERVER_JSON)
    out += client_problems + server_problems
    _power_wg_checks(out, perf, client, server, windows, spl)
    return found


def _spl_findings(
    out: list[Problem], perf: Path, windows: dict[str, Window | None]
) -> tuple[dict[str, list[Sample]], dict[str, float | None]]:
    """Each stage's spl.txt samples and average W over LoadGen's window, and the power comparison of
    the two stages (PWC:409-471; it needs no session file)."""
    spl: dict[str, list[Sample]] = {}
    watts: dict[str, float | None] = {}
    for stage, run_dir in (("ranging", RANGING_DIR), ("testing", TESTING_DIR)):
        path, window = perf / run_dir / SPL_NAME, windows[stage]
        spl[stage], spl_problems = _spl_samples(path)
        out += spl_problems
        if window is not None and path.is_file():
            watts[stage] = average_watts(spl[stage], window)
            if watts[stage] is None:
                out.append(_no_samples_problem(path, window))
    out += [
        problem(perf / TESTING_DIR / SPL_NAME, "power_ranging_delta", reason)
        for reason in _ranging_delta_reasons(watts.get("ranging"), watts.get("testing"))
    ]
    return spl, watts


def _power_wg_checks(
    out: list[Problem],
    perf: Path,
    client: dict | None,
    server: dict | None,
    windows: dict[str, Window | None],
    spl: dict[str, list[Sample]],
) -> None:
    """The checks of PWC:800-814 that the session files allow (each needs client.json, server.json or
    both), plus the spl.txt marks; the power comparison of phases_check (PWC:409-471) is in
    _spl_findings, as it needs neither."""
    client_path, server_path = perf / POWER_DIR / CLIENT_JSON, perf / POWER_DIR / SERVER_JSON
    if client is not None:
        _run(out, client_path, "power_sources", _sources_reasons, client, CLIENT_JSON)
    if server is not None:
        _run(out, server_path, "power_sources", _sources_reasons, server, SERVER_JSON)
        _run(out, server_path, "power_ptd_messages", _ptd_message_reasons, server)
        _run(out, server_path, "power_ptd_config", _ptd_config_reasons, server)
        _run(out, server_path, "power_debug", _debug_reasons, server)
        _ptd_log_problems(out, perf, server, windows["testing"])
        if isinstance(server["session_name"], str):
            for mode, run_dir in (("ranging", RANGING_DIR), ("testing", TESTING_DIR)):
                path = perf / run_dir / SPL_NAME
                out += _spl_mark_problems(path, spl[mode], f"{server['session_name']}_{mode}")
    if client is None or server is None:
        return
    _run(out, server_path, "power_uuid", _uuid_reasons, client, server)
    _run(out, client_path, "power_session_name", _session_name_reasons, client, server)
    _run(out, client_path, "power_phases", _phase_reasons, client, server, windows)
    _run(out, client_path, "power_messages", _message_reasons, client, server)
    _run(out, server_path, "power_results_checksum", _results_reasons, client, server, perf)


def _ptd_log_problems(out: list[Problem], perf: Path, server: dict, load: Window | None) -> None:
    """PWC:607-729 on power/ptd_logs.txt (the ranging mark comes from server.json's session name)."""
    path = perf / POWER_DIR / PTD_LOG
    if not path.is_file():
        return
    lines = [_ptd_line(line) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    session = str(server["session_name"])
    _run(out, path, "power_ptd_log", _ptd_log_reasons, lines, session)
    _run(out, path, "power_ptd_errors", _ptd_error_reasons, lines, session, load)


__all__ = ["PowerFindings", "average_watts", "power_findings", "power_metric"]
