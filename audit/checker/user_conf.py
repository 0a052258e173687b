"""A scenario's user.conf must not relax the submission profile (LoadGen's official mlperf.conf settings).

LoadGen applies user.conf after its embedded mlperf.conf (loadgen/test_settings_internal.cc,
FromConfig), so a line there can lower the 600 s minimum duration, the minimum query count, the
performance sample count or a latency percentile, or raise a latency bound. Upstream's checker reads
only the effects that reach the detail log; this reads the file itself, so a relaxation shows even
where its effect was masked. Lines apply when their scenario is '*' or the directory's scenario,
whatever model name they carry (the file belongs to this benchmark's directory).
"""

from __future__ import annotations

import re
from pathlib import Path

from audit.checker.problems import Problem, problem
from audit.rules import BenchmarkRules, RoundRules

_LINE = re.compile(r"([^.\s=]+)\.([^.\s=]+)\.([^\s=]+)\s*=\s*(\S+)")


def user_conf_problems(path: Path, rules: RoundRules, bench: BenchmarkRules, scenario: str) -> list[Problem]:
    path = Path(path)
    if not path.is_file():
        return []
    out: list[Problem] = []
    for no, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"line {no} ({line!r})"
        match = _LINE.fullmatch(line)
        value = None
        if match:
            try:
                value = float(match.group(4))
            except ValueError:
                value = None
        if match is None or value is None:
            out.append(
                problem(
                    path,
                    "user_conf_unparsable",
                    f"{where} is not 'model.scenario.key = number', so LoadGen would refuse or misread it",
                )
            )
            continue
        _model, line_scenario, key = match.group(1), match.group(2), match.group(3)
        if line_scenario not in ("*", scenario):
            continue
        floors = {
            "min_duration": (rules.min_duration_ms, "ms"),
            "min_query_count": (rules.min_query_count_floor(bench, scenario), "queries"),
            "performance_sample_count_override": (bench.performance_sample_count, "samples"),
        }
        if key in floors and value < floors[key][0]:
            floor, unit = floors[key]
            extra = (
                " (0 hands the count to the QSL)"
                if key == "performance_sample_count_override" and not value
                else ""
            )
            out.append(
                problem(
                    path,
                    "user_conf_relaxed",
                    f"{where} lowers {key} to {match.group(4)}{extra}; the "
                    f"submission profile needs at least {floor} {unit}",
                )
            )
        pct_floor = rules.target_latency_percentile.get(scenario)
        if key == "target_latency_percentile" and pct_floor is not None and value < pct_floor * 100 - 1e-9:
            out.append(
                problem(
                    path,
                    "user_conf_relaxed",
                    f"{where} lowers the {scenario} latency percentile below "
                    f"mlperf.conf's {pct_floor * 100:g}",
                )
            )
        bound = bench.latency_bound_ns.get(scenario)
        if key == "target_latency" and scenario == "Server" and bound is not None and value * 1e6 > bound:
            out.append(
                problem(
                    path,
                    "user_conf_relaxed",
                    f"{where} raises the Server latency bound above the benchmark's {bound / 1e6:g} ms",
                )
            )
    return out


__all__ = ["user_conf_problems"]
