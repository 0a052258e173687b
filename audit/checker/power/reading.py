"""Reading the power workflow's files: client/server JSON, spl.txt samples, ptd_logs.txt lines, LoadGen's
power window, and the power metric over it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from audit.checker.power.facts import (
    ENERGY_SCENARIOS,
    MULTISTREAM_SAMPLES_PER_QUERY,
    PTD_TIME,
    SESSION_FIELDS,
    SOURCES_FILE,
    Window,
)
from audit.checker.problems import Problem, problem
from audit.checker.runlogs import RunLogs
from mlperf_ext.logs import LogParseError
from mlperf_ext.power.window import loadgen_time


@dataclass
class Sample:
    """One `Time,...` line of spl.txt (power-dev lib/server.py RE_PTD_LOG)."""

    time: float
    watts: float
    mark: str


# ---------------------------------------------------------------- reading the files


def read_session(path: Path) -> tuple[dict | None, list[Problem]]:
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


def spl_samples(path: Path) -> tuple[list[Sample], list[Problem]]:
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


def loadgen_window(logs: RunLogs | None) -> Window | None:
    """LoadGen's power_begin..power_end of a run, in epoch seconds (None when absent or unreadable)."""
    if logs is None:
        return None
    try:
        return loadgen_time(str(logs.values["power_begin"])), loadgen_time(str(logs.values["power_end"]))
    except (KeyError, LogParseError):
        return None


def ptd_line(line: str) -> tuple[float | None, str]:
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


def known_sources() -> list[dict]:
    return json.loads(SOURCES_FILE.read_text(encoding="utf-8"))["checksums"]
