"""check_tree on a tree built from real LoadGen logs, and on copies damaged one way each."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from audit import layout
from audit.checker import RULES, check_tree, check_tree_report
from audit.truncate import read_hash, sha256_of, truncated
from mlperf_ext.errors import ConfigError
from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME

from . import edits
from .tree_builder import scenario

V60_QSL_SEED = 2465351861681999779  # the v6.0 round's qsl_rng_seed (constants.py MODEL_CONFIG["v6.0"])


def keyed(root: Path, problems: list) -> set[tuple[str, str]]:
    """(rule, path relative to the root) of each problem."""
    return {
        (p.rule, str(p.path.relative_to(root) if p.path.is_relative_to(root) else p.path)) for p in problems
    }


def found(root: Path, kept: Path | None = None) -> set[tuple[str, str]]:
    return keyed(root, check_tree(root, kept_root=kept))


def base_expected(root: Path) -> set[tuple[str, str]]:
    s = scenario(root)
    rel = s.dir.relative_to(root)
    return {
        ("min_duration", str(rel / "performance/run_1" / DETAIL_NAME)),
        ("min_duration", str(rel / "TEST01/performance/run_1" / DETAIL_NAME)),
        ("min_duration", str(rel / "TEST04/performance/run_1" / DETAIL_NAME)),
        ("scenarios_missing", str(rel.parent)),
    }


def added_rules(root: Path, problems: list | None = None) -> set[str]:
    """The rules that fire beyond the base tree's."""
    problems = check_tree(root) if problems is None else problems
    return {rule for rule, _ in keyed(root, problems) - base_expected(root)}


def only(problems: list, rule: str):
    (hit,) = [p for p in problems if p.rule == rule]
    return hit


def test_base_tree_reports_only_what_a_short_run_must(base_tree):
    root, _kept = base_tree
    problems = check_tree(root)
    assert keyed(root, problems) == base_expected(root)
    assert "['SingleStream', 'MultiStream']" in only(problems, "scenarios_missing").message
    durations = [p for p in problems if p.rule == "min_duration"]
    assert all("expected=600000, found=200" in p.message for p in durations)


def test_base_tree_carries_upstream_files(base_tree):
    root, kept = base_tree
    s = scenario(root)
    for test, names in (
        ("TEST01", ("verify_accuracy.txt", "verify_performance.txt")),
        ("TEST04", ("verify_performance.txt",)),
    ):
        for name in names:
            lines = (s.test_dir(test) / name).read_text().splitlines()
            assert lines[-1] == "TEST PASS"
    acc_json = s.accuracy_dir / layout.ACCURACY_JSON_NAME
    assert acc_json.stat().st_size <= 10 * 1024
    assert read_hash(s.accuracy_dir / layout.ACCURACY_TXT_NAME) is not None
    assert (
        (s.accuracy_dir / layout.ACCURACY_TXT_NAME)
        .read_text()
        .startswith("accuracy=100.000%, good=50000, total=50000")
    )
    assert layout.kept_accuracy_log(kept, s.relative / "accuracy").stat().st_size > 1_000_000


def test_open_division_drops_closed_only_rules(tree):
    root, kept = tree
    to_open_division(root, kept)
    assert {rule for rule, _ in found(root)} == {"min_duration"}
    shutil.rmtree(
        scenario(root, "open").test_dir("TEST01")
    )  # compliance is not required in the open division
    assert {rule for rule, _ in found(root)} == {"min_duration"}


def test_invalid_result_is_refused(tree, runs):
    root, _ = tree
    run = scenario(root).performance_run
    for name in (DETAIL_NAME, SUMMARY_NAME):
        shutil.copyfile(runs["invalid"] / name, run / name)
    # the compliance verdicts were filed against the VALID run; against this one they do not hold
    assert added_rules(root) == {"result_invalid", "compliance_reverify"}


def test_metric_tampered_in_the_summary(tree):
    root, _ = tree
    summary = scenario(root).performance_run / SUMMARY_NAME
    edits.set_summary_line(
        summary,
        "Samples per second",
        f"{float(edits.summary_value(summary, 'Samples per second')) * 1.5:.2f}",
    )
    assert added_rules(root) == {"summary_disagrees"}


