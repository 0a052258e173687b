"""CNV family: topology arithmetic (no torch), the published counts, the missing-extra error, level 0's
view of the exported graph, and a tiny real build + ORT run.

Published weight counts (Blott 2021, PhD thesis, Table 6.1; FINN's CNV on CIFAR-10, 3 input channels):
6.16 / 1.54 / 0.39 / 0.10 M for C = 128 / 64 / 32 / 16, printed to 0.01 M. FINN's topology: Brevitas'
src/brevitas_examples/bnn_pynq/models/CNV.py (github.com/Xilinx/brevitas).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mlperf_ext.errors import BackendUnavailable
from mlperf_ext.zoo import cnv, registry

TORCH_REASON = "the CNV family needs torch (pip install 'mlperf-ext[torch]')"


def _convs(c: int, in_ch: int = 1) -> list[tuple[int, int]]:
    return [(in_ch, c), (c, c), (c, 2 * c), (2 * c, 2 * c), (2 * c, 4 * c), (4 * c, 4 * c)]


def _fcs(c: int) -> list[tuple[int, int]]:
    return [(4 * c, 8 * c), (8 * c, 8 * c), (8 * c, 10)]  # FINN: 256 -> 512 -> 512 -> 10 at C = 64


def _expected_params(c: int) -> int:
    """Written out layer by layer from the docstring topology (torch count): 6 bias-free 3x3 convs + BN,
    2 bias-free hidden FCs of 8C + BN, FC 10 with bias."""
    convs = sum(cin * cout * 9 + 2 * cout for cin, cout in _convs(c))
    (a, h0), (_, h1), (_, out) = _fcs(c)
    return convs + (a * h0 + 2 * h0) + (h0 * h1 + 2 * h1) + (h1 * out + out)


def _expected_weights(c: int, in_ch: int) -> int:
    """Weight elements only (the published convention)."""
    return sum(i * o * 9 for i, o in _convs(c, in_ch)) + sum(i * o for i, o in _fcs(c))


def _expected_folded(c: int) -> int:
    """The BN-folded graph: weights + one bias per conv channel and per FC neuron."""
    return _expected_weights(c, 1) + sum(o for _, o in _convs(c)) + sum(o for _, o in _fcs(c))


def _expected_macs(c: int) -> int:
    """Multiply-accumulates per image from the output sides 30, 28, 12, 10, 3, 1 of the six convs."""
    sides = (30, 28, 12, 10, 3, 1)
    return (sum(s * s * o * i * 9 for s, (i, o) in zip(sides, _convs(c), strict=True))
            + sum(i * o for i, o in _fcs(c)))


PUBLISHED_MILLIONS = {128: 6.16, 64: 1.54, 32: 0.39, 16: 0.10}


def test_topology_shapes_valid_convs():
    shapes = dict(cnv.cnv_layer_shapes(64))
    assert shapes["conv0"] == (64, 30, 30)  # 3x3 valid: 32 -> 30
    assert shapes["conv1"] == (64, 28, 28) and shapes["pool1"] == (64, 14, 14)
    assert shapes["conv3"] == (128, 10, 10) and shapes["pool3"] == (128, 5, 5)
    assert shapes["conv5"] == (256, 1, 1)
    assert shapes["fc0"] == (512, 1, 1) and shapes["fc1"] == (512, 1, 1) and shapes["fc2"] == (10, 1, 1)
    assert list(shapes) == ["conv0", "conv1", "pool1", "conv2", "conv3", "pool3", "conv4", "conv5",
                            "fc0", "fc1", "fc2"]


@pytest.mark.parametrize("c", [128, 64, 32, 16, 4])
def test_param_count_formulas(c):
    assert cnv.cnv_param_count(c) == _expected_params(c)
    assert cnv.cnv_weight_count(c) == _expected_weights(c, 1)
    assert cnv.cnv_weight_count(c, cnv.FINN_INPUT_CHANNELS) == _expected_weights(c, 3)
    assert cnv.cnv_folded_param_count(c) == _expected_folded(c)


@pytest.mark.parametrize("c", sorted(PUBLISHED_MILLIONS, reverse=True))
def test_weight_counts_match_the_published_figures(c):
    """FINN's CNV (3 input channels) against the thesis' table: equal at the printed precision (0.01 M),
    and within 1 % wherever 0.01 M is finer than 1 % (C = 128, 64, 32; C = 16 is -2.3 %, i.e. 0.0977 M
    printed as 0.10 M)."""
    published = PUBLISHED_MILLIONS[c]
    assert cnv.PUBLISHED_WEIGHTS_MILLIONS[c] == published
    count = cnv.cnv_weight_count(c, cnv.FINN_INPUT_CHANNELS)
    assert round(count / 1e6, 2) == published
    assert abs(count - published * 1e6) <= max(0.01 * published * 1e6, 0.005e6)
    counts = cnv.cnv_counts(c)
    assert counts.weights_finn_cifar10 == count and counts.published_millions == published
    assert counts.weights == count - 18 * c  # MNIST: one input channel instead of three in conv0


def test_the_issue_counts_for_the_two_widest():
    """Issue 16 worked out FC 8C -> 8C -> 10 by hand: 6,157,696 (C = 128) and 1,542,848 (C = 64)."""
    assert cnv.cnv_weight_count(128, 3) == 6_157_696 and cnv.cnv_weight_count(64, 3) == 1_542_848


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


def _randomize_bn(model, seed: int = 0):
    """Non-trivial BN parameters and running statistics (a fresh module's BNs are identities)."""
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model:
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model.eval()


def test_torch_module_matches_topology():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    model = cnv.cnv_module(4).eval()
    assert sum(p.numel() for p in model.parameters()) == _expected_params(4)
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert all(m.padding == (0, 0) and m.kernel_size == (3, 3) and m.bias is None for m in convs)
    mods = list(model)
    linears = [i for i, m in enumerate(mods) if isinstance(m, torch.nn.Linear)]
    assert [(mods[i].in_features, mods[i].out_features) for i in linears] == _fcs(4)
    for i in linears[:-1]:  # FINN's hidden FCs: bias-free Linear -> BatchNorm1d -> activation
        assert mods[i].bias is None and isinstance(mods[i + 1], torch.nn.BatchNorm1d)
        assert isinstance(mods[i + 2], torch.nn.ReLU)
    assert mods[linears[-1]].bias is not None and linears[-1] == len(mods) - 1


def test_fc_batchnorm_fold_keeps_the_function():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    model = _randomize_bn(cnv.cnv_module(4, seed=1), seed=2)
    x = np.random.default_rng(0).random((5, 1, 32, 32), dtype=np.float32)
    folded = cnv.fold_fc_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model)  # the original is left as it was
    np.testing.assert_allclose(cnv.torch_logits(folded, x), cnv.torch_logits(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c", [32, 16])
def test_level0_analysis_of_the_export_agrees_with_the_counts(c):
    """tiers.level0.graph on the exported ONNX (all BNs folded): params = the folded count, MACs = the
    topology's; no op left uncounted. BN statistics are randomised: with the identity BNs of a fresh
    module the exporter merges equal all-zero biases into one initializer."""
    pytest.importorskip("torch", reason=TORCH_REASON)
    import onnx

    from tiers.level0.graph import analyze

    model = onnx.load_from_string(cnv.onnx_bytes(_randomize_bn(cnv.cnv_module(c, seed=1))))
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    a = analyze(model)
    assert a.params == cnv.cnv_folded_param_count(c) == _expected_folded(c)
    assert a.mac_ops == 2 * _expected_macs(c)
    assert a.unsupported == []


def test_prune_keeps_structure_and_full_width_is_identity():
    pytest.importorskip("torch", reason=TORCH_REASON)
    model = _randomize_bn(cnv.cnv_module(8, seed=3), seed=4)
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
        assert meta["params_detail"] == cnv.cnv_counts(4).to_dict()
    from tiers.level0.graph import analyze  # the trained FP32 graph stores exactly the folded count

    assert analyze(paths["fp32"]).params == _expected_folded(4)
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
    """Changing the training code must retrain: its version is part of the cache directory's key.
    Version 2 is FINN's two-hidden-FC head; weights cached under version 1 have the old topology."""
    assert cnv.FamilyConfig().training_code_version >= 2 and cnv.ARTIFACT_CODE_VERSION >= 2
    bumped = cnv.FamilyConfig(**{**TINY.__dict__, "training_code_version": TINY.training_code_version + 1})
    assert bumped.key() != TINY.key()
