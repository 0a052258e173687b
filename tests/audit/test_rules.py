"""The round's rules against what the pinned LoadGen really does, and the audit.config texts."""

from __future__ import annotations

import pytest

from audit.rules import V6_1, audit_config_text, round_rules
from mlperf_ext.errors import ConfigError

from . import edits


def test_seeds_and_resnet_settings_are_those_of_the_embedded_mlperf_conf(runs):
    detail = runs["performance"] / "mlperf_log_detail.txt"
    for key, seed in V6_1.seeds.items():
        assert edits.detail_value(detail, f"effective_{key}") == seed
    assert edits.detail_value(detail, "loadgen_version").startswith(V6_1.loadgen_version)
    resnet = V6_1.benchmark("resnet")
    assert edits.detail_value(detail, "effective_performance_sample_count") == resnet.performance_sample_count
    assert edits.detail_value(detail, "effective_samples_per_query") == resnet.offline_min_samples_per_query
    single = runs["error"] / "mlperf_log_detail.txt"
    assert edits.detail_value(single, "effective_target_latency_percentile") == pytest.approx(
        V6_1.target_latency_percentile["SingleStream"]
    )


def test_audit_configs_are_applied_by_loadgen(runs):
    t01 = runs["TEST01"] / "mlperf_log_detail.txt"
    assert edits.detail_value(t01, "effective_accuracy_log_rng_seed") == 720381539243781796
    assert edits.detail_value(t01, "effective_accuracy_log_sampling_target") == 4096
    t04 = runs["TEST04"] / "mlperf_log_detail.txt"
    assert edits.detail_value(t04, "effective_performance_issue_same") == 1
    assert edits.detail_value(t04, "effective_performance_issue_same_index") == 3


def test_audit_config_text_names_its_source():
    assert "compliance/TEST01/resnet50/audit.config" in audit_config_text("TEST01", "resnet")
    assert "*.Offline.performance_issue_same = 1" in audit_config_text("TEST04", "resnet")
    with pytest.raises(ConfigError, match="fix:"):
        audit_config_text("TEST04", "yolo-99")  # yolo takes TEST01 only
    with pytest.raises(ConfigError, match="fix:"):
        audit_config_text("TEST06", "resnet")


def test_benchmark_names_and_rounds():
    assert V6_1.benchmark("resnet50").name == "resnet"
    assert V6_1.benchmark("my-mlp", {"my-mlp": "resnet"}).name == "resnet"
    assert V6_1.benchmark("resnet").accuracy_target == pytest.approx(75.6954)
    with pytest.raises(ConfigError, match="fix:"):
        V6_1.benchmark("gpt-9")
    with pytest.raises(ConfigError, match="fix:"):
        round_rules("v4.0")


@pytest.mark.parametrize(
    ("name", "official"),
    [
        ("resnet50-v1.5", "resnet"),  # configuration.py get_mlperf_model's guess: "resnet50" in the name
        ("resnet50_int8", "resnet"),
        ("efficientnet-lite0", "resnet"),
        ("mobilenetv2-1.0", "resnet"),
        ("bert-99", None),  # guessed, but not a benchmark this checker carries
        ("resnet18", None),
        ("mlp-784-10", None),
    ],
)
def test_names_upstream_guesses(name, official):
    found = V6_1.find_benchmark(name)
    assert (found.name if found else None) == official
