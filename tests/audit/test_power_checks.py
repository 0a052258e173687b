"""The checker's power checks (audit.checker.power) on a power result built around real LoadGen runs
(tests/audit/power_tree.py writes what PTDaemon and power-dev's client/server would), and on copies
damaged one way each: every defect gets exactly its rule."""

from __future__ import annotations

import copy
import shutil
import time
import uuid
from pathlib import Path

import pytest

from audit.checker import RULES, check_tree
from audit.checker.power import PowerFindings, power_findings, power_metric
from audit.checker.runlogs import load_run

from . import power_tree, tree_builder
from .loadgen_resnet_run import finish, start
from .power_tree import add_ptd_line, edit_json, ptd_time, rehash, spl_text

BUSY_S = "2.0"  # as conftest's runs: the SUT's time per Offline query sets the run's duration
POWER_RULES = {rule for rule in RULES if rule.startswith("power_")}


@pytest.fixture(scope="module")
def power_runs(tmp_path_factory) -> dict[str, Path]:
    """Two real LoadGen performance runs, ranging then testing, a PTDaemon stage apart."""
    base = tmp_path_factory.mktemp("power_runs")
    done = {}
    for stage in power_tree.STAGES:
        done[stage] = finish(start("performance", base / stage, "--busy-s", BUSY_S), base / stage)
        time.sleep(power_tree.STAGE_GAP_S if stage == "ranging" else 0)
    return done


def _keyed(root: Path) -> set[tuple[str, str]]:
    """(rule, path relative to the root) of each problem of the tree."""
    return {
        (p.rule, str(p.path.relative_to(root) if p.path.is_relative_to(root) else p.path.name))
        for p in check_tree(root)
    }


def set_phase(session: dict, stage: str, index: int, moment: float) -> None:
    """Move one phase checkpoint (wall clock) of a client.json or server.json."""
    session["phases"][stage][index][0] = moment


@pytest.fixture(scope="module")
def power_base(base_tree, power_runs, tmp_path_factory):
    """(root, kept, spec, the problems of the tree without power): the base tree made a power result."""
    root, kept = tree_builder.copy_tree(*base_tree, tmp_path_factory.mktemp("power_tree"))
    paths = tree_builder.scenario(root)
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt"):  # the testing run is run_1
        shutil.copyfile(power_runs["testing"] / name, paths.performance_run / name)
    without_power = _keyed(root)
    spec = power_tree.add_power(paths, power_runs["ranging"], power_runs["testing"])
    return root, kept, spec, without_power


@pytest.fixture
def ptree(power_base, tmp_path):
    """A private copy of the power tree: (root, scenario paths, perf dir, spec)."""
    root, kept, spec, _ = power_base
    root, _kept = tree_builder.copy_tree(root, kept, tmp_path)
    paths = tree_builder.scenario(root)
    return root, paths, paths.performance_run.parent, copy.deepcopy(spec)


def fired(power_base, root: Path) -> set[str]:
    """The rules that fire beyond those of the same tree without power."""
    return {rule for rule, _ in _keyed(root) - power_base[3]}


def messages(root: Path, rule: str) -> list[str]:
    return [p.message for p in check_tree(root) if p.rule == rule]


def findings(paths) -> PowerFindings:
    logs, _ = load_run(paths.performance_run)
    return power_findings(paths, "Offline", {}, logs)


# ---------------------------------------------------------------- whole trees


def test_a_tree_without_power_gets_no_power_problem(base_tree):
    root, _kept = base_tree
    assert not {p.rule for p in check_tree(root)} & POWER_RULES
    assert findings(tree_builder.scenario(root)) == PowerFindings(units="Watts")


def test_a_complete_power_result_passes_every_power_check(power_base):
    root, _kept, spec, without_power = power_base
    assert _keyed(root) == without_power
    found = findings(tree_builder.scenario(root))
    assert found.problems == []
    assert found.units == "Watts"
    assert found.metric == pytest.approx(spec.watts["testing"], abs=0.16)


