"""The Power WG's 11 checks (power_checker.py, "PWC"), each a function from the session files to its
reasons, and `run`, which turns reasons into problems of one rule."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.checker.power.facts import (
    ACCEPTED_ERROR,
    CLIENT_MAGIC,
    DST_SHIFT_S,
    HASHED_PATHS,
    LATE_STOP_REPLY,
    MAX_POWER_DROP_PERCENT,
    METER_DEVICE_TYPES,
    MULTICHANNEL_DEVICE,
    PTD_ERROR,
    PTD_REPLIES,
    PTD_VERSIONS,
    PTD_WARNING,
    RANGES_REPLY_INDEX,
    RANGING_DIR,
    RESTORE_AMPS_AT,
    RESTORE_VOLTS_AT,
    SERVER_MAGIC,
    TESTING_DIR,
    TIME_TOLERANCE_S,
    UNCERTAINTY_ACTIVATED,
    UNCERTAINTY_TOO_HIGH,
    Window,
)
from audit.checker.power.reading import known_sources
from audit.checker.problems import Problem, problem
from mlperf_ext.logs import DETAIL_NAME

# ---------------------------------------------------------------- the Power WG's checks (PWC)
# Each returns the reasons the check fails, one line each; `run` turns a malformed field (upstream:
# an unhandled exception, which fails the check) into a reason too.


def sources_reasons(session: dict, name: str) -> list[str]:
    """PWC:186-195: the recorded source checksums are those of a released power-dev."""
    sources = session["sources"]
    known = known_sources()
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


def ptd_message_reasons(server: dict) -> list[str]:
    """PWC:198-283 (Check PTD commands and replies)."""
    messages = server["ptd_messages"]
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("cmd"), str) and isinstance(m.get("reply"), str)
        for m in messages
    ):
        return ["'ptd_messages' is not a list of {cmd, reply} strings"]
    return _ptd_version_reasons(messages) + _ptd_reply_reasons(messages) + _ptd_restore_reasons(messages)


def uuid_reasons(client: dict, server: dict) -> list[str]:
    """PWC:286-297: both files name the same client and server."""
    return [
        f"'{side} uuid' is not equal in client.json and server.json"
        for side in ("client", "server")
        if uuid.UUID(str(client["uuid"][side])) != uuid.UUID(str(server["uuid"][side]))
    ]


def session_name_reasons(client: dict, server: dict) -> list[str]:
    """PWC:474-483."""
    c, s = client["session_name"], server["session_name"]
    if c == s:
        return []
    return [f"Session name is not equal. Client session name is {c!r}. Server session name is {s!r}"]


def _in_phase(moment: float, phases: list) -> bool:
    start, stop = float(phases[1][0]), float(phases[2][0])
    return start < moment < stop or start < moment - DST_SHIFT_S < stop


def phase_reasons(client: dict, server: dict, windows: dict[str, Window | None]) -> list[str]:
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


def message_reasons(client: dict, server: dict) -> list[str]:
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


def results_reasons(client: dict, server: dict, perf_dir: Path) -> list[str]:
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


def ptd_log_reasons(lines: list[tuple[float | None, str]], session: str) -> list[str]:
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


def ptd_error_reasons(lines: list[tuple[float | None, str]], session: str, load: Window | None) -> list[str]:
    """PWC:628-670, 727-729: an ERROR only during ranging (or the accepted 'USB.'), and no 'uncertainty
    above 1 %' warning while LoadGen's testing run is under way (0.8 s from each end)."""
    stage = _ranging_stage(lines, session)
    if stage is None:
        return []  # reported by ptd_log_reasons
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


def ptd_config_reasons(server: dict) -> list[str]:
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


def debug_reasons(server: dict) -> list[str]:
    """PWC:767-771."""
    return [] if server.get("debug", False) is False else ["Server was running in debug mode"]


def ranging_delta_reasons(ranging_w: float | None, testing_w: float | None) -> list[str]:
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


def add_reasons(out: list[Problem], path: Path, rule: str, check: Callable[..., list[str]], *args: Any) -> None:
    """Add a check's reasons as problems of `path`; a malformed field fails the check (as upstream)."""
    try:
        reasons = check(*args)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        reasons = [f"is not what the MLPerf power workflow writes ({type(exc).__name__}: {exc})"]
    out.extend(problem(path, rule, reason) for reason in reasons)
