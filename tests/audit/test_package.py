"""Package -> compliance -> check, round trip, on real LoadGen runs through the point runner; and the
compliance tests catching a SUT that cheats in performance mode (TEST01) or caches answers (TEST04)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from audit import layout
from audit.checker import check_tree_report
from audit.compliance import run_compliance, write_test01_accuracy
from audit.package import PackageRequest, package, user_conf_text
from audit.rules import MAX_ACCURACY_LOG_SIZE, round_rules
from audit.selection import select_results
from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError
from mlperf_ext.store import ResultsStore
from tests.harness.conftest import make_mlp
from tiers.runner import layout as runs_layout
from tiers.sweep import run_points

FAKES = "tests.audit.fake_suts"
SYSTEM = {"system_name": "audit test host", "status": "rdi", "system_type": "edge",
          **{k: "not described" for k in ("host_storage_type", "host_memory_configuration",
                                          "host_processor_interconnect", "host_networking",
                                          "host_networking_topology", "cooling", "hw_notes", "sw_notes",
                                          "system_type_detail")},
          "host_network_card_count": "1"}
MEASUREMENTS = {"input_data_types": "fp32", "retraining": "No", "starting_weights_filename": "mlp.onnx (random)",
                "weight_data_types": "fp32", "weight_transformations": "none"}
#: long enough that the p90 latency TEST01 compares (SingleStream) rests on a few hundred queries, not a
#: handful: a VM's timer jitter moved a 55-query p90 by more than the 10 % the test allows
MIN_DURATION_MS = 1500
#: what a quick-profile run on a 1000-sample dataset must disclose against resnet's rules, and nothing else
DISCLOSED = {"min_duration", "performance_sample_count", "dataset_coverage", "user_conf_relaxed", "min_query_count"}


def _yaml(path: Path, data: dict) -> Path:
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in data.items()))
    return path


def _point(model: Path, backend: str, mode: str) -> RunPoint:
    return RunPoint(model=str(model), dataset="mnist", backend=backend, scenario="SingleStream", mode=mode,
                    settings={"min_duration_ms": MIN_DURATION_MS}, timeout_s=180)


def _workdir(tmp_path_factory, backend: str, tests: tuple[str, ...]):
    base = tmp_path_factory.mktemp(backend.split(":")[-1])
    model = make_mlp(base / "mlp.onnx")
    work = base / "work"
    for mode in ("accuracy", "performance"):
        [r] = run_points([_point(model, backend, mode)], work)
        assert r.status == "ok", r.error
    store = ResultsStore(runs_layout.store_path(work))
    [entry] = select_results(store.results(status="ok"), round_rules("v6.1"), {"*": "resnet"})
    outcomes = {t: run_compliance(work, entry, t, "v6.1") for t in tests}
    return base, work, outcomes


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    return _workdir(tmp_path_factory, f"{FAKES}:FakeSteadyDevice", ("TEST01", "TEST04"))


@pytest.fixture(scope="module")
def packaged(honest):
    base, work, _ = honest
    req = PackageRequest(workdir=work, out=base / "submission", division="open", submitter="MyOrg",
                         system_yaml=_yaml(base / "system.yaml", SYSTEM), benchmarks={"*": "resnet"},
                         measurements_yaml=_yaml(base / "measurements.yaml", MEASUREMENTS))
    return req, package(req, say=lambda _line: None)


#: the one verdict a quiet host cannot promise: TEST01's performance check compares two short runs' p90
#: latency within 10 %, and this VM's timing moved it by up to 31 % between two runs seconds apart
TIMING = "Test score invalid (outside 10% of the reference)"


def _timing_only(v) -> bool:
    return v.kind == "performance" and v.reasons == [TIMING]


def test_honest_sut_passes_both_compliance_tests(honest):
    _, _, outcomes = honest
    for test, outcome in outcomes.items():
        for v in outcome.verifications:  # accuracy and TEST04 must pass; TEST01 performance may miss on timing
            text = (Path(outcome.run.run_dir) / v.file_name).read_text().rstrip()
            if test == "TEST01" and _timing_only(v):
                assert text.endswith("TEST FAIL: " + TIMING)
                continue
            assert v.passed and text.endswith("TEST PASS"), (test, v.kind, v.reasons)
        assert outcome.run.point.audit_config and outcome.run.point.mode == "performance"
    # LoadGen sized its query list by the device's latency, so TEST01 logged every query it issued (at
    # least min_query_count), not the handful an expected latency far below the real one leaves
    logged = json.loads((Path(outcomes["TEST01"].run.run_dir) / runs_layout.LOADGEN_DIR / layout.ACCURACY_JSON_NAME).read_text())
    assert len(logged) == outcomes["TEST01"].run.system.query_count >= 100


def test_a_test01_rerun_that_logged_nothing_says_why_and_how_to_fix_it(honest, tmp_path):
    _, _, outcomes = honest
    run = outcomes["TEST01"].run
    copy = tmp_path / "run"
    shutil.copytree(run.run_dir, copy)
    (copy / runs_layout.ACCURACY_FILE).unlink()
    (copy / runs_layout.LOADGEN_DIR / layout.ACCURACY_JSON_NAME).write_text("[\n]\n")  # what LoadGen writes when nothing sampled
    with pytest.raises(ConfigError) as err:
        write_test01_accuracy(dataclasses.replace(run, run_dir=str(copy)))
    message = str(err.value)
    assert "logged no sample" in message and "probability 4096/" in message
    assert "fix: set single_stream_expected_latency_ns" in message
    assert not (copy / runs_layout.ACCURACY_FILE).exists()


def test_round_trip_tree_has_every_file_and_only_the_disclosed_problems(packaged, honest):
    req, report = packaged
    root = report.root
    [entry] = report.entries
    paths = layout.scenario_paths(root, "open", "MyOrg", f"audit_test_host-{entry.performance.point.backend}",
                                  "mlp", "SingleStream")
    for f in (paths.system_json, paths.measurements, paths.user_conf, paths.readme,
              layout.model_mapping_path(root, "open", "MyOrg"), layout.src_dir(root, "open", "MyOrg") / "points.json"):
        assert f.is_file(), f
    for name in layout.PERFORMANCE_FILES:
        assert (paths.performance_run / name).is_file()
        for test in ("TEST01", "TEST04"):
            assert (paths.test_performance_run(test) / name).is_file()
    for name in layout.ACCURACY_FILES:
        assert (paths.accuracy_dir / name).is_file()
    assert (paths.verify_accuracy("TEST01")).is_file() and (paths.verify_performance("TEST04")).is_file()
    # truncated as upstream does, the full log kept beside the tree, the hash line on accuracy.txt
    acc = paths.accuracy_dir / layout.ACCURACY_JSON_NAME
    kept = layout.kept_accuracy_log(report.kept_root, paths.relative / "accuracy")
    assert acc.stat().st_size <= MAX_ACCURACY_LOG_SIZE < kept.stat().st_size
    assert "hash=" in (paths.accuracy_dir / layout.ACCURACY_TXT_NAME).read_text()
    assert json.loads(layout.model_mapping_path(root, "open", "MyOrg").read_text()) == {"mlp": "resnet"}
    system = json.loads(paths.system_json.read_text())
    assert system["accelerators_per_node"] == "0" and system["framework"].startswith("onnxruntime")
    rules = {p.rule for p in report.problems}
    timing = {"compliance_performance_failed"} if any(
        _timing_only(v) for v in honest[2]["TEST01"].verifications) else set()
    assert rules and rules <= DISCLOSED | timing, [str(p) for p in report.problems if p.rule not in DISCLOSED]
    # the checker run by hand agrees with what packaging reported, and src/README.md lists it
    again = check_tree_report(root)
    assert [str(p) for p in again.problems] == [str(p) for p in report.problems]
    readme = (layout.src_dir(root, "open", "MyOrg") / "README.md").read_text()
    assert all(p.rule in readme for p in report.problems)


def test_verdicts_in_the_store_are_the_checkers(packaged):
    req, report = packaged
    store = ResultsStore(runs_layout.store_path(req.workdir))
    [entry] = report.entries
    runs = [entry.performance, entry.accuracy, *entry.compliance.values()]
    for run in runs:
        verdict = store.verdict(run.run_id)
        assert verdict is not None and verdict["compliant"] is False  # quick profile: never compliant
        assert any("min_duration" in p or "dataset_coverage" in p for p in verdict["problems"])
        assert store.by_run_id(run.run_id)["compliant"] == 0  # what the results table shows


def test_user_conf_states_what_the_run_applied(packaged):
    _, report = packaged
    text = user_conf_text(report.entries[0].performance)
    assert f"mlp.SingleStream.min_duration = {MIN_DURATION_MS}" in text


def test_packaging_refuses_what_it_cannot_do_and_writes_nothing(packaged, tmp_path):
    req, _ = packaged
    with pytest.raises(ConfigError, match="exists; fix: choose another --out, or add --force"):
        package(req, say=lambda _line: None)
    no_yaml = PackageRequest(workdir=req.workdir, out=tmp_path / "t1", division="open", submitter="MyOrg",
                             benchmarks={"*": "resnet"}, measurements_yaml=req.measurements_yaml)
    with pytest.raises(ConfigError, match="the systems JSON needs status"):
        package(no_yaml, say=lambda _line: None)
    no_measurements = PackageRequest(workdir=req.workdir, out=tmp_path / "t2", division="open", submitter="MyOrg",
                                     benchmarks={"*": "resnet"}, system_yaml=req.system_yaml)
    with pytest.raises(ConfigError, match="needs input_data_types.*fix: write them in a YAML passed with --measurements"):
        package(no_measurements, say=lambda _line: None)
    unmapped = PackageRequest(workdir=req.workdir, out=tmp_path / "t3", division="open", submitter="MyOrg",
                              system_yaml=req.system_yaml, measurements_yaml=req.measurements_yaml)
    with pytest.raises(ConfigError, match="stands for no v6.1 benchmark; fix: --benchmark mlp=resnet"):
        package(unmapped, say=lambda _line: None)
    assert not any(tmp_path.iterdir())  # no tree, no kept logs, no staging left behind


def test_closed_division_needs_the_compliance_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("closed")
    model = make_mlp(base / "mlp.onnx")
    for mode in ("accuracy", "performance"):
        run_points([_point(model, "onnxruntime", mode)], base / "work")
    req = PackageRequest(workdir=base / "work", out=base / "t", division="closed", submitter="MyOrg",
                         benchmarks={"*": "resnet"})
    with pytest.raises(ConfigError, match="has no TEST01 run; fix: mlperf-ext audit compliance --test TEST01 --run"):
        package(req, say=lambda _line: None)


def test_test01_catches_a_sut_that_cheats_in_performance_mode(tmp_path_factory):
    base, work, outcomes = _workdir(tmp_path_factory, f"{FAKES}:FakeCheatingDevice", ("TEST01",))
    accuracy, performance = outcomes["TEST01"].verifications
    assert not accuracy.passed and accuracy.reasons
    text = (Path(outcomes["TEST01"].run.run_dir) / accuracy.file_name).read_text()
    assert "TEST FAIL" in text and "num_perf_log_data_mismatch" in text
    # packaged, TEST01/accuracy carries the non-deterministic path's two scores (create_accuracy_baseline.sh);
    # the cheat's all-zero answers are far outside the 1 % delta, so the checker still refuses it
    req = PackageRequest(workdir=work, out=base / "submission", division="open", submitter="MyOrg",
                         system_yaml=_yaml(base / "system.yaml", SYSTEM), benchmarks={"*": "resnet"},
                         measurements_yaml=_yaml(base / "measurements.yaml", MEASUREMENTS))
    report = package(req, say=lambda _line: None)
    [paths] = layout.iter_scenarios(report.root, "open", "MyOrg")
    acc_dir = paths.test_accuracy_dir("TEST01")
    assert sorted(p.name for p in acc_dir.iterdir()) == [
        "accuracy.txt", "baseline_accuracy.txt", "compliance_accuracy.txt", "mlperf_log_accuracy.json"]
    baseline, compliance = (float(re.search(r"accuracy=([\d.]+)%", (acc_dir / n).read_text()).group(1))
                            for n in ("baseline_accuracy.txt", "compliance_accuracy.txt"))
    assert baseline != compliance
    rules = {p.rule for p in report.problems}
    assert "compliance_accuracy_failed" in rules and "test01_baseline_files" not in rules


def test_test04_catches_a_sut_that_caches_answers(tmp_path_factory):
    _, _, outcomes = _workdir(tmp_path_factory, f"{FAKES}:FakeCachingDevice", ("TEST04",))
    [performance] = outcomes["TEST04"].verifications
    assert not performance.passed
    assert "TEST FAIL" in (Path(outcomes["TEST04"].run.run_dir) / performance.file_name).read_text()


def test_check_command_exit_codes(packaged, tmp_path, capsys):
    from mlperf_ext.cli import main

    _, report = packaged
    csv_path = tmp_path / "summary.csv"
    assert main(["submission", "check", str(report.root), "--csv", str(csv_path)]) == 1  # problems: exit 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(report.problems) and all("[" in line and "]" in line for line in out)
    assert csv_path.read_text().startswith("Organization,")
    assert main(["submission", "check", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory; fix:" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["null", "sut.null:NullBackend"])
def test_a_backend_that_runs_no_model_is_never_compliant_nor_packaged(backend, tmp_path_factory):
    from audit.verdicts import record_verdicts

    base, work, _ = _workdir(tmp_path_factory, backend, ())
    store = ResultsStore(runs_layout.store_path(work))
    entries = select_results(store.results(status="ok"), round_rules("v6.1"), {"*": "resnet"})
    verdicts = record_verdicts(store, entries, "open", "v6.1")
    for run_id, problems in verdicts.items():
        assert any("[sut_runs_no_model]" in p and "runs no model" in p for p in problems), problems
        assert store.by_run_id(run_id)["compliant"] == 0
    req = PackageRequest(workdir=work, out=base / "submission", division="open", submitter="MyOrg",
                         system_yaml=_yaml(base / "system.yaml", SYSTEM), benchmarks={"*": "resnet"},
                         measurements_yaml=_yaml(base / "measurements.yaml", MEASUREMENTS))
    with pytest.raises(ConfigError, match="runs no model") as err:
        package(req, say=lambda _line: None)
    assert "\n" not in str(err.value) and "fix:" in str(err.value)
    assert not req.out.exists()


def test_the_audit_commands_through_the_cli(honest, packaged, tmp_path, capsys):
    """`audit compliance`, `audit verdicts` and `submission package` as a user types them (the stored
    compliance runs are reused, so nothing is timed again)."""
    from mlperf_ext.cli import main

    base, work, outcomes = honest
    req, _report = packaged
    common = ["--workdir", str(work), "--benchmark", "*=resnet"]
    # the stored TEST01 run is reused: the command reports the fixture's verdicts, exit 1 when one failed
    assert main(["audit", "compliance", "--test", "TEST01", *common]) == (0 if outcomes["TEST01"].passed else 1)
    out = capsys.readouterr().out
    for v in outcomes["TEST01"].verifications:
        assert f"TEST01 {v.kind} {'TEST PASS' if v.passed else 'TEST FAIL'}" in out
    assert "verify files:" in out
    assert main(["audit", "verdicts", "--division", "open", *common]) == 0
    out = capsys.readouterr().out
    assert out.count("not compliant (") == 4 and "[min_duration]" in out  # performance, accuracy, TEST01, TEST04
    tree = tmp_path / "cli-tree"
    assert main(["submission", "package", *common, "--out", str(tree), "--division", "open", "--submitter", "MyOrg",
                 "--system", str(req.system_yaml), "--measurements", str(req.measurements_yaml)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tree}" in out and "the checker reports" in out and (tree / "open" / "MyOrg").is_dir()
    assert main(["audit", "compliance", "--test", "TEST99", *common]) == 2
    assert "unknown compliance test 'TEST99'; fix:" in capsys.readouterr().err
