"""Every bad input: one line naming the problem and the fix, exit code 2, no row stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlperf_ext import cli
from sut import registry


def run_cli(args, workdir: Path, capsys) -> tuple[int, str]:
    code = cli.main([*args, "--workdir", str(workdir)])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_refused(code: int, err: str, workdir: Path, *needles: str) -> None:
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mlperf-ext: error: ")
    assert "fix:" in lines[0]
    for needle in needles:
        assert needle in lines[0]
    assert not (workdir / "results.sqlite").exists()  # nothing half-written
    assert not (workdir / "runs").exists()


def point_args(model, **over) -> list[str]:
    opts = {"--model": str(model), "--dataset": "mnist", "--backend": "onnxruntime", "--scenario": "Offline"}
    opts.update(over)
    return ["run", *[x for kv in opts.items() for x in kv]]


def test_unknown_backend(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--backend": "onnxruntim"}), tmp_path, capsys),
                   tmp_path, "unknown backend 'onnxruntim'")


def test_unknown_scenario(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--scenario": "Ofline"}), tmp_path, capsys),
                   tmp_path, "unknown scenario 'Ofline'")


def test_missing_model(tmp_path, capsys):
    assert_refused(*run_cli(point_args(tmp_path / "nope.onnx"), tmp_path, capsys), tmp_path, "nope.onnx")


def test_corrupt_model(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf" * 10)
    work = tmp_path / "w"
    assert_refused(*run_cli(point_args(bad), work, capsys), work, "bad.onnx")


def test_dataset_shape_mismatch(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--dataset": "digits"}), tmp_path, capsys),
                   tmp_path, "(64,)", "(784,)")


def test_missing_dataset(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--dataset": str(tmp_path / "nodata")}), tmp_path, capsys),
                   tmp_path, "nodata")


def test_batch_the_model_cannot_take(fixed_batch_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(fixed_batch_model, **{"--batch": "8"}), tmp_path, capsys),
                   tmp_path, "takes batch 1 only")


def test_unknown_yaml_key(mlp_model, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"models: [{mlp_model}]\ndataset: mnist\nbackends: [onnxruntime]\n"
                    "scenarios: [Offline]\nbatchsize: [1, 2]\n")
    work = tmp_path / "w"
    assert_refused(*run_cli(["run", str(spec)], work, capsys), work, "unknown key 'batchsize'", "batches")


def test_invalid_yaml(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: [a, b\nbackends: x\n")
    work = tmp_path / "w"
    assert_refused(*run_cli(["run", str(spec)], work, capsys), work, "not valid YAML")


def test_unknown_user_conf_key(mlp_model, tmp_path, capsys):
    conf = tmp_path / "user.conf"
    conf.write_text("*.Offline.target_qsp = 100\n")  # a typo LoadGen would silently ignore
    work = tmp_path / "w"
    assert_refused(*run_cli(point_args(mlp_model, **{"--user-conf": str(conf)}), work, capsys), work,
                   "unknown key 'target_qsp'", "target_qps")


def test_user_conf_for_another_model(mlp_model, tmp_path, capsys):
    conf = tmp_path / "user.conf"
    conf.write_text("resnet50.Offline.target_qps = 100\n")
    work = tmp_path / "w"
    assert_refused(*run_cli(point_args(mlp_model, **{"--user-conf": str(conf)}), work, capsys), work,
                   "model 'resnet50'")


def test_unknown_loadgen_setting(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli([*point_args(mlp_model), "--setting", "min_duraton_ms=5"], tmp_path, capsys),
                   tmp_path, "min_duraton_ms", "min_duration_ms")


def test_runtime_not_installed(mlp_model, tmp_path, capsys, monkeypatch):
    # a registered backend whose runtime module is absent here: the check is the real find_spec lookup
    from importlib.metadata import EntryPoint

    entry = EntryPoint("absent", "tests.harness.test_bad_input:AbsentRuntimeBackend", registry.ENTRY_POINT_GROUP)
    monkeypatch.setitem(registry.registered(), "absent", entry)
    assert_refused(*run_cli(point_args(mlp_model, **{"--backend": "absent"}), tmp_path, capsys), tmp_path,
                   "python module 'no_such_runtime_here' not found", "pip install 'mlperf-ext[absent-extra]'")


class AbsentRuntimeBackend:
    """A backend declared like any other whose runtime is not installed."""

    name, extra, runtime_module, runtime_packages = "absent", "absent-extra", "no_such_runtime_here", ()

    def load(self, model_path, options): ...
    def describe(self): ...
    def input_spec(self): ...
    def infer(self, batch, stream=0): ...
    def compute_step(self, batch, stream=0): ...
    def close(self): ...


def test_accuracy_mode_needs_labels(mlp_model, tmp_path, capsys):
    import numpy as np

    data = tmp_path / "unlabelled"
    data.mkdir()
    np.save(data / "samples.npy", np.zeros((4, 784), dtype=np.float32))
    work = tmp_path / "w"
    assert_refused(*run_cli(point_args(mlp_model, **{"--dataset": str(data), "--mode": "accuracy"}), work,
                            capsys), work, "no labels")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_non_positive_batch(mlp_model, tmp_path, capsys, value):
    assert_refused(*run_cli(point_args(mlp_model, **{"--batch": value}), tmp_path, capsys), tmp_path, "batch")


def test_unknown_device(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--device": "tpu"}), tmp_path, capsys), tmp_path, "tpu")


def test_device_whose_provider_is_missing(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--device": "cuda"}), tmp_path, capsys), tmp_path,
                   "CUDAExecutionProvider")


def test_openvino_device_not_present(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--backend": "openvino", "--device": "npu"}), tmp_path,
                            capsys), tmp_path, "no device 'npu'")


def test_negative_max_wait(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--max-wait-us": "-5"}), tmp_path, capsys), tmp_path,
                   "max_wait_us")


def test_single_stream_batch(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli(point_args(mlp_model, **{"--scenario": "SingleStream", "--batch": "8"}), tmp_path,
                            capsys), tmp_path, "SingleStream")


def test_setting_of_the_wrong_type(mlp_model, tmp_path, capsys):
    assert_refused(*run_cli([*point_args(mlp_model), "--setting", "min_duration_ms=1.5"], tmp_path, capsys),
                   tmp_path, "min_duration_ms", "whole number")


@pytest.mark.parametrize("line,needle", [("timeout_s: soon", "timeout_s"), ("batch: true", "batch"),
                                         ("settings: {min_duration_ms: fast}", "min_duration_ms")])
def test_bad_spec_values(mlp_model, tmp_path, capsys, line, needle):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"models: [{mlp_model}]\ndataset: mnist\nbackends: [onnxruntime]\nscenarios: [Offline]\n{line}\n")
    work = tmp_path / "w"
    assert_refused(*run_cli(["run", str(spec)], work, capsys), work, needle)


def test_point_option_with_a_spec(mlp_model, tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"models: [{mlp_model}]\ndataset: mnist\nbackends: [onnxruntime]\nscenarios: [Offline]\n")
    work = tmp_path / "w"
    assert_refused(*run_cli(["run", str(spec), "--batch", "8"], work, capsys), work, "--batch")


def test_csv_into_a_missing_folder(tmp_path, capsys):
    from mlperf_ext.result import PointResult
    from mlperf_ext.store import ResultsStore

    ResultsStore(tmp_path / "results.sqlite").append(PointResult(point_key="k", run_id="r", status="ok"))
    code = cli.main(["results", "--workdir", str(tmp_path), "--csv", str(tmp_path / "nope" / "r.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "fix:" in err and len(err.splitlines()) == 1
