"""Add what the MLPerf power workflow leaves in a submission tree to a scenario built around real LoadGen
runs: performance/power/, performance/ranging/ and run_1/spl.txt, the nameplate and the power fields.

SPEC PTDaemon cannot run here (it is licensed and needs a meter), so the files are written as
github.com/mlcommons/power-dev's ptd_client_server writes them (HEAD c4b3ad82): client.json/server.json
as lib/summary.py `Summary.to_json` (messages of lib/client.py and lib/server.py `handle_connection`,
ptd_messages of `Ptd.cmd` in the order `Session.start`/`stop` and `Ptd.terminate` send them), spl.txt as
PTDaemon's `Time,...,Mark,<session>_<stage>` samples, ptd_logs.txt as PTDaemon's timestamped output, and
the results checksums as `hash_dir` (sha1 of each file). The ranging and testing stages surround the
real LoadGen windows (power_begin..power_end of each run's detail log), ranging first.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from audit.checker.power import SOURCES_FILE, SYSTEM_POWER_FIELDS
from audit.layout import ScenarioPaths
from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME
from mlperf_ext.power.window import loadgen_time

from . import edits

STAGES = ("ranging", "testing")
STAGE_DIRS = {"ranging": "ranging", "testing": "run_1"}
#: seconds around a LoadGen window: client phase 0, PTD Go, client phase 1 before power_begin; client
#: phase 2, PTD "Completed test", client phase 3 after power_end (power-dev sleeps 10 s at start and
#: stop, ANALYZER_SLEEP_SECONDS; shorter here so that two short test runs a few seconds apart fit)
BEFORE = {"phase0": 2.0, "go": 1.2, "phase1": 1.1}
AFTER = {"phase2": 0.3, "completed": 1.5, "phase3": 1.8}
#: the least time between the ranging run's power_end and the testing run's power_begin
STAGE_GAP_S = BEFORE["phase0"] + AFTER["phase3"] + 0.5
SERVER_SKEW_S = 0.04  # the server's clock against the client's (within PWC's 800 ms)
CLIENT_FILES = (
    "power/client.log",
    "ranging/mlperf_log_detail.txt",
    "ranging/mlperf_log_summary.txt",
    "run_1/mlperf_log_detail.txt",
    "run_1/mlperf_log_summary.txt",
)
SERVER_FILES = ("power/ptd_logs.txt", "power/server.log", "ranging/spl.txt", "run_1/spl.txt")
NAMEPLATE_YAML = """\
# nameplate power of the test host (system_check.py sums the minimum PSUs' PowerCapacityWatts)
Chassis:
  PSUs:
    - Model: PWS-801-1R
      PowerCapacityWatts: 800
    - Model: PWS-801-1R
      PowerCapacityWatts: 800
  Min PSUs Needed: 1
"""


@dataclass
class PowerSpec:
    """One power session: its name, uuids, meter and the LoadGen window of each stage."""

    windows: dict[str, tuple[float, float]]
    session: str = ""
    client_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    server_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    meter: str = "YokogawaWT310"
    device_type: int = 49
    ptd_version: str = "1.11.1"
    initial_amps: str = "20.000000"
    initial_volts: str = "300.000000"
    watts: dict[str, float] = field(default_factory=lambda: {"ranging": 41.9, "testing": 41.6})

    def __post_init__(self) -> None:
        if not self.session:
            start = datetime.fromtimestamp(self.windows["ranging"][0] - 30, tz=timezone.utc)
            self.session = start.strftime("%Y-%m-%d_%H-%M-%S") + "_loadgen"

    def at(self, stage: str, moment: str) -> float:
        """Epoch seconds of a moment of a stage (BEFORE/AFTER), on the client's clock."""
        begin, end = self.windows[stage]
        return begin - BEFORE[moment] if moment in BEFORE else end + AFTER[moment]


def ptd_time(moment: float) -> str:
    """PTDaemon's (and LoadGen's power) timestamp: 'MM-DD-YYYY HH:MM:SS.mmm', UTC."""
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%m-%d-%Y %H:%M:%S.%f")[:-3]


def loadgen_window(detail: Path) -> tuple[float, float]:
    return (
        loadgen_time(edits.detail_value(detail, "power_begin")),
        loadgen_time(edits.detail_value(detail, "power_end")),
    )


# ---------------------------------------------------------------- PTDaemon's files


