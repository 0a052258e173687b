"""A FINN-style MLP trained with plain numpy: forward, backward, Adam, pruning and 2-bit QAT.

Why numpy: the core may import only numpy (docs/architecture.md), and the models are small enough
(<= 10 M parameters) that a few epochs train in seconds on 2 cores. Topology after FINN's
TFC/SFC/LFC: `hidden_layers` x (Linear without bias -> BatchNorm -> ReLU), then Linear -> 10 logits.
A bias before BatchNorm would be cancelled by the batch mean, so hidden Linears have none.

Everything is float32 and driven by one `numpy.random.Generator` seed, so a run is repeatable.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # running = (1 - m) * running + m * batch, as torch.nn.BatchNorm1d does

#: the narrow-range signed 2-bit grid used by QAT: {-1, 0, +1} (2-bit two's complement minus -2, so the
#: grid is symmetric and a sign flip stays on it; Brevitas' default weight quantizers are narrow-range too)
INT2_LEVELS = 1
#: ternary threshold 0.7 * mean|w| (Li & Liu 2016, "Ternary Weight Networks", arXiv:1605.04711):
#: round(w / s) with s = 1.4 * mean|w| sends |w| < 0.7 * mean|w| to zero
TWN_SCALE_FACTOR = 1.4


@dataclass
class MlpWeights:
    """Parameters and BatchNorm statistics; hidden weights are (in, out), as x @ w uses them."""

    hidden_w: list[np.ndarray]
    gamma: list[np.ndarray]
    beta: list[np.ndarray]
    running_mean: list[np.ndarray]
    running_var: list[np.ndarray]
    out_w: np.ndarray
    out_b: np.ndarray

    @property
    def widths(self) -> list[int]:
        return [int(w.shape[1]) for w in self.hidden_w]

    @property
    def in_features(self) -> int:
        return int(self.hidden_w[0].shape[0])

    def param_count(self) -> int:
        """Trainable parameters (weights, biases, BN affine); running statistics excluded."""
        return int(sum(w.size for w in self.hidden_w) + sum(g.size + b.size for g, b in zip(self.gamma, self.beta, strict=True))
                   + self.out_w.size + self.out_b.size)

    def copy(self) -> MlpWeights:
        return MlpWeights(*[[a.copy() for a in group] for group in
                            (self.hidden_w, self.gamma, self.beta, self.running_mean, self.running_var)],
                          out_w=self.out_w.copy(), out_b=self.out_b.copy())

    def to_npz_bytes(self) -> bytes:
        """The arrays as .npz bytes (callers write them atomically)."""
        arrays = {"out_w": self.out_w, "out_b": self.out_b}
        for i in range(len(self.hidden_w)):
            arrays.update({f"w{i}": self.hidden_w[i], f"gamma{i}": self.gamma[i], f"beta{i}": self.beta[i],
                           f"mean{i}": self.running_mean[i], f"var{i}": self.running_var[i]})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path) -> MlpWeights:
        with np.load(path) as z:
            n = sum(1 for k in z.files if k.startswith("w"))
            get = [[z[f"{p}{i}"].astype(np.float32) for i in range(n)] for p in ("w", "gamma", "beta", "mean", "var")]
            return cls(*get, out_w=z["out_w"].astype(np.float32), out_b=z["out_b"].astype(np.float32))


def init_mlp(in_features: int, width: int, hidden_layers: int, classes: int, seed: int) -> MlpWeights:
    """He-normal weights (ReLU follows), BN gamma 1 / beta 0, output layer Glorot-scaled."""
    rng = np.random.default_rng(seed)
    hidden_w, fan_in = [], in_features
    for _ in range(hidden_layers):
        hidden_w.append((rng.standard_normal((fan_in, width)) * np.sqrt(2.0 / fan_in)).astype(np.float32))
        fan_in = width
    ones = [np.ones(width, np.float32) for _ in range(hidden_layers)]
    zeros = [np.zeros(width, np.float32) for _ in range(hidden_layers)]
    out_w = (rng.standard_normal((width, classes)) * np.sqrt(1.0 / width)).astype(np.float32)
    return MlpWeights(hidden_w, ones, [z.copy() for z in zeros], [z.copy() for z in zeros],
                      [o.copy() for o in ones], out_w, np.zeros(classes, np.float32))


def ternarize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (column) symmetric 2-bit weights: (codes in {-1,0,1} as int8, scale per column)."""
    scale = (TWN_SCALE_FACTOR * np.abs(w).mean(axis=0)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    codes = np.clip(np.rint(w / scale), -INT2_LEVELS, INT2_LEVELS).astype(np.int8)
    return codes, scale


def fake_quant_2bit(w: np.ndarray) -> np.ndarray:
    codes, scale = ternarize(w)
    return codes.astype(np.float32) * scale


def forward(p: MlpWeights, x: np.ndarray, quant: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Inference forward (BN with running statistics); `quant` maps each weight as QAT export does."""
    q = quant or (lambda a: a)
    h = x.astype(np.float32)
    for i, w in enumerate(p.hidden_w):
        z = h @ q(w)
        z = (z - p.running_mean[i]) / np.sqrt(p.running_var[i] + BN_EPS) * p.gamma[i] + p.beta[i]
        h = np.maximum(z, 0.0)
    return h @ q(p.out_w) + p.out_b


def accuracy(p: MlpWeights, x: np.ndarray, y: np.ndarray, quant: Callable | None = None) -> float:
    return float((forward(p, x, quant).argmax(axis=1) == y).mean())


def _train_step(p: MlpWeights, x: np.ndarray, y: np.ndarray, quant: Callable | None) -> tuple[float, list]:
    """One forward/backward pass in training mode (batch BN statistics); returns loss and gradients.

    With `quant` the forward uses quantized weights and the gradient flows to the float weights
    unchanged (straight-through estimator, Bengio et al. 2013, arXiv:1308.3432).
    """
    q = quant or (lambda a: a)
    cache, h = [], x
    for i, w in enumerate(p.hidden_w):
        wq = q(w)
        z = h @ wq
        mu, var = z.mean(axis=0), z.var(axis=0)
        inv = 1.0 / np.sqrt(var + BN_EPS)
        zhat = (z - mu) * inv
        a = zhat * p.gamma[i] + p.beta[i]
        out = np.maximum(a, 0.0)
        cache.append((h, wq, zhat, inv, a))
        p.running_mean[i] = ((1 - BN_MOMENTUM) * p.running_mean[i] + BN_MOMENTUM * mu).astype(np.float32)
        n = z.shape[0]
        p.running_var[i] = ((1 - BN_MOMENTUM) * p.running_var[i]
                            + BN_MOMENTUM * var * n / max(n - 1, 1)).astype(np.float32)
        h = out
    owq = q(p.out_w)
    logits = h @ owq + p.out_b
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    prob = e / e.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = float(-np.log(prob[np.arange(n), y] + 1e-12).mean())
    d = prob
    d[np.arange(n), y] -= 1.0
    d /= n
    grads_out = (h.T @ d, d.sum(axis=0))
    dh = d @ owq.T
    hidden_grads = []
    for i in reversed(range(len(p.hidden_w))):
        h_in, wq, zhat, inv, a = cache[i]
        da = dh * (a > 0)
        dgamma, dbeta = (da * zhat).sum(axis=0), da.sum(axis=0)
        dzhat = da * p.gamma[i]
        dz = inv * (dzhat - dzhat.mean(axis=0) - zhat * (dzhat * zhat).mean(axis=0))
        hidden_grads.append((h_in.T @ dz, dgamma, dbeta))
        if i > 0:
            dh = dz @ wq.T
    hidden_grads.reverse()
    grads = [g for triple in hidden_grads for g in triple] + list(grads_out)
    return loss, grads


def _params(p: MlpWeights) -> list[np.ndarray]:
    out = []
    for i in range(len(p.hidden_w)):
        out += [p.hidden_w[i], p.gamma[i], p.beta[i]]
    return out + [p.out_w, p.out_b]


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    quant: str | None = None  # None (float) or "int2" (QAT with the straight-through estimator)
    history: list[float] = field(default_factory=list)  # mean loss per epoch, filled by train()


def train(p: MlpWeights, x: np.ndarray, y: np.ndarray, cfg: TrainConfig,
          log: Callable[[str], None] | None = None) -> MlpWeights:
    """Adam (Kingma & Ba 2015 defaults b1=0.9, b2=0.999) with a cosine learning-rate decay; in place."""
    quant = fake_quant_2bit if cfg.quant == "int2" else None
    if cfg.quant not in (None, "int2"):
        raise ValueError(f"unsupported QAT mode {cfg.quant!r}")
    rng = np.random.default_rng(cfg.seed)
    params = _params(p)
    m = [np.zeros_like(a) for a in params]
    v = [np.zeros_like(a) for a in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    steps_per_epoch = int(np.ceil(len(x) / cfg.batch_size))
    total, t = cfg.epochs * steps_per_epoch, 0
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(x))
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs a batch statistic
                continue
            loss, grads = _train_step(p, x[idx], y[idx], quant)
            losses.append(loss)
            t += 1
            lr = cfg.lr * 0.5 * (1 + np.cos(np.pi * (t - 1) / total))
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            for a, g, mi, vi in zip(params, grads, m, v, strict=True):
                mi *= b1
                mi += (1 - b1) * g
                vi *= b2
                vi += (1 - b2) * (g * g)
                a -= (lr / c1) * mi / (np.sqrt(vi / c2) + eps)
        cfg.history.append(float(np.mean(losses)))
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs} loss {cfg.history[-1]:.4f}")
    return p


def prune_hidden(p: MlpWeights, width: int) -> tuple[MlpWeights, list[np.ndarray]]:
    """Structured L1 magnitude pruning: in every hidden layer keep the `width` neurons whose incoming
    weights have the largest L1 norm (ties: lower index first), and slice the next layer's rows.

    Returns the pruned copy and the kept indices per hidden layer (sorted, original order).
    """
    q = p.copy()
    kept_all, prev_keep = [], None
    for i in range(len(q.hidden_w)):
        w = q.hidden_w[i]
        if prev_keep is not None:
            w = w[prev_keep, :]
        if width > w.shape[1]:
            raise ValueError(f"cannot prune layer {i} of width {w.shape[1]} to {width}")
        norms = np.abs(w).sum(axis=0)
        keep = np.sort(np.argsort(-norms, kind="stable")[:width])
        q.hidden_w[i] = np.ascontiguousarray(w[:, keep])
        for group in (q.gamma, q.beta, q.running_mean, q.running_var):
            group[i] = group[i][keep].copy()
        kept_all.append(keep)
        prev_keep = keep
    q.out_w = np.ascontiguousarray(q.out_w[prev_keep, :])
    return q, kept_all


def fold_batchnorm(p: MlpWeights, quant: Callable[[np.ndarray], np.ndarray] | None = None,
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (in, out), bias (out,)) per layer with each BatchNorm folded into its Linear:
    w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps)."""
    q = quant or (lambda a: a)
    layers = []
    for i, w in enumerate(p.hidden_w):
        k = p.gamma[i] / np.sqrt(p.running_var[i] + BN_EPS)
        layers.append(((q(w) * k).astype(np.float32), (p.beta[i] - p.running_mean[i] * k).astype(np.float32)))
    layers.append((q(p.out_w).astype(np.float32), p.out_b.astype(np.float32)))
    return layers
