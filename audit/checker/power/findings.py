"""One scenario's power checks, from its files to a PowerFindings (the entry point of the package)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from audit.checker.power.facts import (
    ALWAYS_OPTIONAL,
    CLIENT_JSON,
    POWER_DIR,
    POWER_FILES,
    POWER_UNITS,
    PTD_LOG,
    RANGING_DIR,
    RUN_FILES,
    RUN_OPTIONAL,
    SERVER_JSON,
    SPL_NAME,
    TESTING_DIR,
    Window,
)
from audit.checker.power.reading import (
    Sample,
    average_watts,
    loadgen_window,
    power_metric,
    ptd_line,
    read_session,
    spl_samples,
)
from audit.checker.power.system import measure_file_problems, nameplate, system_field_problems
from audit.checker.power.wg_checks import (
    add_reasons,
    debug_reasons,
    message_reasons,
    phase_reasons,
    ptd_config_reasons,
    ptd_error_reasons,
    ptd_log_reasons,
    ptd_message_reasons,
    ranging_delta_reasons,
    results_reasons,
    session_name_reasons,
    sources_reasons,
    uuid_reasons,
)
from audit.checker.problems import Problem, problem
from audit.checker.runlogs import RunLogs, load_run
from audit.layout import ScenarioPaths
from mlperf_ext.logs import DETAIL_NAME


@dataclass
class PowerFindings:
    """What the checker read from a power result: its problems, the power metric (upstream reports it
    in a second summary row, results.py:133-137) in `units`, and the design power from the nameplate."""

    problems: list[Problem] = field(default_factory=list)
    metric: float | None = None
    units: str = ""
    design_power_w: float | None = None


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
        found.design_power_w, nameplate_problems = nameplate(paths, system)
        out += nameplate_problems + system_field_problems(paths, system)
    out += measure_file_problems(paths)
    ranging, ranging_problems = _ranging_run_problems(perf / RANGING_DIR, testing)
    out += ranging_problems
    windows = {"ranging": loadgen_window(ranging), "testing": loadgen_window(testing)}
    spl, watts = _spl_findings(out, perf, windows)
    if watts.get("testing") is not None and testing is not None:
        query_count = testing.values.get("result_query_count")
        found.metric = power_metric(
            scenario, testing.result.scenario, watts["testing"], windows["testing"], query_count
        )
    client, client_problems = read_session(perf / POWER_DIR / CLIENT_JSON)
    server, server_problems = read_session(perf / POWER_DIR / SERVER_JSON)
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
        spl[stage], spl_problems = spl_samples(path)
        out += spl_problems
        if window is not None and path.is_file():
            watts[stage] = average_watts(spl[stage], window)
            if watts[stage] is None:
                out.append(_no_samples_problem(path, window))
    out += [
        problem(perf / TESTING_DIR / SPL_NAME, "power_ranging_delta", reason)
        for reason in ranging_delta_reasons(watts.get("ranging"), watts.get("testing"))
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
        add_reasons(out, client_path, "power_sources", sources_reasons, client, CLIENT_JSON)
    if server is not None:
        add_reasons(out, server_path, "power_sources", sources_reasons, server, SERVER_JSON)
        add_reasons(out, server_path, "power_ptd_messages", ptd_message_reasons, server)
        add_reasons(out, server_path, "power_ptd_config", ptd_config_reasons, server)
        add_reasons(out, server_path, "power_debug", debug_reasons, server)
        _ptd_log_problems(out, perf, server, windows["testing"])
        if isinstance(server["session_name"], str):
            for mode, run_dir in (("ranging", RANGING_DIR), ("testing", TESTING_DIR)):
                path = perf / run_dir / SPL_NAME
                out += _spl_mark_problems(path, spl[mode], f"{server['session_name']}_{mode}")
    if client is None or server is None:
        return
    add_reasons(out, server_path, "power_uuid", uuid_reasons, client, server)
    add_reasons(out, client_path, "power_session_name", session_name_reasons, client, server)
    add_reasons(out, client_path, "power_phases", phase_reasons, client, server, windows)
    add_reasons(out, client_path, "power_messages", message_reasons, client, server)
    add_reasons(out, server_path, "power_results_checksum", results_reasons, client, server, perf)


def _ptd_log_problems(out: list[Problem], perf: Path, server: dict, load: Window | None) -> None:
    """PWC:607-729 on power/ptd_logs.txt (the ranging mark comes from server.json's session name)."""
    path = perf / POWER_DIR / PTD_LOG
    if not path.is_file():
        return
    lines = [ptd_line(line) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    session = str(server["session_name"])
    add_reasons(out, path, "power_ptd_log", ptd_log_reasons, lines, session)
    add_reasons(out, path, "power_ptd_errors", ptd_error_reasons, lines, session, load)
