"""LoadGen's power window (`power_begin` / `power_end` in mlperf_log_detail.txt) as epoch seconds.

What LoadGen writes (github.com/mlcommons/inference, `loadgen/`; checked against mlcommons-loadgen 6.0.17):

* `power_begin` is `std::chrono::system_clock::now()`, taken in
  `IssueQueryController::StartIssueQueries` right before the perf-clock start of the timed run
  (issue_query_controller.cc); `power_end` is power_begin plus the perf-clock time from that start to
  the last sample's completion (loadgen.cc). So the window is the SUT's active time on the system
  (wall) clock, the same clock as Python's `time.time()`.
* Both are formatted by `DateTimeStringForPower` (utils.cc) as "MM-DD-YYYY HH:MM:SS.mmm" in **UTC**
  (`std::gmtime`, since "Use UTC timestamps for power", mlcommons/inference#898, 2021), milliseconds
  truncated. Do not confuse them with `test_datetime`, which is **local** time printed with a literal
  "Z" suffix (`CurrentDateTimeISO8601` uses `std::localtime`).

Verified on this project's VM by running the real LoadGen 6.0.17 (null SUT, Offline, 1 s) four times,
with TZ unset, UTC, Asia/Kolkata (UTC+5:30) and America/New_York: `test_datetime` moved with TZ
("2026-12-02T03:32:21Z" at 22:02:21 UTC), while power_begin/power_end read as UTC fell inside the
`time.time()` taken around the run under every TZ (begin 19-30 ms after the call, end 28-34 ms
before its return).
`tests/power/test_window.py` repeats that check against a real LoadGen run.
"""

from __future__ import annotations

from datetime import datetime, timezone

from mlperf_ext.logs import LoadGenResult, LogParseError

#: LoadGen's DateTimeStringForPower format ("%m-%d-%Y %T" plus ".mmm")
LOADGEN_TIME_FORMAT = "%m-%d-%Y %H:%M:%S.%f"


def loadgen_time(text: str) -> float:
    """Epoch seconds of a LoadGen power timestamp ("MM-DD-YYYY HH:MM:SS.mmm", UTC)."""
    try:
        moment = datetime.strptime(text.strip(), LOADGEN_TIME_FORMAT)
    except (AttributeError, ValueError) as exc:
        raise LogParseError(f"LoadGen power timestamp {text!r} is not 'MM-DD-YYYY HH:MM:SS.mmm'; fix: pass "
                            "power_begin/power_end as mlperf_log_detail.txt has them") from exc
    return moment.replace(tzinfo=timezone.utc).timestamp()


def loadgen_window(result: LoadGenResult) -> tuple[float, float] | None:
    """(power_begin, power_end) in epoch seconds, or None when the log has no power window."""
    if not result.power_begin or not result.power_end:
        return None
    begin, end = loadgen_time(result.power_begin), loadgen_time(result.power_end)
    if end < begin:
        raise LogParseError(f"LoadGen power_end {result.power_end} precedes power_begin {result.power_begin}; "
                            "fix: the detail log is damaged - re-run the test")
    return begin, end
