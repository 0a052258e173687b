"""What a new user hits, through the real CLI in a subprocess: signals, environment errors, limits,
settings out of range, INVALID rows, and the way from a row to its evidence."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.store import ResultsStore
from tiers.runner import layout
from tiers.runner.launch import PROJECT_ROOT

ENV = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
CLI = [sys.executable, "-m", "mlperf_ext.cli"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def assert_one_line_refusal(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlperf-ext: error: ") and "fix:" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def point_args(model: Path, work: Path, *extra: str) -> list[str]:
    return ["run", "--model", str(model), "--dataset", "mnist", "--backend", "onnxruntime", "--scenario", "Offline",
            "--workdir", str(work), *extra]


def nothing_written(work: Path) -> bool:
    return not (work / layout.STORE_NAME).exists() and not (work / layout.RUNS_DIR).exists()


def null_spec(tmp_path: Path, points: int = 4, duration_ms: int = 1000) -> Path:
    """`points` null-backend Offline points (large batches: the harness's fastest path, ~2 s each)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"models: [none.onnx]\ndataset: mnist\nbackend: null\nscenario: Offline\n"
                    f"batch: {[256 * (k + 1) for k in range(points)]}\nsettings: {{min_duration_ms: {duration_ms}}}\n")
    return spec


def children_of(work: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "tiers.runner.child"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(work) in line]


