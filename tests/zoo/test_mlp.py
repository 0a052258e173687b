"""The numpy MLP: gradients, training, structured pruning, BatchNorm folding and ONNX export."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from mlperf_ext.datasets.mnist import mlp_input, mnist_split
from mlperf_ext.zoo import numpy_training as nt
from mlperf_ext.zoo.evaluate import ort_logits
from mlperf_ext.zoo.mlp import export_onnx


@pytest.fixture(scope="module")
def data():
    x_train, y_train, x_test, y_test = mnist_split()
    return mlp_input(x_train), y_train, mlp_input(x_test), y_test


def _with_stats(p: nt.MlpWeights, seed: int = 1) -> nt.MlpWeights:
    """Non-trivial BN parameters and running statistics, so folding is really exercised."""
    rng = np.random.default_rng(seed)
    for i in range(len(p.hidden_w)):
        n = p.hidden_w[i].shape[1]
        p.gamma[i] = rng.uniform(-1.5, 1.5, n).astype(np.float32)
        p.beta[i] = rng.normal(0, 0.5, n).astype(np.float32)
        p.running_mean[i] = rng.normal(0, 0.3, n).astype(np.float32)
        p.running_var[i] = rng.uniform(0.2, 3.0, n).astype(np.float32)
    p.out_b = rng.normal(0, 0.1, p.out_b.shape).astype(np.float32)
    return p


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    p = nt.init_mlp(6, 5, 2, 3, seed=0)
    for group in (p.hidden_w, p.gamma, p.beta):
        for i, a in enumerate(group):
            group[i] = (a + rng.normal(0, 0.1, a.shape)).astype(np.float64)
    p.out_w, p.out_b = p.out_w.astype(np.float64), rng.normal(0, 0.1, 3)
    x, y = rng.normal(size=(8, 6)), rng.integers(0, 3, 8)
    _, grads = nt._train_step(p.copy(), x, y, None)
    params = nt._params(p)
    for a, g in zip(params, grads, strict=True):
        for idx in [(0,) * a.ndim, tuple(s - 1 for s in a.shape)]:
            old = a[idx]
            a[idx] = old + 1e-6
            up = nt._train_step(p.copy(), x, y, None)[0]
            a[idx] = old - 1e-6
            down = nt._train_step(p.copy(), x, y, None)[0]
            a[idx] = old
            assert g[idx] == pytest.approx((up - down) / 2e-6, rel=1e-3, abs=1e-6)


def test_training_reduces_loss_and_learns(data):
    x_train, y_train, x_test, y_test = data
    p = nt.init_mlp(784, 32, 3, 10, seed=0)
    before = nt.accuracy(p, x_test, y_test)
    cfg = nt.TrainConfig(epochs=2, batch_size=64, seed=0)
    nt.train(p, x_train, y_train, cfg)
    assert cfg.history[1] < cfg.history[0]
    assert nt.accuracy(p, x_test, y_test) > max(0.8, before + 0.3)


def test_training_is_deterministic(data):
    x_train, y_train = data[0][:512], data[1][:512]
    runs = []
    for _ in range(2):
        p = nt.init_mlp(784, 16, 3, 10, seed=3)
        nt.train(p, x_train, y_train, nt.TrainConfig(epochs=1, batch_size=64, seed=3))
        runs.append(p)
    np.testing.assert_array_equal(runs[0].out_w, runs[1].out_w)


def test_pruning_keeps_top_l1_neurons_and_slices_next_layer():
    p = _with_stats(nt.init_mlp(12, 8, 3, 4, seed=0))
    q, kept = nt.prune_hidden(p, 3)
    assert q.widths == [3, 3, 3]
    # layer 0: the top-3 columns by L1 norm of incoming weights
    expect0 = np.sort(np.argsort(-np.abs(p.hidden_w[0]).sum(axis=0))[:3])
    np.testing.assert_array_equal(kept[0], expect0)
    # layer 1: rows sliced by layer 0's keep, then top-3 columns of what is left
    rows = p.hidden_w[1][kept[0], :]
    np.testing.assert_array_equal(kept[1], np.sort(np.argsort(-np.abs(rows).sum(axis=0))[:3]))
    np.testing.assert_array_equal(q.hidden_w[1], rows[:, kept[1]])
    np.testing.assert_array_equal(q.out_w, p.out_w[kept[2], :])
    np.testing.assert_array_equal(q.running_var[2], p.running_var[2][kept[2]])


def test_pruned_model_equals_original_with_pruned_neurons_silenced():
    p = _with_stats(nt.init_mlp(12, 8, 3, 4, seed=2))
    q, kept = nt.prune_hidden(p, 5)
    silenced = p.copy()
    for i, keep in enumerate(kept):
        drop = np.setdiff1d(np.arange(8), keep)
        silenced.gamma[i][drop] = 0.0
        silenced.beta[i][drop] = 0.0  # relu(0) = 0: the neuron contributes nothing downstream
    x = np.random.default_rng(0).normal(size=(16, 12)).astype(np.float32)
    np.testing.assert_allclose(nt.forward(q, x), nt.forward(silenced, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("quant", [None, nt.fake_quant_2bit], ids=["fp32", "qat-int2-grid"])
def test_folded_onnx_export_equals_numpy_forward(data, quant):
    p = _with_stats(nt.init_mlp(784, 24, 3, 10, seed=0))
    model = export_onnx(nt.fold_batchnorm(p, quant))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 784
    x = data[2][:200]
    expected = nt.forward(p, x, quant)
    np.testing.assert_allclose(ort_logits(model.SerializeToString(), x), expected, rtol=1e-4, atol=1e-4)


def test_ternarize_is_per_channel_symmetric_two_bit():
    w = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32) * np.arange(1, 7)
    codes, scale = nt.ternarize(w)
    assert set(np.unique(codes)) <= {-1, 0, 1}
    np.testing.assert_allclose(scale, 1.4 * np.abs(w).mean(axis=0), rtol=1e-6)
    # symmetric: negating the weights negates the codes
    np.testing.assert_array_equal(nt.ternarize(-w)[0], -codes)


# ---- parameter counts against the published figures ------------------------------------------------
#: Blott 2021 (PhD thesis), Table 6.1: weight elements of the 784-W-W-W-10 MLP, printed to 0.01 M.
#: FINN's MLP layers are bias-free QuantLinear + BatchNorm1d (Brevitas bnn_pynq models/FC.py), so the
#: elements are the four weight matrices.
MLP_PUBLISHED_MILLIONS = {2048: 10.01, 1024: 2.91, 512: 0.93, 256: 0.33}


@pytest.mark.parametrize("width", sorted(MLP_PUBLISHED_MILLIONS, reverse=True))
def test_weight_counts_match_the_published_figures(width):
    """Equal at the printed precision (0.01 M) and within 1 % where 0.01 M is finer than 1 %
    (W = 256 is +1.3 %: 0.334 M printed as 0.33 M)."""
    from mlperf_ext.zoo.mlp import mlp_weight_count

    published = MLP_PUBLISHED_MILLIONS[width]
    count = mlp_weight_count(width)
    assert count == 784 * width + 2 * width * width + width * 10
    assert round(count / 1e6, 2) == published
    assert abs(count - published * 1e6) <= max(0.01 * published * 1e6, 0.005e6)


@pytest.mark.parametrize("width", [2048, 256])
def test_level0_analysis_of_the_exported_graph_agrees_with_the_counts(width):
    """The exported (BN-folded) graph of an untrained 784-W-W-W-10 MLP, read by tiers.level0.graph:
    parameters = weights + one bias per neuron, MACs = the weight count."""
    from mlperf_ext.zoo.mlp import mlp_folded_param_count, mlp_weight_count
    from tiers.level0.graph import analyze

    p = _with_stats(nt.init_mlp(784, width, 3, 10, seed=0))
    a = analyze(export_onnx(nt.fold_batchnorm(p)))
    assert a.params == mlp_folded_param_count(width) == mlp_weight_count(width) + 3 * width + 10
    assert a.mac_ops == 2 * mlp_weight_count(width)
    assert a.unsupported == []