def test_metric_tampered_in_both_logs(tree):
    root, _ = tree
    run = scenario(root).performance_run
    boosted = edits.detail_value(run / DETAIL_NAME, "result_samples_per_second") * 1.5
    edits.set_detail_value(run / DETAIL_NAME, "result_samples_per_second", round(boosted, 2))
    edits.set_summary_line(run / SUMMARY_NAME, "Samples per second", f"{boosted:.2f}")
    # the figure no longer fits the latencies it is computed from, nor the TEST01 rerun's throughput
    assert added_rules(root) == {"detail_inconsistent", "compliance_reverify"}


def test_missing_test01(tree):
    root, _ = tree
    shutil.rmtree(scenario(root).test_dir("TEST01"))
    assert found(root) - base_expected(root) == {
        ("compliance_missing", str(scenario(root).test_dir("TEST01").relative_to(root)))
    }


def test_wrong_seed(tree):
    root, _ = tree
    run = scenario(root).performance_run
    edits.set_detail_value(run / DETAIL_NAME, "effective_qsl_rng_seed", V60_QSL_SEED)
    edits.set_summary_line(run / SUMMARY_NAME, "qsl_rng_seed", str(V60_QSL_SEED))
    problems = check_tree(root)
    assert f"expected=2085463073848966840, found={V60_QSL_SEED}" in only(problems, "seeds").message
    assert added_rules(root, problems) == {"seeds"}


def test_relaxed_user_conf(tree):
    root, _ = tree
    conf = scenario(root).user_conf
    conf.write_text(
        conf.read_text() + "resnet50.Offline.min_query_count = 100\n*.*.min_duration = 60000\n"
        "resnet50.*.performance_sample_count_override = 64\n"
    )
    problems = check_tree(root)
    relaxed = [p for p in problems if p.rule == "user_conf_relaxed"]
    assert sorted(p.message.split(" lowers ")[1].split(" ")[0] for p in relaxed) == [
        "min_duration",
        "min_query_count",
        "performance_sample_count_override",
    ]
    assert added_rules(root, problems) == {"user_conf_relaxed"}


def test_user_conf_for_another_scenario_is_not_a_relaxation(tree):
    root, _ = tree
    conf = scenario(root).user_conf
    conf.write_text(conf.read_text() + "resnet50.SingleStream.min_duration = 1000\nnot a conf line\n")
    assert added_rules(root) == {"user_conf_unparsable"}