def test_the_summary_csv_gives_a_power_result_a_second_row(power_base, tmp_path):
    # upstream's results.py: the same row again with the power metric as Result and the power units
    import csv

    from audit.checker import check_tree_report

    root, _kept, spec, _ = power_base
    report = check_tree_report(root)
    performance, power = csv.DictReader(report.write_csv(tmp_path / "summary.csv").open())
    assert performance["Units"] == "Samples/s" and power["Units"] == "Watts"
    assert float(power["Result"]) == pytest.approx(spec.watts["testing"], abs=0.16)
    assert {k: v for k, v in performance.items() if k not in ("Result", "Units")} == {
        k: v for k, v in power.items() if k not in ("Result", "Units")}


def test_the_power_rules_are_catalogued_in_one_block():
    names = list(RULES)
    at = names.index("power_files")
    assert names[at : at + len(POWER_RULES)] == [n for n in names if n in POWER_RULES]


def test_power_metric_follows_upstream_per_scenario():
    window = (100.0, 110.0)  # 10 s at 50 W = 500 J
    assert power_metric("Offline", "Offline", 50.0, window, 1) == 50.0
    assert power_metric("Server", "Server", 50.0, window, 1) == 50.0
    assert power_metric("SingleStream", "SingleStream", 50.0, window, 1000) == pytest.approx(500.0)
    assert power_metric("MultiStream", "SingleStream", 50.0, window, 1000) == pytest.approx(4000.0)
    assert power_metric("SingleStream", "SingleStream", 50.0, window, None) is None


# ---------------------------------------------------------------- file lists and the system


def test_an_extra_file_in_run_1_is_a_file_list_mismatch(power_base, ptree):
    root, paths, perf, _ = ptree
    (perf / "run_1" / "ptd_out.txt").write_text("Power: 41.6\nUncertainty: 0.3%\n")
    assert fired(power_base, root) == {"power_files"}
    assert "ptd_out.txt" in messages(root, "power_files")[0]


def test_a_missing_ranging_directory_is_a_file_list_problem(power_base, ptree):
    root, paths, perf, _ = ptree
    shutil.rmtree(perf / "ranging")
    assert "power_files" in fired(power_base, root)
    assert any("ranging is not a directory" in m for m in messages(root, "power_files"))


def test_a_power_result_needs_a_design_power(power_base, ptree):
    root, paths, perf, _ = ptree
    paths.system_json.with_name(f"{paths.system}_power.yaml").unlink()
    assert fired(power_base, root) == {"power_nameplate"}


def test_system_power_capacity_stands_for_the_nameplate(power_base, ptree):
    root, paths, perf, _ = ptree
    paths.system_json.with_name(f"{paths.system}_power.yaml").unlink()
    edit_json(paths.system_json, lambda d: d.update(system_power_capacity=800))
    assert fired(power_base, root) == set()


def test_a_nameplate_that_is_not_yaml_is_refused(power_base, ptree):
    root, paths, perf, _ = ptree
    paths.system_json.with_name(f"{paths.system}_power.yaml").write_text("Chassis: [PSUs: {\n")
    assert fired(power_base, root) == {"power_nameplate_corrupt"}


