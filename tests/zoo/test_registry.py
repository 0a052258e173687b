"""Zoo API: names, building, metadata, caching, atomic writes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from mlperf_ext.datasets.mnist import mlp_input, mnist_split
from mlperf_ext.errors import ConfigError
from mlperf_ext.zoo import build, list_models, model_path, read_metadata, registry
from mlperf_ext.zoo import quantize as quantize_mod
from mlperf_ext.zoo.evaluate import ort_logits, top1
from mlperf_ext.zoo.metadata import PRECISIONS, atomic_write_bytes, sha256_file
from mlperf_ext.zoo.mlp import MlpFamily, MlpRecipe, register

TINY = MlpRecipe(widths=(64, 32), epochs=3, batch_size=64, finetune_epochs=2, qat_epochs=2)


@pytest.fixture(scope="module")
def tiny_family():
    fam = MlpFamily(TINY, prefix="mlptest")
    register(fam)
    yield fam
    registry.unregister_family("mlptest")


@pytest.fixture(scope="module")
def built(tiny_family, tmp_path_factory):
    """fp32, int8 and int2 of the pruned 32-wide tiny model, built once; returns (dir, paths, messages)."""
    models_dir = tmp_path_factory.mktemp("models")
    messages: list[str] = []
    names = ["mlptest-w32-fp32", "mlptest-w32-int8", "mlptest-w32-int2"]
    paths = build(names, models_dir, progress=messages.append)
    return models_dir, paths, messages


def test_default_mlp_family_is_listed():
    infos = {i.name: i for i in list_models()}
    for width, pruning in ((2048, 1.0), (1024, 0.5), (512, 0.25), (256, 0.125)):
        for precision in PRECISIONS:
            info = infos[f"mlp-w{width}-{precision}"]
            assert info.family == "mlp" and info.pruning == pruning and info.precision == precision
            assert info.dataset == "mnist" and info.architecture == f"mlp-3x{width}"


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown model 'mlp-w3-fp32'; fix: use one of .*mlp-w2048-fp32"):
        build(["mlp-w3-fp32"], tmp_path)
    with pytest.raises(ConfigError, match="mlp-w256-int2"):
        model_path("nope", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_model_path(tmp_path):
    assert model_path("mlp-w256-int2", tmp_path) == tmp_path / "mlp-w256-int2.onnx"


def test_metadata_fields_and_sha256(built):
    models_dir, paths, _ = built
    _, _, x_test, y_test = mnist_split()
    for path in paths:
        assert path.parent == models_dir and path.suffix == ".onnx"
        meta = read_metadata(path)
        onnx.checker.check_model(onnx.load(str(path)))
        assert meta["sha256"] == sha256_file(path) and meta["size_bytes"] == path.stat().st_size
        for key in ("name", "family", "architecture", "pruning", "precision", "producer", "params", "dataset",
                    "split", "accuracy", "build_time_s", "versions", "recipe", "description"):
            assert key in meta, key
        assert meta["name"] == path.stem and meta["pruning"] == 0.5 and meta["dataset"] == "mnist"
        assert meta["split"]["train"] == 4000 and meta["split"]["test"] == 1000 and meta["split"]["seed"] == 0
        # params: 784*32 + 32 + 2*(32*32 + 32) + 32*10 + 10 (BatchNorm folded into the Gemms)
        assert meta["params"] == 784 * 32 + 32 + 2 * (32 * 32 + 32) + 32 * 10 + 10
        # the stored accuracy is what ORT measures on the held-out images, not an assumed number
        assert meta["accuracy"] == pytest.approx(top1(ort_logits(path, mlp_input(x_test)), y_test))
        assert meta["accuracy"] > 0.5
        assert meta["versions"]["onnxruntime"] and meta["training"]["numpy_test_accuracy"] > 0.5
    int8 = read_metadata(paths[1])["producer"]
    assert int8["method"] == "PTQ" and int8["calibration_samples"] == 256
    int2 = read_metadata(paths[2])
    assert int2["producer"]["method"] == "QAT" and "INT2" in int2["onnx"]["initializer_types"]
    assert int2["training"]["kind"] == "qat-int2"
    from sut.base import DeploymentOptions
    from sut.model_file import inspect_model
    from sut.openvino import OpenVinoBackend

    assert OpenVinoBackend.supports(inspect_model(paths[2]), DeploymentOptions()).startswith(
        "OpenVINO's ONNX frontend cannot read INT2 tensors (read_model: Unsupported type)")
    assert OpenVinoBackend.supports(inspect_model(paths[0]), DeploymentOptions()) is None


def test_pruned_model_comes_from_the_wider_one(built):
    _, paths, messages = built
    meta = read_metadata(paths[0])
    assert meta["training"]["kind"] == "pruned+finetuned" and "w64" in meta["training"]["from"]
    assert any("L1-pruned from w64" in m for m in messages)
    # the widest was trained exactly once, though three variants were built
    assert sum("training from scratch" in m for m in messages) == 1


def test_second_build_reuses_cache(built):
    models_dir, paths, _ = built
    before = {p: p.stat().st_mtime_ns for p in models_dir.rglob("*") if p.is_file()}
    messages: list[str] = []
    again = build([p.stem for p in paths], models_dir, progress=messages.append)
    assert again == paths
    assert messages == [f"{p.stem}: cached" for p in paths]
    assert {p: p.stat().st_mtime_ns for p in models_dir.rglob("*") if p.is_file()} == before


def test_new_precision_reuses_cached_weights(built):
    models_dir, _, _ = built
    weights = sorted((models_dir / ".cache").glob("*.npz"))
    stamps = [w.stat().st_mtime_ns for w in weights]
    messages: list[str] = []
    (path,) = build(["mlptest-w32-fp16"], models_dir, progress=messages.append)
    assert not any("training" in m or "fine-tuning" in m or "QAT" in m for m in messages), messages
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    assert read_metadata(path)["precision"] == "fp16"


def test_corrupted_artifact_is_rebuilt(built):
    models_dir, paths, _ = built
    path = paths[0]
    good = path.read_bytes()
    path.write_bytes(good[:-10])
    messages: list[str] = []
    build([path.stem], models_dir, progress=messages.append)
    assert f"{path.stem}: cached" not in messages
    assert path.read_bytes() == good  # deterministic rebuild from the cached weights
    assert read_metadata(path)["sha256"] == sha256_file(path)


def test_failed_build_leaves_no_partial_artifact(tiny_family, built, monkeypatch):
    models_dir, _, _ = built

    def broken(*_args, **_kwargs):
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(quantize_mod, "to_int4_matmulnbits", broken)
    before = sorted(p.name for p in models_dir.rglob("*"))
    with pytest.raises(RuntimeError, match="quantizer crashed"):
        build(["mlptest-w32-int4"], models_dir)
    assert sorted(p.name for p in models_dir.rglob("*")) == before
    assert not (models_dir / "mlptest-w32-int4.onnx").exists()


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.onnx"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.onnx"]


def test_read_metadata_absent_or_broken(tmp_path):
    assert read_metadata(tmp_path / "x.onnx") is None
    (tmp_path / "x.json").write_text("{broken")
    assert read_metadata(tmp_path / "x.onnx") is None


def test_register_family_plugs_in(tmp_path):
    from mlperf_ext.zoo.metadata import ModelInfo

    info = ModelInfo("toy-fp32", "toy", "toy", None, "fp32", None, "a toy")

    def build_toy(i, models_dir: Path, progress, force):
        p = models_dir / f"{i.name}.onnx"
        p.write_bytes(b"x")
        return p

    registry.register_family("toy", lambda: [info], build_toy)
    try:
        assert info in list_models()
        assert build(["toy-fp32"], tmp_path) == [tmp_path / "toy-fp32.onnx"]
    finally:
        registry.unregister_family("toy")
    assert info not in list_models()


def test_cached_weights_json_is_valid(built):
    models_dir, _, _ = built
    for log in (models_dir / ".cache").glob("*.json"):
        data = json.loads(log.read_text())
        assert data["loss_per_epoch"] and np.isfinite(data["loss_per_epoch"]).all()
