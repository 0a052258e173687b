"""crosscheck: models without a dataset get a load/run check, never MNIST; no names = dataset models only."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlperf_ext.zoo import registry
from mlperf_ext.zoo.metadata import ModelInfo, onnx_facts, write_artifact
from mlperf_ext.zoo.onnx_builder import GraphBuilder
from sut import crosscheck

INFO = ModelInfo(name="xchecktiny-fp32", family="xchecktiny", architecture="xchecktiny", pruning=None,
                 precision="fp32", dataset=None, description="3x8x8 conv net, random weights")


def _build(info: ModelInfo, models_dir: Path, progress=None, force: bool = False) -> Path:
    g = GraphBuilder("xchecktiny", seed=0)
    x = g.input("input", 3, 8, 8)
    g.gemm(g.flatten(g.global_avg_pool(g.conv(x, 4, 3, pad=1)), 4), 5, output="logits")
    model = g.finish("logits")
    path = Path(models_dir) / f"{info.name}.onnx"
    write_artifact(model.SerializeToString(), path,
                   {"name": info.name, "precision": info.precision, "onnx": onnx_facts(model)})
    return path


@pytest.fixture
def tiny_family():
    registry.register_family("xchecktiny", lambda: [INFO], _build)
    yield
    registry.unregister_family("xchecktiny")


def test_model_without_dataset_gets_a_run_check(tiny_family, tmp_path):
    pytest.importorskip("openvino")
    results = crosscheck.crosscheck([INFO.name], tmp_path)
    assert {r.backend for r in results} == set(crosscheck.BACKENDS)
    for r in results:
        assert r.check == "load/run" and r.accuracy is None and r.error is None and r.claim_holds


def test_no_names_means_models_with_a_dataset(tiny_family):
    names = crosscheck.default_names()
    assert INFO.name not in names
    assert not any(registry.model_info(n).dataset is None for n in names)
    assert any(n.startswith("mlp-") for n in names)