@pytest.mark.parametrize("cut", ["line", "mid-line"])
def test_truncated_detail_log(tree, cut):
    root, _ = tree
    detail = scenario(root).performance_run / DETAIL_NAME
    text = detail.read_text()
    lines = text.splitlines(keepends=True)
    detail.write_text("".join(lines[: len(lines) // 2]) if cut == "line" else text[: len(text) * 2 // 3])
    problems = found(root)
    assert {rule for rule, _ in problems - base_expected(root)} == {"detail_log_truncated"}
    # the run's other checks cannot be made on a cut log: its duration problem goes with it
    assert ("min_duration", str(detail.relative_to(root))) not in problems


def test_garbled_detail_log(tree):
    root, _ = tree
    detail = scenario(root).performance_run / DETAIL_NAME
    lines = detail.read_text().splitlines(keepends=True)
    lines[10] = lines[10].replace('"key"', '"kee', 1)
    detail.write_text("".join(lines))
    assert {rule for rule, _ in found(root) - base_expected(root)} == {"detail_log_corrupt"}


def test_error_line(tree, runs):
    root, _ = tree
    run = scenario(root).performance_run
    error = next(
        line for line in (runs["error"] / DETAIL_NAME).read_text().splitlines() if '"is_error": true' in line
    )
    edits.insert_detail_line(run / DETAIL_NAME, "num_errors", error)
    edits.set_detail_value(run / DETAIL_NAME, "num_errors", 1)
    summary = run / SUMMARY_NAME
    summary.write_text(
        summary.read_text().replace(
            "No errors encountered during test.", "1 ERROR encountered. See detailed log."
        )
    )
    problems = check_tree(root)
    assert "Max test duration reached" in only(problems, "loadgen_errors").message
    # upstream's TEST01/verify_performance.py stops with a NameError on a log with an ERROR line, so the
    # TEST PASS filed before the damage is no longer what it would say
    assert "NameError" in only(problems, "compliance_reverify").message
    assert added_rules(root, problems) == {"loadgen_errors", "compliance_reverify"}


def test_error_line_hidden_from_the_counters(tree, runs):
    root, _ = tree
    run = scenario(root).performance_run
    error = next(
        line for line in (runs["error"] / DETAIL_NAME).read_text().splitlines() if '"is_error": true' in line
    )
    edits.insert_detail_line(run / DETAIL_NAME, "num_errors", error)
    assert added_rules(root) == {"loadgen_errors", "detail_inconsistent", "summary_disagrees", "compliance_reverify"}


def test_missing_system_field(tree):
    root, _ = tree
    s = scenario(root)
    system = json.loads(s.system_json.read_text())
    del system["host_memory_capacity"]
    s.system_json.write_text(json.dumps(system))
    problems = check_tree(root)
    assert only(problems, "system_field_missing").message == "field host_memory_capacity is missing"
    assert added_rules(root, problems) == {"system_field_missing"}


def test_numeric_zero_is_not_meaningful(tree):
    root, _ = tree
    s = scenario(root)
    system = json.loads(s.system_json.read_text())
    system["accelerators_per_node"] = 0
    s.system_json.write_text(json.dumps(system))
    problems = check_tree(root)
    assert (
        "accelerators_per_node requires a meaningful response but is empty"
        in only(problems, "system_field_empty").message
    )
    assert added_rules(root, problems) == {"system_field_empty"}


def test_hash_mismatch(tree):
    root, _ = tree
    txt = scenario(root).accuracy_dir / layout.ACCURACY_TXT_NAME
    digest = read_hash(txt)
    txt.write_text(txt.read_text().replace(digest, "0" * 64))
    assert added_rules(root) == {"accuracy_hash_mismatch"}


def test_kept_log_that_is_not_the_hashed_one(tree):
    root, kept = tree
    s = scenario(root)
    full = layout.kept_accuracy_log(kept, s.relative / "accuracy")
    data = bytearray(full.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1] = b"9" if data[middle : middle + 1] != b"9" else b"8"
    full.write_bytes(bytes(data))
    assert added_rules(root) == {"accuracy_hash_mismatch"}


def test_without_the_kept_logs_a_truncated_log_cannot_be_checked(tree, tmp_path):
    root, kept = tree
    kept.rename(tmp_path / "elsewhere")
    assert found(root) == base_expected(root)  # nothing to compare against, nothing claimed
    told = found(root, kept=tmp_path / "missing")  # a kept root that was named must hold the logs
    assert {rule for rule, _ in told - base_expected(root)} == {"accuracy_kept_missing"}


def test_untruncated_accuracy_log(tree):
    root, kept = tree
    s = scenario(root)
    shutil.copyfile(
        layout.kept_accuracy_log(kept, s.relative / "accuracy"), s.accuracy_dir / layout.ACCURACY_JSON_NAME
    )
    assert added_rules(root) == {"accuracy_log_not_truncated", "accuracy_truncation_mismatch"}


def test_missing_hash_line(tree):
    root, _ = tree
    txt = scenario(root).accuracy_dir / layout.ACCURACY_TXT_NAME
    txt.write_text(txt.read_text().split("\nhash=")[0] + "\n")
    assert added_rules(root) == {"accuracy_hash_missing"}


def test_accuracy_below_target_in_closed(tree):
    root, _ = tree
    txt = scenario(root).accuracy_dir / layout.ACCURACY_TXT_NAME
    txt.write_text(txt.read_text().replace("accuracy=100.000%", "accuracy=75.000%"))
    problems = check_tree(root)
    assert "expected=75.695400" in only(problems, "accuracy_target").message
    assert added_rules(root, problems) == {"accuracy_target"}


def test_every_accuracy_line_must_reach_the_target(tree):
    # accuracy_check.py: each line the pattern matches is tested, not only the first
    root, _ = tree
    txt = scenario(root).accuracy_dir / layout.ACCURACY_TXT_NAME
    txt.write_text(txt.read_text() + "accuracy=70.000%, good=7, total=10\n")
    problems = check_tree(root)
    assert "found=70.0" in only(problems, "accuracy_target").message
    assert added_rules(root, problems) == {"accuracy_target"}


def _test01_nondeterministic(s, baseline: str, compliance: str) -> None:
    """TEST01's deterministic check failed; the submitter files create_accuracy_baseline.sh's two scores."""
    s.verify_accuracy("TEST01").write_text(s.verify_accuracy("TEST01").read_text().replace("TEST PASS", "TEST FAIL"))
    acc = s.test_accuracy_dir("TEST01")
    (acc / "baseline_accuracy.txt").write_text(f"accuracy={baseline}%, good=1, total=1\n")
    (acc / "compliance_accuracy.txt").write_text(f"accuracy={compliance}%, good=1, total=1\n")


def test_test01_fallback_within_the_delta_passes(tree):
    root, _ = tree
    _test01_nondeterministic(scenario(root), "76.30", "76.00")  # 0.39 % apart, the delta is 1 %
    assert added_rules(root) == set()


def test_test01_fallback_outside_the_delta_fails(tree):
    root, _ = tree
    _test01_nondeterministic(scenario(root), "78.00", "76.00")
    assert added_rules(root) == {"compliance_accuracy_failed"}


def test_test01_fallback_needs_exactly_its_files(tree):
    # compliance_check.py: REQUIRED_TEST01_ACC_FILES, compared with files_diff
    root, _ = tree
    s = scenario(root)
    _test01_nondeterministic(s, "76.30", "76.00")
    (s.test_accuracy_dir("TEST01") / "notes.txt").write_text("x")
    problems = check_tree(root)
    assert "notes.txt" in only(problems, "test01_baseline_files").message
    assert added_rules(root, problems) == {"test01_baseline_files"}


def _test01_answers_one_sample_differently(root: Path, kept: Path) -> None:
    """Change one response of TEST01's full accuracy log, and carry the change into the hash and the cut log,
    as a SUT whose answers are not deterministic would have logged it."""
    s = scenario(root)
    cut = s.test_accuracy_dir("TEST01") / layout.ACCURACY_JSON_NAME
    full = layout.kept_accuracy_log(kept, cut.parent.relative_to(root))
    entries = json.loads(full.read_text())
    entries[0]["data"] = (int.from_bytes(bytes.fromhex(entries[0]["data"]), "little") + 1).to_bytes(4, "little").hex().upper()
    full.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
    txt = cut.parent / layout.ACCURACY_TXT_NAME
    txt.write_text(txt.read_text().replace(read_hash(txt), sha256_of(full)))
    cut.write_bytes(truncated(full.read_bytes()))


def test_test01_responses_that_differ_fail_upstreams_check_and_ours(tree):
    root, kept = tree
    _test01_answers_one_sample_differently(root, kept)
    rules = added_rules(root)
    # the filed TEST PASS is no longer what verify_accuracy.py says; our whole-response reading fires too
    assert rules == {"compliance_reverify", "test01_response_mismatch"}


def test_test01_responses_that_differ_within_the_accuracy_delta_pass(tree):
    # the non-deterministic path: upstream's verdict TEST FAIL, the two accuracies within 1 %, so the
    # differing responses are what the rules allow, and our reading of them is not reported either
    root, kept = tree
    _test01_answers_one_sample_differently(root, kept)
    _test01_nondeterministic(scenario(root), "76.30", "76.00")
    assert added_rules(root) == set()


def test_failed_compliance_verdict(tree):
    root, _ = tree
    verify = scenario(root).verify_performance("TEST04")
    verify.write_text(verify.read_text().replace("TEST PASS", "TEST FAIL: Test score invalid"))
    assert added_rules(root) == {"compliance_performance_failed"}


def test_forged_compliance_verdict(tree, runs):
    root, _ = tree
    s = scenario(root)
    # TEST04 logs from another run (the INVALID one) under a verify file that still says TEST PASS
    for name in (DETAIL_NAME, SUMMARY_NAME):
        shutil.copyfile(runs["invalid"] / name, s.test_performance_run("TEST04") / name)
    rules = added_rules(root)
    assert "compliance_reverify" in rules and "compliance_settings" in rules and "result_invalid" in rules


def test_summary_csv(base_tree, tmp_path):
    root, _ = base_tree
    report = check_tree_report(root)
    path = report.write_csv(tmp_path / "summary.csv")
    (row,) = list(csv.DictReader(path.open()))
    s = scenario(root)
    assert row["Organization"] == "MyOrg" and row["Division"] == "closed" and row["Platform"] == s.system
    assert row["Model"] == "resnet" and row["Scenario"] == "Offline" and row["Units"] == "Samples/s"
    assert float(row["Result"]) == pytest.approx(
        float(edits.summary_value(s.performance_run / SUMMARY_NAME, "Samples per second")), rel=1e-5
    )
    assert float(row["Accuracy"]) == 100.0
    assert row["Compliance"] == "TEST01:pass TEST04:pass"
    assert row["Verdict"] == "FAIL" and row["Rules"] == "min_duration" and row["Problems"] == "3"


def test_every_reported_rule_is_catalogued(base_tree):
    problems = check_tree(base_tree[0])
    assert all(p.rule in RULES for p in problems)
    assert all(str(p).startswith(f"{p.path}: [{p.rule}] ") for p in problems)


def test_not_a_tree(tmp_path):
    assert [p.rule for p in check_tree(tmp_path / "nothing")] == ["tree_root"]
    (tmp_path / "stray.txt").write_text("x")
    assert {p.rule for p in check_tree(tmp_path)} == {"tree_extra_entry", "tree_root"}


def test_unknown_round_is_a_config_error(base_tree):
    with pytest.raises(ConfigError, match="v6.1"):
        check_tree(base_tree[0], version="v6.0")


def to_open_division(root: Path, kept: Path, benchmark_dir: str = "resnet") -> Path:
    """Move the tree to the open division, its benchmark directory renamed (kept logs mirror it)."""
    for base in (root, kept):
        (base / "closed").rename(base / "open")
        results = base / "open" / "MyOrg" / "results" / scenario(root).system
        (results / "resnet").rename(results / benchmark_dir)
    s = scenario(root, "open")
    system = json.loads(s.system_json.read_text())
    system["division"] = "open"
    s.system_json.write_text(json.dumps(system))
    return layout.model_mapping_path(root, "open", "MyOrg")


def test_open_division_custom_name_mapped_to_its_benchmark(tree):
    root, kept = tree
    mapping = to_open_division(root, kept, "mlp-784-10")
    mapping.write_text(json.dumps({"mlp-784-10": "resnet"}))
    assert {rule for rule, _ in found(root)} == {"min_duration"}
    mapping.unlink()
    assert {rule for rule, _ in found(root)} == {"benchmark_unknown"}
    mapping.write_text(json.dumps({"mlp-784-10": "alexnet"}))
    assert {rule for rule, _ in found(root)} == {"benchmark_unknown", "model_mapping"}


def test_a_closed_benchmark_directory_upstream_maps_by_its_name(tree):
    root, kept = tree
    for base in (root, kept):  # the kept logs mirror the tree
        results = base / "closed" / "MyOrg" / "results" / scenario(root).system
        (results / "resnet").rename(results / "resnet50-v1.5")
    assert {rule for rule, _ in found(root)} == {"min_duration", "scenarios_missing"}


def test_missing_summary_is_one_problem(tree):
    root, _ = tree
    summary = scenario(root).performance_run / SUMMARY_NAME
    summary.unlink()
    assert found(root) - base_expected(root) == {("summary_corrupt", str(summary.relative_to(root)))}


def _json_edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))


#: one damage each -> the rule it must add (every other check keeps its base-tree verdict or goes quiet)
DAMAGES = {
    "results_missing": lambda s: shutil.rmtree(s.root / "closed" / "MyOrg" / "results"),
    "file_missing": lambda s: s.readme.unlink(),
    "file_empty": lambda s: s.user_conf.write_text(""),
    "scenario_unknown": lambda s: (s.dir.parent / "Bogus").mkdir(),
    "system_json_missing": lambda s: s.system_json.unlink(),
    "system_json_corrupt": lambda s: s.system_json.write_text("{not json"),
    "system_status": lambda s: _json_edit(s.system_json, status="someday"),
    "system_submitter": lambda s: _json_edit(s.system_json, submitter="OtherOrg"),
    "system_division": lambda s: _json_edit(s.system_json, division="open"),
    "measurements_missing": lambda s: s.measurements.unlink(),
    "measurements_corrupt": lambda s: s.measurements.write_text("[1, 2]"),
    "measurements_field_missing": lambda s: _json_edit(s.measurements, retraining=None),
    "measurements_field_empty": lambda s: _json_edit(s.measurements, weight_data_types=""),
    "src_missing": lambda s: shutil.rmtree(s.root / "closed" / "MyOrg" / "src"),
    "accuracy_result": lambda s: (s.accuracy_dir / layout.ACCURACY_TXT_NAME).write_text(
        "no accuracy here\n" + "hash=" + read_hash(s.accuracy_dir / layout.ACCURACY_TXT_NAME) + "\n"),
    "compliance_file_missing": lambda s: s.verify_performance("TEST04").unlink(),
    "compliance_perf_files": lambda s: (s.test_performance_run("TEST04") / "extra.txt").write_text("x"),
    "compliance_accuracy_failed": lambda s: s.verify_accuracy("TEST01").write_text(
        s.verify_accuracy("TEST01").read_text().replace("TEST PASS", "TEST FAIL")),
}


@pytest.mark.parametrize("rule", sorted(DAMAGES))
def test_each_damage_fires_its_own_rule(tree, rule):
    root, _ = tree
    s = scenario(root)
    DAMAGES[rule](s)
    problems = check_tree(root)
    assert rule in {p.rule for p in problems}, [str(p) for p in problems]
    hit = next(p for p in problems if p.rule == rule)
    assert str(hit).startswith(f"{hit.path}: [{rule}] ") and hit.message


def test_warnings_alone_leave_a_tree_accepted(tmp_path, monkeypatch, capsys):
    from audit.checker import tree as tree_module
    from audit.checker.problems import problem
    from mlperf_ext.cli import main

    warning = problem(tmp_path / "TEST04" / "verify_performance.txt", "compliance_tolerance_rule_text", "15% faster")
    error = problem(tmp_path / "accuracy.txt", "accuracy_target", "accuracy not met")
    report = tree_module.TreeReport(tmp_path, "v6.1", None, problems=[warning])
    assert warning.is_warning and report.ok and report.errors == [] and "warning [" in str(warning)
    monkeypatch.setattr(tree_module, "check_tree_report", lambda *_a: report)
    assert main(["submission", "check", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "0 problem(s), 1 warning(s)" in err and "only warnings: MLCommons' scripts accept this tree" in err
    report.problems.append(error)
    assert not report.ok and main(["submission", "check", str(tmp_path)]) == 1


def test_a_test04_run_without_its_audit_config_is_reported_once_per_rule(tree):
    # the run's own checks see it in the detail log; the verification's finding says the same, so it is not repeated
    root, _ = tree
    s = scenario(root)
    for name in (DETAIL_NAME, SUMMARY_NAME):
        shutil.copyfile(s.performance_run / name, s.test_performance_run("TEST04") / name)
    problems = check_tree(root)
    settings = [p for p in problems if p.rule == "compliance_settings"]
    assert settings and all(p.path.parent == s.test_performance_run("TEST04") for p in settings)
    assert added_rules(root, problems) == {"compliance_settings"}
