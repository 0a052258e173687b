"""CNV family: topology arithmetic (no torch), the missing-extra error, and a tiny real build + ORT run."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mlperf_ext.errors import BackendUnavailable
from mlperf_ext.zoo import cnv, registry

TORCH_REASON = "the CNV family needs torch (pip install 'mlperf-ext[torch]')"


def _expected_params(c: int) -> int:
    """Written out layer by layer from the docstring topology: 6 bias-free 3x3 convs + BN, FC 8C, FC 10."""
    convs = [(1, c), (c, c), (c, 2 * c), (2 * c, 2 * c), (2 * c, 4 * c), (4 * c, 4 * c)]
    total = sum(cin * cout * 9 + 2 * cout for cin, cout in convs)
    return total + (4 * c * 8 * c + 8 * c) + (8 * c * 10 + 10)


def test_topology_shapes_valid_convs():
    shapes = dict(cnv.cnv_layer_shapes(64))
    assert shapes["conv0"] == (64, 30, 30)  # 3x3 valid: 32 -> 30
    assert shapes["conv1"] == (64, 28, 28) and shapes["pool1"] == (64, 14, 14)
    assert shapes["conv3"] == (128, 10, 10) and shapes["pool3"] == (128, 5, 5)
    assert shapes["conv5"] == (256, 1, 1)
    assert shapes["fc0"] == (512, 1, 1) and shapes["fc1"] == (10, 1, 1)
    assert list(shapes) == ["conv0", "conv1", "pool1", "conv2", "conv3", "pool3", "conv4", "conv5",
                            "fc0", "fc1"]


@pytest.mark.parametrize("c", [128, 64, 32, 16, 4])
def test_param_count_formula(c):
    assert cnv.cnv_param_count(c) == _expected_params(c)


def test_widths_are_the_pruning_levels():
    assert cnv.CNV_WIDTHS == {1.0: 128, 0.5: 64, 0.25: 32, 0.125: 16}
    names = {m.name for m in cnv.DEFAULT_FAMILY.list_models()}
    assert {"cnv-c128-fp32", "cnv-c16-int2", "cnv-c64-int8"} <= names
    info = next(m for m in cnv.DEFAULT_FAMILY.list_models() if m.name == "cnv-c32-int4")
    assert info.pruning == 0.25 and info.dataset == "mnist32" and "not CIFAR-10" in info.description


def test_build_without_torch_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install 'mlperf-ext\[torch\]'"):
        registry.build(["cnv-c16-fp32"], tmp_path)
    assert not list(tmp_path.glob("*.onnx"))


# ---- with torch ------------------------------------------------------------------------------------
TINY = cnv.FamilyConfig(widths=(8, 4), base=cnv.TrainConfig(epochs=1),
                        finetune=cnv.TrainConfig(epochs=1, lr=3e-4), qat=cnv.TrainConfig(epochs=1, lr=3e-4),
                        train_limit=256)


@pytest.fixture(scope="module")
def tiny_family():
    pytest.importorskip("torch", reason=TORCH_REASON)
    family = cnv.CnvFamily(TINY, prefix="cnvtiny")
    cnv.register(family)
    yield family
    registry.unregister_family("cnvtiny")


@pytest.fixture(scope="module")
def tiny_models(tiny_family, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnvzoo")
    paths = registry.build(["cnvtiny-c4-fp32", "cnvtiny-c4-int8", "cnvtiny-c4-int2"], out)
    return out, dict(zip(("fp32", "int8", "int2"), paths, strict=True))


def test_torch_module_matches_topology():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    model = cnv.cnv_module(4).eval()
    assert sum(p.numel() for p in model.parameters()) == _expected_params(4)
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert all(m.padding == (0, 0) and m.kernel_size == (3, 3) and m.bias is None for m in convs)


def test_prune_keeps_structure_and_full_width_is_identity():
    pytest.importorskip("torch", reason=TORCH_REASON)
    model = cnv.cnv_module(8, seed=3).eval()
    x = np.random.default_rng(0).random((4, 1, 32, 32), dtype=np.float32)
    same = cnv.prune_channels(model, 8)  # keeping every channel must not change the function
    np.testing.assert_allclose(cnv.torch_logits(same, x), cnv.torch_logits(model, x), rtol=1e-5, atol=1e-5)
    small = cnv.prune_channels(model, 4)
    assert cnv.model_width(small) == 4
    assert sum(p.numel() for p in small.parameters()) == _expected_params(4)
    with pytest.raises(ValueError, match="cannot prune"):
        cnv.prune_channels(model, 16)


def test_ternarize_puts_weights_on_three_levels_per_channel():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    w = torch.randn(6, 3, 3, 3)
    q = cnv.ternarize(w)
    for row in q:
        assert len(torch.unique(row.abs())) <= 2  # {0, scale}


def test_tiny_build_export_and_ort_inference(tiny_models):
    ort = pytest.importorskip("onnxruntime")
    _, paths = tiny_models
    x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    for precision, path in paths.items():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
        assert inp.name == "input" and inp.shape[1:] == [1, 32, 32] and isinstance(inp.shape[0], str)
        assert out.name == "logits"
        for batch in (1, 3):  # dynamic batch
            assert sess.run(["logits"], {"input": x[:batch]})[0].shape == (batch, 10), precision


def test_tiny_metadata_says_mnist_and_measured_accuracy(tiny_models):
    _, paths = tiny_models
    for precision, path in paths.items():
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["data_note"] == "MNIST padded to 32x32, not CIFAR-10"
        assert 0.0 <= meta["accuracy"] <= 1.0 and meta["accuracy_detail"]["samples"] == 1000
        assert meta["precision"] == precision and meta["params"] == _expected_params(4)
    assert json.loads(paths["fp32"].with_suffix(".json").read_text())["training"]["kind"] == "pruned+finetuned"
    int2 = json.loads(paths["int2"].with_suffix(".json").read_text())
    assert int2["producer"]["method"] == "QAT" and "INT2" in int2["onnx"]["initializer_types"]
    assert 0.0 <= int2["int2_ptq_accuracy"] <= 1.0


def test_tiny_build_is_cached(tiny_models):
    out, paths = tiny_models
    messages: list[str] = []
    registry.build(["cnvtiny-c4-fp32"], out, messages.append)
    assert messages == ["cnvtiny-c4-fp32: cached"]


def test_trained_weight_cache_key_carries_the_training_code_version():
    """Changing the training code must retrain: its version is part of the cache directory's key."""
    assert TINY.training_code_version >= 1
    bumped = cnv.FamilyConfig(**{**TINY.__dict__, "training_code_version": TINY.training_code_version + 1})
    assert bumped.key() != TINY.key()