def test_the_system_must_have_the_power_fields(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(paths.system_json, lambda d: d.pop("power_supply_details"))
    assert fired(power_base, root) == {"power_system_fields"}
    assert "power_supply_details" in messages(root, "power_system_fields")[0]


def test_the_analyzer_table_is_required(power_base, ptree):
    root, paths, perf, _ = ptree
    (paths.dir.parent.parent / "analyzer_table.md").unlink()
    assert fired(power_base, root) == {"power_measure_files"}


# ---------------------------------------------------------------- the Power WG's checks


def test_client_json_without_its_phases_is_refused(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "client.json", lambda d: d.pop("phases"))
    assert fired(power_base, root) == {"power_session_json"}


def test_sources_of_a_modified_power_dev_are_refused(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "server.json", lambda d: d["sources"].update({"lib/server.py": "0" * 40}))
    assert fired(power_base, root) == {"power_sources"}
    assert "lib/server.py" in messages(root, "power_sources")[0]


@pytest.mark.parametrize(
    ("index", "field", "value", "says"),
    [
        (1, "reply", "YokogawaWT310,version=1.9.2-ab12cd34,Jan 01 2021", "PTD version '1.9.2'"),
        (1, "reply", "YokogawaWT1800,version=1.11.1-8f2bd1d5,Jul 25 2023", "Power meter 'YokogawaWT1800'"),
        (14, "reply", "Error: measurement already running", "Wrong reply for 'Go,1000,0,"),
        (23, "cmd", "SR,A,Auto", "Do not set Amps range as initial"),
    ],
)
def test_ptd_commands_and_replies_are_checked(power_base, ptree, index, field, value, says):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "server.json", lambda d: d["ptd_messages"][index].update({field: value}))
    assert fired(power_base, root) == {"power_ptd_messages"}
    assert any(says in m for m in messages(root, "power_ptd_messages"))


def test_client_and_server_must_name_the_same_uuids(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "client.json", lambda d: d["uuid"].update(server=str(uuid.uuid4())))
    assert fired(power_base, root) == {"power_uuid"}


def test_client_and_server_must_name_the_same_session(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "client.json", lambda d: d.update(session_name="2026-01-01_00-00-00_other"))
    assert fired(power_base, root) == {"power_session_name"}


def test_client_and_server_clocks_must_agree_within_800_ms(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(
        perf / "power" / "server.json",
        lambda d: set_phase(d, "testing", 0, d["phases"]["testing"][0][0] + 1.5),
    )
    assert fired(power_base, root) == {"power_phases"}
    assert "1 phase of run_1 mode" in messages(root, "power_phases")[0]


def test_loadgen_must_run_inside_the_testing_stage(power_base, ptree):
    root, paths, perf, spec = ptree
    late = spec.windows["testing"][0] + 0.5  # the stage "started" after LoadGen's power_begin
    for side in ("client", "server"):
        edit_json(perf / "power" / f"{side}.json", lambda d: set_phase(d, "testing", 1, late))
    assert fired(power_base, root) == {"power_phases"}
    assert messages(root, "power_phases") == [
        "Loadgen test begin time is not within testing mode time interval."
    ]


def test_testing_power_far_below_ranging_power_is_refused(power_base, ptree):
    root, paths, perf, spec = ptree
    (perf / "run_1" / "spl.txt").write_text(spl_text(spec, "testing", watts=38.0))
    rehash(perf)
    assert fired(power_base, root) == {"power_ranging_delta"}


def test_client_and_server_must_record_the_same_conversation(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "server.json", lambda d: d["messages"][4].update(reply="Error"))
    assert fired(power_base, root) == {"power_messages"}


def test_a_file_changed_after_the_session_is_refused(power_base, ptree):
    root, paths, perf, _ = ptree
    with (perf / "power" / "server.log").open("a") as f:
        f.write("edited afterwards\n")
    assert fired(power_base, root) == {"power_results_checksum"}
    assert "power/server.log" in messages(root, "power_results_checksum")[0]


def test_the_ptd_log_needs_uncertainty_checking_before_ranging(power_base, ptree):
    root, paths, perf, spec = ptree
    log = perf / "power" / "ptd_logs.txt"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines() if "Uncertainty" not in line))
    rehash(perf)
    assert fired(power_base, root) == {"power_ptd_log"}


def test_an_error_during_the_testing_stage_is_refused(power_base, ptree):
    root, paths, perf, spec = ptree
    add_ptd_line(perf, spec.windows["testing"][0] + 1.0, "ERROR: Bad watts reading nan from WT310")
    rehash(perf)
    assert fired(power_base, root) == {"power_ptd_errors"}


