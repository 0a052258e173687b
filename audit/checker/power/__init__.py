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


from audit.checker.power.facts import SOURCES_FILE, SYSTEM_POWER_FIELDS
from audit.checker.power.findings import PowerFindings, power_findings
from audit.checker.power.reading import average_watts, power_metric

__all__ = ["SOURCES_FILE", "SYSTEM_POWER_FIELDS", "PowerFindings", "average_watts", "power_findings", "power_metric"]
