"""CLI wiring that the other tests do not reach: timeouts, results printing and CSV export."""

from __future__ import annotations

from mlperf_ext import cli
from mlperf_ext.config import RunPoint
from mlperf_ext.result import PointResult, SystemFigures
from mlperf_ext.store import ResultsStore


def stored(**system) -> PointResult:
    point = RunPoint(model="m.onnx", model_name="mlp-x", dataset="mnist", backend="openvino", scenario="Offline",
                     batch=8)
    return PointResult(point=point, point_key="k", run_id="20261201T000000-abcdef0123", status="ok",
                       system=SystemFigures(**system))


def test_spec_timeout_is_kept_unless_overridden(tmp_path, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: [m.onnx]\ndataset: mnist\nbackend: null\nscenario: Offline\ntimeout_s: 42\n")
    seen = []
    monkeypatch.setattr("tiers.sweep.run_points", lambda points, workdir, **kw: seen.append(points) or [])
    assert cli.main(["run", str(spec), "--workdir", str(tmp_path)]) == 0
    assert cli.main(["run", str(spec), "--workdir", str(tmp_path), "--timeout", "7"]) == 0
    assert [p.timeout_s for p in seen[0]] == [42] and [p.timeout_s for p in seen[1]] == [7]


def test_results_table_and_csv(tmp_path, capsys):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.append(stored(valid=True, throughput=1234.0))
    out = tmp_path / "out.csv"
    assert cli.main(["results", "--workdir", str(tmp_path), "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mlp-x" in text and "VALID*" in text and "1,234" in text
    assert "mlp-x" in out.read_text()


def test_results_without_a_store_is_a_user_error(tmp_path, capsys):
    assert cli.main(["results", "--workdir", str(tmp_path / "none")]) == 2
    assert "fix:" in capsys.readouterr().err


def test_relative_paths_work_from_any_directory(mlp_model, tmp_path, monkeypatch, capsys):
    """The child runs in its run directory: relative workdir, model and dataset paths must survive."""
    import shutil

    import numpy as np

    from mlperf_ext.datasets import open_dataset

    monkeypatch.chdir(tmp_path)
    shutil.copy(mlp_model, tmp_path / "model.onnx")
    data = open_dataset("mnist")
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "samples.npy", data.samples[:64])
    np.save(tmp_path / "data" / "labels.npy", data.labels[:64])
    code = cli.main(["run", "--model", "model.onnx", "--dataset", "data", "--backend", "onnxruntime",
                     "--scenario", "Offline", "--mode", "accuracy", "--batch", "8", "--workdir", "work"])
    assert code == 0, capsys.readouterr().err
    [row] = ResultsStore(tmp_path / "work" / "results.sqlite").rows()
    assert row["status"] == "ok" and row["accuracy_total"] == 64
