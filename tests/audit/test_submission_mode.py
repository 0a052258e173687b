"""A `--mode submission` row (LoadGen's SubmissionRun: the accuracy phase, then the performance phase, in
one test and one set of logs) packaged as its result's performance run and its accuracy run, on a real
LoadGen run through the point runner; and `--division network`, which the packager refuses."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from audit import layout
from audit.checker import check_tree_report
from audit.compliance import run_compliance
from audit.package import NETWORK_REFUSAL, PackageRequest, package, reproduce_commands
from audit.rules import round_rules
from audit.selection import select_results
from mlperf_ext.config import RunPoint
from mlperf_ext.logs import DETAIL_NAME, parse_detail_log, read_detail_entries
from mlperf_ext.store import ResultsStore
from tests.audit.test_package import DISCLOSED, MEASUREMENTS, SYSTEM
from tests.harness.conftest import make_mlp
from tiers.runner import layout as runs_layout
from tiers.sweep import run_points

#: short: what is under test is where the logs go, not what they measure
MIN_DURATION_MS = 300
#: the one TEST01 verdict a busy host cannot promise: two short runs' latencies within 10 % (20 % when short)
TIMING = re.compile(r"Test score invalid \(outside \d+% of the reference\)")


def _yaml(path: Path, data: dict) -> Path:
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in data.items()))
    return path


def _stored(work: Path) -> list:
    return ResultsStore(runs_layout.store_path(work)).results(status="ok")


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """One ok `--mode submission` row and its TEST01 rerun: (base, workdir, the row, TEST01 outcome)."""
    base = tmp_path_factory.mktemp("submission-mode")
    point = RunPoint(model=str(make_mlp(base / "mlp.onnx")), dataset="mnist", backend="onnxruntime",
                     scenario="SingleStream", mode="submission", settings={"min_duration_ms": MIN_DURATION_MS},
                     timeout_s=180)
    work = base / "work"
    [row] = run_points([point], work)
    assert row.status == "ok", row.error
    [entry] = select_results(_stored(work), round_rules("v6.1"), {"*": "resnet"})
    return base, work, row, run_compliance(work, entry, "TEST01", "v6.1")


@pytest.fixture(scope="module")
def packaged(submitted):
    base, work, _, _ = submitted
    req = PackageRequest(workdir=work, out=base / "submission", division="open", submitter="MyOrg",
                         system_yaml=_yaml(base / "system.yaml", SYSTEM), benchmarks={"*": "resnet"},
                         measurements_yaml=_yaml(base / "measurements.yaml", MEASUREMENTS))
    return req, package(req, say=lambda _line: None)


def test_loadgen_logs_a_submission_run_as_an_accuracy_phase_then_a_performance_phase(submitted):
    """The facts the packaging rests on, as LoadGen wrote them."""
    _, _, row, _ = submitted
    logs = Path(row.run_dir) / runs_layout.LOADGEN_DIR
    entries = read_detail_entries(logs / DETAIL_NAME)
    phases = [e["value"] for e in entries if e["key"] == "generic_message" and str(e["value"]).startswith("Starting")]
    assert phases == ["Starting accuracy mode", "Starting performance mode"]
    once = {k: [e["value"] for e in entries if e["key"] == k] for k in ("effective_test_mode", "result_validity")}
    assert once == {"effective_test_mode": ["SubmissionRun"], "result_validity": ["VALID"]}
    accuracy = json.loads((logs / layout.ACCURACY_JSON_NAME).read_text())
    assert len(accuracy) == len({e["qsl_idx"] for e in accuracy}) == 1000  # the accuracy phase: each sample once
    assert "Mode     : SubmissionRun" in (logs / "mlperf_log_summary.txt").read_text()


def test_the_power_window_of_a_submission_run_is_its_performance_phases(submitted):
    _, _, row, _ = submitted
    detail = Path(row.run_dir) / runs_layout.LOADGEN_DIR / DETAIL_NAME
    windows = {k: [e["value"] for e in read_detail_entries(detail) if e["key"] == k] for k in ("power_begin", "power_end")}
    assert len(windows["power_begin"]) == len(windows["power_end"]) == 2  # accuracy phase, then performance
    result = parse_detail_log(detail)
    assert (result.power_begin, result.power_end) == (windows["power_begin"][1], windows["power_end"][1])


def test_a_submission_row_is_its_results_performance_and_accuracy_run(submitted):
    _, work, row, _ = submitted
    [entry] = select_results(_stored(work), round_rules("v6.1"), {"*": "resnet"})
    assert entry.performance.run_id == entry.accuracy.run_id == row.run_id and entry.one_run
    assert [c.split(" --mode ")[1] for c in reproduce_commands(entry) if " --mode " in c] == ["submission"]


def test_the_newest_row_fills_each_role(submitted):
    """A separate performance or accuracy row of the same deployment, finished later, wins its role;
    --run limits the performance run only, so an unchosen submission row still serves as accuracy."""
    _, work, row, _ = submitted
    rows = _stored(work)
    later = dataclasses.replace(row, run_id="later-perf", finished_at=row.finished_at + "+",
                                point=dataclasses.replace(row.point, mode="performance"))
    rules = round_rules("v6.1")
    [entry] = select_results([*rows, later], rules, {"*": "resnet"})
    assert (entry.performance.run_id, entry.accuracy.run_id, entry.one_run) == ("later-perf", row.run_id, False)
    earlier = dataclasses.replace(later, run_id="earlier-perf", finished_at="0")
    [entry] = select_results([*rows, earlier], rules, {"*": "resnet"})
    assert entry.performance.run_id == entry.accuracy.run_id == row.run_id
    [entry] = select_results([*rows, earlier], rules, {"*": "resnet"}, performance_ids={"earlier-perf"})
    assert (entry.performance.run_id, entry.accuracy.run_id) == ("earlier-perf", row.run_id)


def test_test01_of_a_submission_row_reruns_in_performance_mode_against_its_accuracy_phase(submitted):
    _, _, row, outcome = submitted
    assert outcome.run.point.mode == "performance" and outcome.run.point.audit_config
    assert outcome.entry.accuracy.run_id == row.run_id
    accuracy, performance = outcome.verifications
    assert accuracy.passed, accuracy.reasons  # the same answers as the submission row's accuracy phase
    assert performance.passed or [bool(TIMING.fullmatch(r)) for r in performance.reasons] == [True], \
        performance.reasons


def test_a_packaged_submission_row_passes_the_checkers_accuracy_and_performance_checks(packaged, submitted):
    _, report = packaged
    _, _, row, outcome = submitted
    paths = layout.scenario_paths(report.root, "open", "MyOrg", "audit_test_host-onnxruntime", "mlp", "SingleStream")
    detail = (Path(row.run_dir) / runs_layout.LOADGEN_DIR / DETAIL_NAME).read_text()
    assert (paths.performance_run / DETAIL_NAME).read_text() == detail == (paths.accuracy_dir / DETAIL_NAME).read_text()
    for name in layout.ACCURACY_FILES:
        assert (paths.accuracy_dir / name).is_file()
    assert "--mode submission" in paths.readme.read_text() and "one LoadGen SubmissionRun" in paths.readme.read_text()
    timing = {"compliance_performance_failed"} if not outcome.verifications[1].passed else set()
    rules = {p.rule for p in report.problems}
    assert rules <= DISCLOSED | timing, [str(p) for p in report.problems if p.rule not in DISCLOSED | timing]
    assert [str(p) for p in check_tree_report(report.root).problems] == [str(p) for p in report.problems]


def test_package_refuses_the_network_division_in_one_line_and_writes_nothing(tmp_path, capsys):
    """Refused before anything is read or written: no store, system or measurements YAML is needed."""
    from mlperf_ext.cli import main

    out = tmp_path / "tree"
    code = main(["submission", "package", "--workdir", str(tmp_path / "work"), "--out", str(out),
                 "--division", "network", "--submitter", "MyOrg"])
    err = capsys.readouterr().err
    assert code == 2 and err == f"mlperf-ext: error: {NETWORK_REFUSAL}\n"
    assert "LoadGen's own process" in err and "fix: use --division closed or --division open" in err
    assert not any(tmp_path.iterdir())  # no tree, no kept logs, no staging left behind


def test_a_submission_row_gets_one_verdict_for_both_its_roles(submitted):
    from audit.verdicts import record_verdicts, verdict_of

    _, work, row, _ = submitted
    store = ResultsStore(runs_layout.store_path(work))
    [entry] = select_results(_stored(work), round_rules("v6.1"), {"*": "resnet"})
    assert entry.performance.run_id == entry.accuracy.run_id == row.run_id
    as_performance = verdict_of(entry, row, "performance", None, "open", "v6.1")
    as_accuracy = verdict_of(entry, row, "accuracy", None, "open", "v6.1")
    assert set(as_performance) != set(as_accuracy)  # each role has findings of its own
    verdicts = record_verdicts(store, [entry], "open", "v6.1")
    assert set(verdicts[row.run_id]) == set(as_performance) | set(as_accuracy)
    assert store.verdict(row.run_id)["problems"] == verdicts[row.run_id]


def test_the_packager_says_why_measured_power_stays_out_of_the_tree(submitted):
    from audit.package import power_left_out
    from mlperf_ext.power.metrics import PowerFigures

    _, _, row, _ = submitted
    assert power_left_out(row) is None  # measured no power: nothing to say
    said = power_left_out(dataclasses.replace(row, power=PowerFigures(meter="rapl")))
    assert "power left out of the tree" in said and "rapl, not SPEC PTDaemon" in said and "\n" not in said