def wait_for_child(work: Path, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while not children_of(work):
        assert time.monotonic() < deadline, "no child started"
        time.sleep(0.05)


# -- 1. signals and orphans -----------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_driver_leaves_no_child_and_a_rerun_stores_every_point_once(tmp_path, sig):
    spec, work = null_spec(tmp_path), tmp_path / "work"
    driver = subprocess.Popen([*CLI, "run", str(spec), "--workdir", str(work)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=ENV, start_new_session=True)
    wait_for_child(work)
    driver.send_signal(sig)
    driver.wait(timeout=30)
    if sig == signal.SIGTERM:
        assert driver.returncode == 130 and "interrupted" in driver.stderr.read().decode()
    deadline = time.monotonic() + 10
    while children_of(work) and time.monotonic() < deadline:  # PDEATHSIG is delivered at once; reaping may lag
        time.sleep(0.05)
    assert children_of(work) == []
    again = cli("run", str(spec), "--workdir", str(work))
    assert again.returncode == 0, again.stderr
    rows = ResultsStore(layout.store_path(work)).rows(latest_only=False)
    keys = [r["point_key"] for r in rows]
    assert len(keys) == len(set(keys)) == 4 and all(r["status"] == "ok" for r in rows)


def test_a_second_driver_on_the_same_workdir_is_refused(tmp_path):
    spec, work = null_spec(tmp_path, points=2, duration_ms=3000), tmp_path / "work"
    first = subprocess.Popen([*CLI, "run", str(spec), "--workdir", str(work)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=ENV)
    try:
        wait_for_child(work)
        second = cli("run", str(spec), "--workdir", str(work))
        assert_one_line_refusal(second, "is in use by another mlperf-ext run", f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)


def test_a_result_its_driver_never_stored_is_stored_on_the_next_start(tmp_path):
    spec, work = null_spec(tmp_path, points=1, duration_ms=200), tmp_path / "work"
    assert cli("run", str(spec), "--workdir", str(work)).returncode == 0
    with sqlite3.connect(layout.store_path(work)) as conn:  # as if the driver died before its INSERT
        conn.execute("DELETE FROM runs")
    (run_dir,) = (work / layout.RUNS_DIR).iterdir()
    stray = work / layout.RUNS_DIR / "20261201T000000000000-0000000000"
    stray.mkdir()  # a child killed before it wrote a result
    (stray / layout.POINT_FILE).write_text((run_dir / layout.POINT_FILE).read_text())
    again = cli("run", str(spec), "--workdir", str(work))
    assert again.returncode == 0, again.stderr
    assert f"recovered run {run_dir.name} (ok): stored" in again.stderr
    assert "stored (ok), skipped" in again.stderr  # the recovered row settles the point: nothing reruns
    assert f"run dir {stray} was not stored" in again.stderr and (stray / layout.DISCARDED_MARK).exists()
    [row] = ResultsStore(layout.store_path(work)).rows(latest_only=False)
    assert row["run_id"] == run_dir.name and "the child finished after its driver died" in row["notes"]


# -- 2. environment errors --------------------------------------------------------------------------------
def test_workdir_naming_a_file(mlp_model, tmp_path):
    work = tmp_path / "afile"
    work.write_text("not a directory")
    assert_one_line_refusal(cli(*point_args(mlp_model, work)), "is a file, not a directory")
    assert_one_line_refusal(cli("results", "--workdir", str(work)), "is a file, not a directory")
    assert work.read_text() == "not a directory"


@pytest.mark.parametrize("command", ["results", "run"])
def test_a_corrupt_store_is_refused_and_kept(mlp_model, tmp_path, command):
    work = tmp_path / "work"
    work.mkdir()
    store = work / layout.STORE_NAME
    store.write_bytes(b"this is not an SQLite database" * 100)
    args = ["results", "--workdir", str(work)] if command == "results" else point_args(mlp_model, work)
    assert_one_line_refusal(cli(*args), "is not a readable results store")
    assert store.read_bytes() == b"this is not an SQLite database" * 100
    assert not (work / layout.RUNS_DIR).exists()


def test_a_read_only_workdir(mlp_model, tmp_path):
    work = tmp_path / "ro"
    work.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: only a read-only mount stops it
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(work)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("running as root without the right to mount a read-only filesystem")
    else:
        work.chmod(0o555)
    try:
        assert_one_line_refusal(cli(*point_args(mlp_model, work)), "read-only")
        assert list(work.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(work)], check=True)
        else:
            work.chmod(0o755)


def test_a_backend_that_is_not_a_class(mlp_model, tmp_path):
    work = tmp_path / "w"
    assert_one_line_refusal(cli(*[a if a != "onnxruntime" else "os:path" for a in point_args(mlp_model, work)]),
                            "not a class")
    assert_one_line_refusal(cli(*[a if a != "onnxruntime" else "tests.harness.faulty_backends:NotABackend"
                                  for a in point_args(mlp_model, work)]), "lacks", "Backend protocol")
    assert nothing_written(work)


# -- 3. unbounded resources -----------------------------------------------------------------------------
@pytest.mark.parametrize("option,value,needle", [("--streams", "1000", "streams 1000 is more than"),
                                                 ("--threads", "100000", "threads 100000 is more than"),
                                                 ("--batch", "100000000", "GiB per input batch")])
def test_unbounded_resources_are_refused_unless_forced(mlp_model, tmp_path, option, value, needle):
    work = tmp_path / "w"
    assert_one_line_refusal(cli(*point_args(mlp_model, work, option, value)), needle, "--force-limits")
    assert nothing_written(work)
    if option != "--batch":  # with the limits lifted the same point passes validation (dry run: nothing runs)
        forced = cli(*point_args(mlp_model, work, option, value, "--force-limits", "--dry-run"))
        assert forced.returncode == 0 and "to run" in forced.stdout, forced.stderr


# -- 4. settings checked in the parent ----------------------------------------------------------------
@pytest.mark.parametrize("setting,needle", [("min_duration_ms=99999999999999999999", "uint64_t"),
                                            ("min_query_count=-5", "uint64_t"),
                                            ("offline_expected_qps=1e300", "limited to 5,000,000"),
                                            ("offline_expected_qps=abc", "must be a number")])
def test_settings_out_of_range_are_refused_before_anything_runs(mlp_model, tmp_path, setting, needle):
    work = tmp_path / "w"
    assert_one_line_refusal(cli(*point_args(mlp_model, work, "--setting", setting)), needle)
    assert nothing_written(work)


@pytest.mark.parametrize("args,needle", [(["run", "--batch", "x"], "invalid int value"),
                                         (["nosuchcommand"], "invalid choice")])
def test_argument_errors_are_one_line_without_the_usage_block(args, needle, tmp_path):
    assert_one_line_refusal(cli(*args, "--workdir", str(tmp_path / "w")) if args[0] == "run" else cli(*args), needle)
    assert not (tmp_path / "w").exists()


# -- 5 and 6. INVALID rows, and from a row to its evidence -------------------------------------------------
@pytest.fixture(scope="module")
def invalid_and_ok(tmp_path_factory, mlp_model):
    work = tmp_path_factory.mktemp("evidence")
    ran = [cli(*point_args(mlp_model, work, "--batch", "8", "--setting", "min_duration_ms=200")),
           cli(*point_args(mlp_model, work, "--batch", "8", "--setting", "min_duration_ms=200",
                           "--setting", "offline_expected_qps=10"))]  # the user's hint: far too low, never rerun
    return work, ran


def test_run_prints_each_points_run_id_and_directory(invalid_and_ok):
    work, ran = invalid_and_ok
    assert ran[0].returncode == 0 and ran[1].returncode == 3, (ran[0].stderr, ran[1].stderr)  # 3: nothing ended ok
    rows = ResultsStore(layout.store_path(work)).rows()
    for proc, row in zip(ran, rows):
        assert f"run {row['run_id']}: {row['run_dir']}" in proc.stderr


def test_invalid_rows_say_why_everywhere_and_are_counted_apart(invalid_and_ok):
    work, ran = invalid_and_ok
    assert "INVALID" in ran[1].stderr and "minimum duration not met" in ran[1].stderr
    statuses = [r["status"] for r in ResultsStore(layout.store_path(work)).rows()]
    assert statuses == ["ok", "invalid"]
    table = cli("results", "--workdir", str(work), "--wide")
    assert table.returncode == 0
    assert "INVALID*" in table.stdout and "invalid: minimum duration not met" in table.stdout
    narrow = subprocess.run([*CLI, "results", "--workdir", str(work)], capture_output=True, text=True,
                            env={**ENV, "COLUMNS": "80", "FORCE_COLOR": "1"})  # a terminal 80 columns wide
    assert "invalid: minimum duration not met" in narrow.stdout  # the reason survives a narrow terminal


def test_results_show_a_run(invalid_and_ok):
    work, _ran = invalid_and_ok
    rows = ResultsStore(layout.store_path(work)).rows()
    shown = cli("results", "show", rows[1]["run_id"][-10:], "--workdir", str(work))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert f"run {rows[1]['run_id']}" in out and "INVALID: minimum duration not met" in out
    assert "compute (batch 8" in out and "runtime: onnxruntime" in out and "executed: fp32" in out
    assert "batches formed by the native dispatcher:" in out  # which dispatcher ran is part of the evidence
    assert str(Path(rows[1]["run_dir"]) / "loadgen" / "mlperf_log_detail.txt") in out
    assert_one_line_refusal(cli("results", "show", "nosuchrun", "--workdir", str(work)), "no run 'nosuchrun'")


def test_results_table_has_a_run_column(invalid_and_ok):
    work, _ran = invalid_and_ok
    out = cli("results", "--workdir", str(work), "--wide").stdout
    narrow = subprocess.run([*CLI, "results", "--workdir", str(work)], capture_output=True, text=True,
                            env={**ENV, "COLUMNS": "80", "FORCE_COLOR": "1"}).stdout  # the id survives 80 columns
    for row in ResultsStore(layout.store_path(work)).rows():
        assert row["run_id"][-10:] in out and row["run_id"][-10:] in narrow
    assert "system/s" in narrow  # and so does the headline figure


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("mlperf-ext ") and "mlcommons-loadgen 6.0.17" in proc.stdout


def test_dry_run_lists_points_without_running_any(mlp_model, invalid_and_ok, tmp_path):
    work, _ran = invalid_and_ok
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"models: [{mlp_model}]\ndataset: mnist\nbackends: [onnxruntime]\nscenario: Offline\nbatch: [8, 16]\n"
                    "settings: {min_duration_ms: 200}\n")
    before = ResultsStore(layout.store_path(work)).rows(latest_only=False)
    dry = cli("run", str(spec), "--workdir", str(work), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.strip().splitlines()
    assert lines[0].startswith("stored (ok)") and "b8" in lines[0] and lines[1].startswith("to run") and "b16" in lines[1]
    assert ResultsStore(layout.store_path(work)).rows(latest_only=False) == before
    fresh = tmp_path / "fresh"
    assert cli("run", str(spec), "--workdir", str(fresh), "--dry-run").returncode == 0 and nothing_written(fresh)
    refused = cli(*point_args(mlp_model, fresh, "--exec-precision", "fp16", "--dry-run"))
    assert refused.returncode == 0 and nothing_written(fresh), refused.stderr
    [line] = refused.stdout.strip().splitlines()  # the state, the point, then why
    assert line.startswith("refused ") and " exec fp16: onnxruntime cannot execute in 'fp16'" in line


def test_a_refusal_that_cannot_change_is_stored_once(mlp_model, tmp_path):
    work = tmp_path / "w"
    runs = [cli(*point_args(mlp_model, work, "--exec-precision", "fp16")) for _ in range(3)]
    assert all(r.returncode == 3 for r in runs), runs[0].stderr  # stored or not, the point was not measured
    assert "REFUSED" in runs[0].stderr and "stored (refused), skipped" in runs[2].stderr
    rows = ResultsStore(layout.store_path(work)).rows(latest_only=False)
    assert [r["status"] for r in rows] == ["refused"] and not (work / "runs").exists()


# -- round 2: exit statuses, a Ray address with no cluster ------------------------------------------------
def test_the_exit_status_says_whether_anything_was_measured(mlp_model, tmp_path):
    refused = cli(*point_args(mlp_model, tmp_path / "a", "--exec-precision", "bf16"))
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == "mlperf-ext: no point ended ok (1 refused); exit status 3"
    empty = tmp_path / "empty"
    empty.mkdir()
    np.save(empty / "samples.npy", np.zeros((0, 784), np.float32))
    np.save(empty / "labels.npy", np.zeros(0, np.int64))
    args = point_args(mlp_model, tmp_path / "b")
    args[args.index("mnist")] = str(empty)
    assert cli(*args).returncode == 3
    # a value no backend accepts is bad input: exit 2, and nothing is stored
    assert_one_line_refusal(cli(*point_args(mlp_model, tmp_path / "c", "--exec-precision", "int3")),
                            "no backend executes in precision 'int3'")
    assert nothing_written(tmp_path / "c")
    # one point measured, one refused: the run measured something
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"models: [{mlp_model}]\ndataset: mnist\nbackend: onnxruntime\nscenario: Offline\nbatch: 8\n"
                    "exec_precisions: [model, bf16]\nsettings: {min_duration_ms: 200}\n")
    mixed = cli("run", str(spec), "--workdir", str(tmp_path / "d"))
    assert mixed.returncode == 0 and "REFUSED" in mixed.stderr, mixed.stderr


def test_a_ray_address_where_nothing_listens_is_one_line_at_once(mlp_model, tmp_path):
    pytest.importorskip("ray")
    for address, needle in (("127.0.0.1:1", "nothing answers at the Ray address 127.0.0.1:1"),
                            ("nonsense", "the Ray address 'nonsense' is not HOST:PORT")):
        start = time.monotonic()
        proc = cli(*point_args(mlp_model, tmp_path / "w", "--executor", "ray", "--address", address), timeout=60)
        assert_one_line_refusal(proc, needle)
        assert time.monotonic() - start < 30  # Ray alone retried for over a minute
    assert nothing_written(tmp_path / "w")


def test_nan_or_inf_in_a_dataset_is_warned_about_and_refused_for_accuracy(mlp_model, tmp_path):
    data = tmp_path / "nan"
    data.mkdir()
    samples = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    samples[5, 3], samples[9, 0] = np.nan, np.inf
    np.save(data / "samples.npy", samples)
    np.save(data / "labels.npy", np.zeros(64, np.int64))
    warning = f"dataset '{data}' has 2 sample(s) with NaN or Inf (first: index 5)"

    def run(work: Path, *extra: str) -> subprocess.CompletedProcess:
        args = point_args(mlp_model, work, "--setting", "min_duration_ms=200", *extra)
        args[args.index("mnist")] = str(data)
        return cli(*args)

    perf = run(tmp_path / "a")
    assert perf.returncode == 0 and f"warning: {warning}" in perf.stderr, perf.stderr
    [row] = ResultsStore(layout.store_path(tmp_path / "a")).results()
    assert warning in row.notes
    assert_one_line_refusal(run(tmp_path / "b", "--mode", "accuracy"), "2 sample(s) with NaN or Inf (first: index 5)",
                            "--allow-nonfinite")
    assert nothing_written(tmp_path / "b")
    allowed = run(tmp_path / "b", "--mode", "accuracy", "--allow-nonfinite")
    assert allowed.returncode == 0, allowed.stderr
    [row] = ResultsStore(layout.store_path(tmp_path / "b")).results()
    assert row.accuracy is not None and warning in row.notes


# -- 8. smaller defects -----------------------------------------------------------------------------------
def test_options_may_come_before_model_names(tmp_path):
    from mlperf_ext import cli as main_cli
    from mlperf_ext.zoo.mlp import MlpFamily, MlpRecipe, register
    from mlperf_ext.zoo.registry import unregister_family

    register(MlpFamily(MlpRecipe(widths=(16,), epochs=1, batch_size=256, finetune_epochs=1, qat_epochs=1),
                       prefix="mlporder"))
    try:
        assert main_cli.main(["models", "build", "--workdir", str(tmp_path), "mlporder-w16-fp32"]) == 0
        assert (tmp_path / "models" / "mlporder-w16-fp32.onnx").is_file()
    finally:
        unregister_family("mlporder")


def test_training_reports_every_epoch(tmp_path):
    from mlperf_ext.zoo.mlp import MlpFamily, MlpRecipe, register
    from mlperf_ext.zoo.registry import build, unregister_family

    register(MlpFamily(MlpRecipe(widths=(16,), epochs=2, batch_size=256, finetune_epochs=1, qat_epochs=1),
                       prefix="mlpepochs"))
    try:
        said: list[str] = []
        build(["mlpepochs-w16-fp32"], tmp_path, progress=said.append)
        assert [m for m in said if "epoch" in m and "loss" in m] == [
            m for m in said if m.startswith("mlpepochs-w16: epoch ")] and len([m for m in said if "epoch 1/2" in m]) == 1
        assert any("epoch 2/2 loss" in m for m in said)
    finally:
        unregister_family("mlpepochs")


def test_help_texts():
    demo = cli("demo", "--help").stdout
    assert "every variant in all four scenarios" in demo and "12.5 % width" in demo
    assert "write the rows" in cli("results", "--help").stdout


def test_a_score_that_cannot_mean_what_it_says_is_warned_about():
    import numpy as np

    from mlperf_ext.datasets import ArrayDataset
    from mlperf_ext.result import AccuracyFigures
    from tasks.classification import ClassificationTask

    dataset = ArrayDataset("ten", np.zeros((10, 2), np.float32), np.arange(10))
    warnings = ClassificationTask().warnings
    assert warnings(AccuracyFigures(value=0.9), 10, dataset) == []
    [few] = warnings(AccuracyFigures(value=0.1), 1, dataset)
    assert "1 value(s) per sample but the labels have 10 classes" in few
    [zero] = warnings(AccuracyFigures(value=0.0), 10, dataset)
    assert "0.00 % top-1" in zero


def test_predict_zoo_says_it_builds_and_shows_progress(tmp_path):
    work = tmp_path / "w"
    first = cli("predict", "--zoo", "mobilenetv1-fp32", "--platform", "jetson-tx2", "--workdir", str(work))
    assert first.returncode == 0, first.stderr
    assert f"building zoo model mobilenetv1-fp32 into {work / 'models'} (a one-time build" in first.stderr
    assert "mobilenetv1-fp32: built in" in first.stderr
    again = cli("predict", "--zoo", "mobilenetv1-fp32", "--platform", "jetson-tx2", "--workdir", str(work))
    assert again.returncode == 0 and "building zoo model" not in again.stderr  # built once, then cached
