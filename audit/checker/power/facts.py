"""The facts the power checks rest on: file names, PTDaemon's replies and limits, the units (each cites
upstream's file and line; see audit.checker.power)."""

from __future__ import annotations

import re
from pathlib import Path

from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME

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
SOURCES_FILE = Path(__file__).resolve().parents[2] / "power_sources_checksums.json"

Window = tuple[float, float]