def spl_text(
    spec: PowerSpec, stage: str, watts: float | None = None, shift_s: float = 0.0, mark: str | None = None
) -> str:
    """One sample a second from Go to "Completed test" (PTDaemon's jitter of a few ms included)."""
    level = spec.watts[stage] if watts is None else watts
    mark = f"{spec.session}_{stage}" if mark is None else mark
    start, stop = spec.at(stage, "go") + shift_s, spec.at(stage, "completed") + shift_s
    lines, i = [], 0
    while start + 0.5 + i < stop:
        t = start + 0.5 + i + 0.004 * (i % 3)
        w = level + (0.15 if i % 2 else -0.15)
        amps = w / (230.4 * 0.55)
        lines.append(
            f"Time,{ptd_time(t)},Watts,{w:.6f},Volts,230.400000,Amps,{amps:.6f},PF,0.550000,Mark,{mark}"
        )
        i += 1
    return "\n".join(lines) + "\n"


def ptd_log_lines(spec: PowerSpec) -> list[tuple[float, str]]:
    """PTDaemon's output as the server keeps it in ptd_logs.txt: (time, message) lines."""
    lines = [(spec.at("ranging", "phase0") - 1.0, f"Uncertainty checking for {spec.meter} is activated")]
    for stage in STAGES:
        lines.append((spec.at(stage, "go") + SERVER_SKEW_S, f"Go with mark '{spec.session}_{stage}'"))
        lines.append((spec.at(stage, "completed") + SERVER_SKEW_S, "Completed test"))
    return lines


def write_ptd_log(path: Path, lines: list[tuple[float, str]]) -> None:
    body = "".join(f"{ptd_time(t)}: {message}\n" for t, message in sorted(lines))
    path.write_text("Analyzer 1\n" + body)


def add_ptd_line(perf: Path, moment: float, message: str) -> None:
    """Put one more PTDaemon message into power/ptd_logs.txt, in time order."""
    path = perf / "power" / "ptd_logs.txt"
    kept = [line for line in path.read_text().splitlines()[1:] if line]
    lines = [(loadgen_time(line[:23]), line[25:]) for line in kept] + [(moment, message)]
    write_ptd_log(path, lines)


def ptd_messages(spec: PowerSpec) -> list[dict]:
    """What the server sent PTDaemon and what it answered (lib/server.py, AUTO ranging mode)."""
    go_reply = "Starting untimed measurement, maximum 500000 samples at 1000ms with 0 rampup samples"
    stop_reply = "Stopping untimed measurement"
    max_volts, amps_range = "231.200000", f"{spec.watts['ranging'] / 230.4 / 0.55 * 1.1:.6f}"
    pairs = [
        ("Hello", "Hello, PTDaemon here!"),
        ("Identify", f"{spec.meter},version={spec.ptd_version}-8f2bd1d5,Jul 25 2023"),
        ("RR", f"Ranges,0,{spec.initial_amps},0,{spec.initial_volts}"),
        ("SR,V,Auto", "Range V changed"),
        ("SR,A,Auto", "Range A changed"),
        ("SR,A,Auto", "Range A changed"),
        (f"Go,1000,0,{spec.session}_ranging", go_reply),
        ("Stop", stop_reply),
        ("RL,*,*", "Invalid number of parameters"),
        ("RL", "Last 6 samples"),
        ("Uncertainty", "Uncertainty,0.312%"),
        ("Watts", f"Watts,{spec.watts['ranging']:.6f}"),
        (f"SR,V,{max_volts}", "Range V changed"),
        (f"SR,A,{amps_range}", "Range A changed"),
        (f"Go,1000,0,{spec.session}_testing", go_reply),
        ("Watts", f"Watts,{spec.watts['testing']:.6f}"),
        ("Uncertainty", "Uncertainty,0.298%"),
        ("Stop", stop_reply),
        ("RL,*,*", "Invalid number of parameters"),
        ("RL", "Last 6 samples"),
        ("Uncertainty", "Uncertainty,0.298%"),
        ("Watts", f"Watts,{spec.watts['testing']:.6f}"),
        (f"SR,V,{spec.initial_volts}", "Range V changed"),
        (f"SR,A,{spec.initial_amps}", "Range A changed"),
    ]
    return [{"cmd": c, "reply": r} for c, r in pairs]


# ---------------------------------------------------------------- client.json and server.json


def session_messages(spec: PowerSpec, skew: float) -> list[dict]:
    """The client's commands and the server's replies (lib/client.py), timed on one side's clock."""
    clock = spec.at("ranging", "phase0") - 3.0
    pairs = [
        ("mlcommons/power client v3", "mlcommons/power server v3"),
        ("time", f"{clock:.6f}"),
        (f"new,loadgen,{spec.client_uuid}", f"OK {spec.session},{spec.server_uuid}"),
    ]
    for stage in STAGES:
        pairs += [
            ("time", f"{spec.at(stage, 'phase0'):.6f}"),
            (f"session,{spec.session},start,{stage}", "OK"),
            ("time", f"{spec.at(stage, 'phase1'):.6f}"),
            ("time", f"{spec.at(stage, 'phase2'):.6f}"),
            (f"session,{spec.session},stop,{stage}", "OK"),
            ("time", f"{spec.at(stage, 'phase3'):.6f}"),
        ]
    out = []
    for i, (cmd, reply) in enumerate(pairs):
        t = clock + 0.01 * i + skew
        out.append({"cmd": cmd, "cmd_time": t, "reply": reply, "reply_time": t + 0.002})
    return out


