"""check_run (the per-run verdict the results store records) on real LoadGen runs."""

from __future__ import annotations

import pytest

from audit.checker import check_run
from mlperf_ext.errors import ConfigError


def rules_of(problems) -> set[str]:
    return {p.rule for p in problems}


def test_short_submission_run_fails_only_on_duration(runs):
    problems = check_run(runs["performance"], "resnet", "closed")
    assert [p.rule for p in problems] == ["min_duration"]
    assert problems[0].message == "Test duration less than 600s in user config. expected=600000, found=200"
    assert problems[0].path == runs["performance"] / "mlperf_log_detail.txt"


def test_invalid_run(runs):
    problems = check_run(runs["invalid"], "resnet", "closed")
    assert rules_of(problems) == {"result_invalid", "min_duration"}
    assert "minimum duration not met" in next(p.message for p in problems if p.rule == "result_invalid")


def test_run_with_an_error_line(runs):
    problems = check_run(runs["error"], "resnet", "closed", scenario="SingleStream")
    assert "loadgen_errors" in rules_of(problems)
    assert "Max test duration reached" in next(p.message for p in problems if p.rule == "loadgen_errors")
    assert rules_of(problems) <= {"loadgen_errors", "result_invalid", "min_duration", "early_stopping"}


def test_accuracy_run(runs):
    assert check_run(runs["accuracy"], "resnet", "closed", mode="accuracy") == []
    assert rules_of(check_run(runs["accuracy"], "resnet", "closed")) == {"run_mode"}
    assert rules_of(check_run(runs["performance"], "resnet", "closed", mode="accuracy")) == {"run_mode"}


def test_compliance_runs_are_not_submission_runs(runs):
    assert rules_of(check_run(runs["TEST01"], "resnet", "closed")) == {"issue_settings", "min_duration"}
    test04 = check_run(runs["TEST04"], "resnet", "closed")
    assert [p.rule for p in test04].count("issue_settings") == 2  # audit.config found, one sample repeated


def test_compliance_runs_need_their_audit_config(runs):
    assert rules_of(check_run(runs["TEST01"], "resnet", "closed", compliance_test="TEST01")) == {
        "min_duration"
    }
    assert rules_of(check_run(runs["TEST04"], "resnet", "closed", compliance_test="TEST04")) == {
        "min_duration"
    }
    plain = check_run(runs["performance"], "resnet", "closed", compliance_test="TEST01")
    assert rules_of(plain) == {"compliance_settings", "min_duration"}
    swapped = check_run(runs["TEST01"], "resnet", "closed", compliance_test="TEST04")
    assert {
        p.message.split(" needs ")[1].split(" =")[0] for p in swapped if p.rule == "compliance_settings"
    } == {"performance_issue_same", "performance_issue_same_index"}


def test_inferred_scenario_only_for_edge(runs):
    wrong = check_run(runs["performance"], "resnet", "closed", scenario="SingleStream", system_type="edge")
    assert "scenario_mismatch" in rules_of(wrong)  # an Offline run cannot stand for SingleStream
    assert "scenario_mismatch" not in rules_of(
        check_run(runs["error"], "resnet", "closed", scenario="Offline", system_type="edge")
    )
    assert "scenario_mismatch" in rules_of(
        check_run(runs["error"], "resnet", "closed", scenario="Offline", system_type="datacenter")
    )


def test_missing_logs(tmp_path):
    assert rules_of(check_run(tmp_path, "resnet", "open")) == {"detail_log_corrupt"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"benchmark": "resnet51"},
        {"division": "secret"},
        {"mode": "fast"},
        {"version": "v5.1"},
        {"scenario": "Batch"},
        {"compliance_test": "TEST05"},
    ],
)
def test_bad_arguments(runs, kwargs):
    args = {"benchmark": "resnet", "division": "closed", **kwargs}
    with pytest.raises(ConfigError, match="fix:"):
        check_run(runs["performance"], **args)