def test_an_uncertainty_warning_under_load_is_refused(power_base, ptree):
    root, paths, perf, spec = ptree
    message = "WARNING: Uncertainty 1.42%, which is above 1.00% limit for the last sample!"
    add_ptd_line(perf, spec.windows["testing"][0] + 1.0, message)
    rehash(perf)
    assert fired(power_base, root) == {"power_ptd_errors"}


def test_errors_while_ranging_are_accepted(power_base, ptree):
    root, paths, perf, spec = ptree
    add_ptd_line(
        perf, spec.windows["ranging"][0] + 1.0, "ERROR: Current appears to be too high for set range"
    )
    add_ptd_line(perf, spec.windows["testing"][1] + 1.0, "ERROR: USB.")
    rehash(perf)
    assert fired(power_base, root) == set()


def test_an_unsupported_device_type_is_refused(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "server.json", lambda d: d["ptd_config"][0].update(device_type=0))
    assert fired(power_base, root) == {"power_ptd_config"}


def test_a_server_in_debug_mode_is_refused(power_base, ptree):
    root, paths, perf, _ = ptree
    edit_json(perf / "power" / "server.json", lambda d: d.update(debug=True))
    assert fired(power_base, root) == {"power_debug"}


# ---------------------------------------------------------------- spl.txt and the ranging run


def test_samples_outside_loadgens_window_are_no_samples(power_base, ptree):
    root, paths, perf, spec = ptree
    (perf / "run_1" / "spl.txt").write_text(spl_text(spec, "testing", shift_s=-10.0))
    rehash(perf)
    assert fired(power_base, root) == {"power_no_samples"}


def test_an_spl_line_that_is_not_a_sample_is_refused(power_base, ptree):
    root, paths, perf, spec = ptree
    spl = perf / "run_1" / "spl.txt"
    spl.write_text(spl.read_text() + f"Time,{ptd_time(spec.windows['testing'][1])},Watts,nan W\n")
    rehash(perf)
    assert fired(power_base, root) == {"power_spl_corrupt"}


def test_samples_of_another_session_are_refused(power_base, ptree):
    root, paths, perf, spec = ptree
    (perf / "ranging" / "spl.txt").write_text(
        spl_text(spec, "ranging", mark="2025-01-01_00-00-00_old_ranging")
    )
    rehash(perf)
    assert fired(power_base, root) == {"power_spl_mark"}


def test_the_ranging_run_must_be_the_testing_runs_scenario(power_base, ptree, runs):
    root, paths, perf, spec = ptree
    for name in ("mlperf_log_detail.txt", "mlperf_log_summary.txt"):  # a SingleStream run (100 ms)
        shutil.copyfile(runs["error"] / name, perf / "ranging" / name)
    spec.windows["ranging"] = power_tree.loadgen_window(perf / "ranging" / "mlperf_log_detail.txt")
    _rebuild_ranging_stage(perf, spec)
    assert fired(power_base, root) == {"power_ranging_run"}


def _rebuild_ranging_stage(perf: Path, spec) -> None:
    """The session's ranging files around a new ranging window (the ranging stage then comes first)."""
    begin, end = spec.windows["ranging"]  # a short run: put a 1 Hz sample mid-window
    (perf / "ranging" / "spl.txt").write_text(spl_text(spec, "ranging", shift_s=(end - begin) / 2 - 0.3))
    power_tree.write_ptd_log(perf / "power" / "ptd_logs.txt", power_tree.ptd_log_lines(spec))
    for side, skew in (("client", 0.0), ("server", power_tree.SERVER_SKEW_S)):
        edit_json(
            perf / "power" / f"{side}.json",
            lambda d, skew=skew: d.update(phases=power_tree.phases(spec, skew)),
        )
    rehash(perf)