def phases(spec: PowerSpec, skew: float) -> dict[str, list[list[float]]]:
    """[wall clock, monotonic] at start, started, stopping and stopped of each stage (lib/summary.py)."""
    return {
        stage: [
            [spec.at(stage, p) + skew, 1000.0 + spec.at(stage, p) - spec.windows["ranging"][0]]
            for p in ("phase0", "phase1", "phase2", "phase3")
        ]
        for stage in STAGES
    }


def sha1s(perf: Path, names: tuple[str, ...]) -> dict[str, str]:
    return {n: hashlib.sha1((perf / n).read_bytes()).hexdigest() for n in names if (perf / n).is_file()}


def summary_json(spec: PowerSpec, side: str, perf: Path) -> dict:
    skew = 0.0 if side == "client" else SERVER_SKEW_S
    sources = json.loads(SOURCES_FILE.read_text())["checksums"][0]
    data = {
        "version": "1.0",
        "timezone": 0,
        "modules": {
            "ptd_client_server.lib": "lib/__init__.py",
            f"ptd_client_server.lib.{side}": f"lib/{side}.py",
        },
        "sources": sources,
        "messages": session_messages(spec, skew),
        "uuid": {"client": spec.client_uuid, "server": spec.server_uuid},
        "session_name": spec.session,
        "results": sha1s(perf, CLIENT_FILES if side == "client" else SERVER_FILES),
        "phases": phases(spec, skew),
    }
    if side == "server":
        data["ptd_messages"] = ptd_messages(spec)
        data["ptd_config"] = [
            {
                "command": [
                    "/opt/ptd/ptd-linux-x86",
                    "-l",
                    "/tmp/ptd_logfile_1.log",
                    "-p",
                    "8888",
                    "-y",
                    str(spec.device_type),
                    "C3YD21068E",
                ],
                "device_type": spec.device_type,
                "interface_flag": "-y",
                "dc_flag": None,
                "device_port": "C3YD21068E",
                "channel": None,
            }
        ]
    return data


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=4))


def rehash(perf: Path) -> None:
    """Record the files' checksums again, as the session would have had the files been so."""
    for side, names in (("client", CLIENT_FILES), ("server", SERVER_FILES)):
        edit_json(
            perf / "power" / f"{side}.json", lambda d, names=names: d.update(results=sha1s(perf, names))
        )


# ---------------------------------------------------------------- the whole power result


def add_power(paths: ScenarioPaths, ranging_run: Path, testing_run: Path) -> PowerSpec:
    """Make the scenario a power result: the testing run in run_1, the ranging run in ranging/, the
    session's files, the nameplate YAML, the system's power fields and the analyzer files."""
    perf = paths.performance_run.parent
    for stage, run in (("ranging", ranging_run), ("testing", testing_run)):
        target = perf / STAGE_DIRS[stage]
        target.mkdir(parents=True, exist_ok=True)
        for name in (DETAIL_NAME, SUMMARY_NAME):
            shutil.copyfile(run / name, target / name)
    spec = PowerSpec({stage: loadgen_window(perf / STAGE_DIRS[stage] / DETAIL_NAME) for stage in STAGES})
    (perf / "power").mkdir()
    for stage in STAGES:
        (perf / STAGE_DIRS[stage] / "spl.txt").write_text(spl_text(spec, stage))
    write_ptd_log(perf / "power" / "ptd_logs.txt", ptd_log_lines(spec))
    (perf / "power" / "client.log").write_text(f"[client] session {spec.session}: ranging and testing done\n")
    (perf / "power" / "server.log").write_text(f"[server] session {spec.session} dropped\n")
    for side in ("client", "server"):
        (perf / "power" / f"{side}.json").write_text(json.dumps(summary_json(spec, side, perf), indent=4))
    paths.system_json.with_name(f"{paths.system}_power.yaml").write_text(NAMEPLATE_YAML)
    system = json.loads(paths.system_json.read_text())
    system.update({k: f"{k} of the test host" for k in SYSTEM_POWER_FIELDS})
    paths.system_json.write_text(json.dumps(system, indent=2))
    system_dir = paths.dir.parent.parent
    (system_dir / "analyzer_table.md").write_text(f"| analyzer | {spec.meter} | firmware F1.03 |\n")
    (system_dir / "power_settings.md").write_text(
        "BIOS power profile: performance; OS governor: performance\n"
    )
    return spec
