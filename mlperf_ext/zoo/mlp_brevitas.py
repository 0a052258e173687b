"""FINN's own networks, quantization-aware trained with Brevitas and exported to QONNX: TFC and CNV.

- **TFC** is FINN's MNIST MLP: 784-64-64-64-10, bias-free quantized Linear layers, each hidden one followed by
  BatchNorm1d and a quantized activation (Umuroglu et al., "FINN", FPGA 2017; the topology of Brevitas'
  `bnn_pynq` FC model, `src/brevitas_examples/bnn_pynq/models/FC.py`, github.com/Xilinx/brevitas).
- **CNV** is FINN's convolutional network (`bnn_pynq/models/CNV.py`): six bias-free 3x3 valid convolutions of
  C, C, 2C, 2C, 4C, 4C channels with a 2x2 max-pool after the second and fourth, each followed by BatchNorm2d and
  a quantized activation, then FC 8C, FC 8C (BatchNorm1d + activation) and FC 10. Here C = 16 (FINN uses 64) on
  MNIST zero-padded to 1x32x32 (`mnist32`): no CIFAR-10 can be had offline (see `mlperf_ext.zoo.cnv`).

Variants of each (`tfc-w1a1`, `cnv-w2a2`, ...):
- `tfc-w1a1`: binary weights and activations (Brevitas `SignedBinaryWeightPerTensorConst`/`...ActPerTensorConst`,
  exported as QONNX `BipolarQuant`: +-1);
- `tfc-w2a2`: 2-bit weights {-1, 0, 1} and 2-bit activations {-1, -0.5, 0, 0.5}, both at constant power-of-two
  scales as bnn_pynq's quantizers (`CONST` scaling; exported as QONNX `Quant`). Constant power-of-two scales are
  also what makes every product exact in float32, so qonnx's float execution and the integer hardware agree.
The input is the pixel's float p / 255 (exact UINT8 codes with scale 1/255 on an accelerator: FINN would stream p).

Each build trains on the MNIST-5k train split (torch + brevitas, pip extra `brevitas`), exports the QONNX graph
with Brevitas' own `export_qonnx` and cleans it with qonnx's `cleanup`, and writes two files:
- `<name>-qonnx.onnx`: the QONNX model, what FINN compiles and `FakePynqBoard` runs (`sut.fake_accelerator`);
- `<name>.onnx`: its float twin for ONNX Runtime and OpenVINO (`mlperf_ext.zoo.qonnx_twin`), the zoo's artifact.
The held-out accuracy is measured three ways and stored: qonnx's own execution of the QONNX model, ONNX Runtime on
the twin, and their agreement.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mlperf_ext.errors import BackendUnavailable, ModelError
from mlperf_ext.zoo.metadata import ModelInfo, is_current, onnx_facts, versions, write_artifact
from mlperf_ext.zoo.registry import Progress, register_family

VARIANTS = {"w1a1": (1, 1), "w2a2": (2, 2)}
#: bump when training, export or the twin change an artifact's bytes or accuracy
ARTIFACT_CODE_VERSION = 1


@dataclass(frozen=True)
class BrevitasRecipe:
    """Everything that determines a trained network; its key names the build."""

    topology: str  # "tfc" or "cnv"
    width: int  # TFC: hidden neurons; CNV: C
    epochs: int
    batch_size: int = 100
    lr: float = 0.02
    seed: int = 0
    split_seed: int = 0
    test_fraction: float = 0.2

    def key(self, variant: str) -> str:
        data = {**asdict(self), "variant": variant, "code": ARTIFACT_CODE_VERSION}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


RECIPES = {"tfc": BrevitasRecipe("tfc", width=64, epochs=20), "cnv": BrevitasRecipe("cnv", width=16, epochs=6)}
DATASETS = {"tfc": "mnist", "cnv": "mnist32"}
INPUT_SHAPES = {"tfc": (784,), "cnv": (1, 32, 32)}
ARCHITECTURES = {"tfc": "tfc-3x64", "cnv": "cnv-c16"}


def qonnx_path(twin: Path) -> Path:
    """The QONNX model beside a twin: tfc-w1a1.onnx -> tfc-w1a1-qonnx.onnx."""
    return twin.with_name(f"{twin.stem}-qonnx.onnx")


def list_models(topology: str) -> list[ModelInfo]:
    return [ModelInfo(name=f"{topology}-{v}", family=f"{topology}-brevitas", architecture=ARCHITECTURES[topology],
                      pruning=None, precision=v, dataset=DATASETS[topology],
                      description=f"FINN's {topology.upper()} at {v}, Brevitas QAT; the float twin of "
                                  f"{topology}-{v}-qonnx.onnx (QONNX, for FakePynqBoard and FINN)")
            for v in VARIANTS]


def _import_training():
    try:
        import torch
        from brevitas.export import export_qonnx
        from qonnx.util.cleanup import cleanup_model
    except ImportError as exc:
        raise BackendUnavailable("tfc (Brevitas)", "brevitas", f"{exc}") from None
    return torch, export_qonnx, cleanup_model


def _network(torch, weight_bits: int, act_bits: int, recipe: BrevitasRecipe):
    import brevitas.nn as qnn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import (
        Int8ActPerTensorFloatMinMaxInit,
        Int8WeightPerTensorFloat,
        SignedBinaryActPerTensorConst,
        SignedBinaryWeightPerTensorConst,
    )

    class ConstWeight(Int8WeightPerTensorFloat):
        """Integer weight codes in [-1, 1] at a constant scale: FINN's bnn_pynq choice (no learned scale)."""
        scaling_impl_type = ScalingImplType.CONST
        scaling_const = 1.0

    class ConstAct(Int8ActPerTensorFloatMinMaxInit):
        """Activations in [-1, 1) at a constant power-of-two scale, as bnn_pynq's quantized identity."""
        scaling_impl_type = ScalingImplType.CONST
        scaling_const = 1.0
        min_val = -1.0
        max_val = 1.0

    weight = ({"weight_quant": SignedBinaryWeightPerTensorConst} if weight_bits == 1
              else {"weight_quant": ConstWeight, "weight_bit_width": weight_bits})

    def linear(n_in: int, n_out: int):
        return qnn.QuantLinear(n_in, n_out, bias=False, **weight)

    def conv(n_in: int, n_out: int):
        return qnn.QuantConv2d(n_in, n_out, 3, bias=False, **weight)

    def act():
        if act_bits == 1:
            return qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        return qnn.QuantIdentity(act_quant=ConstAct, bit_width=act_bits)

    layers: list = []
    if recipe.topology == "tfc":
        n_in, hidden = 784, [recipe.width] * 3
    else:
        c = recipe.width
        for item in ((1, c), (c, c), "pool", (c, 2 * c), (2 * c, 2 * c), "pool", (2 * c, 4 * c), (4 * c, 4 * c)):
            if item == "pool":
                layers.append(torch.nn.MaxPool2d(2))
            else:
                layers += [conv(*item), torch.nn.BatchNorm2d(item[1]), act()]
        layers.append(torch.nn.Flatten())
        n_in, hidden = 4 * c, [8 * c] * 2
    for width in hidden:
        layers += [linear(n_in, width), torch.nn.BatchNorm1d(width), act()]
        n_in = width
    layers.append(linear(n_in, 10))
    for layer in layers:
        if isinstance(layer, qnn.QuantLinear | qnn.QuantConv2d):  # codes at a constant scale of 1: start on the grid
            torch.nn.init.uniform_(layer.weight, -1.0, 1.0)
    return torch.nn.Sequential(*layers)


def held_out_data(topology: str, recipe: BrevitasRecipe) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MNIST-5k split in the topology's input layout (flat 784, or 1x32x32 zero-padded)."""
    from mlperf_ext.datasets.mnist import cnv_input, mlp_input, mnist_split

    layout = mlp_input if topology == "tfc" else cnv_input
    x_train, y_train, x_test, y_test = mnist_split(seed=recipe.split_seed, test_fraction=recipe.test_fraction)
    return layout(x_train), y_train, layout(x_test), y_test


def train(variant: str, recipe: BrevitasRecipe, progress: Progress | None = None):
    """The QAT-trained torch module (eval mode) for one variant."""
    torch, _, _ = _import_training()
    weight_bits, act_bits = VARIANTS[variant]
    torch.manual_seed(recipe.seed)
    x_train, y_train, _, _ = held_out_data(recipe.topology, recipe)
    model = _network(torch, weight_bits, act_bits, recipe)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.int64))
    gen = torch.Generator().manual_seed(recipe.seed)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
        if progress:
            progress(f"{recipe.topology}-{variant}: epoch {epoch + 1}/{recipe.epochs}, loss {float(loss.detach()):.3f}")
    return model.eval()


def batch_free_reshapes(model):
    """Reshape targets with the traced batch of 1 in front ((1, 64): CNV's flatten) made (-1, 64), so the graph
    runs at any batch; at batch 1 nothing changes."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        target = inits.get(node.input[1]) if node.op_type == "Reshape" and len(node.input) > 1 else None
        if target is not None:
            shape = numpy_helper.to_array(target).copy()
            if shape.size and shape[0] == 1:
                shape[0] = -1
                target.CopyFrom(numpy_helper.from_array(shape, target.name))
    return model


def with_batch(model, batch: int | str):
    """A copy of the graph with this batch dimension on its input and output, intermediate shapes dropped
    (Brevitas traced it at batch 1)."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    for value in (*out.graph.input, *out.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        if isinstance(batch, str):
            dim.dim_param = batch
        else:
            dim.dim_value = batch
    return out


def qonnx_logits(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """The QONNX model run by qonnx's own executor (what FINN checks its builds against)."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    wrapper = ModelWrapper(with_batch(onnx.load_from_string(model_bytes), len(x))).transform(InferShapes())
    name_in, name_out = wrapper.graph.input[0].name, wrapper.graph.output[0].name
    return np.asarray(execute_onnx(wrapper, {name_in: x.astype(np.float32)})[name_out])


def build_model(info: ModelInfo, models_dir: Path, progress: Progress | None = None, force: bool = False) -> Path:
    import onnx

    from mlperf_ext.zoo.evaluate import ort_logits
    from mlperf_ext.zoo.qonnx_twin import float_twin

    variant, topology = info.precision, info.name.split("-")[0]
    spec = RECIPES[topology]
    path = Path(models_dir) / f"{info.name}.onnx"
    recipe = f"{info.family}/{info.name}/{spec.key(variant)}"
    say = progress or (lambda _m: None)
    qpath = qonnx_path(path)
    if not force and is_current(path, recipe) and is_current(qpath, recipe):
        say(f"{info.name}: cached")
        return path
    torch, export_qonnx, cleanup_model = _import_training()
    start = time.perf_counter()
    module = train(variant, spec, say)
    path.parent.mkdir(parents=True, exist_ok=True)
    from qonnx.core.modelwrapper import ModelWrapper

    with tempfile.TemporaryDirectory() as tmp:  # the exporter may write external data beside its file
        raw = Path(tmp) / "export.onnx"
        with torch.no_grad():
            export_qonnx(module, input_t=torch.zeros(1, *INPUT_SHAPES[topology]), export_path=str(raw))
        cleaned = cleanup_model(ModelWrapper(str(raw)))
    qmodel = batch_free_reshapes(cleaned.model)  # batch 1, as FINN takes it
    qbytes = qmodel.SerializeToString()
    twin = with_batch(float_twin(qmodel), "N")
    _, _, x_test, y_test = held_out_data(topology, spec)
    with torch.no_grad():
        torch_top1 = module(torch.from_numpy(x_test)).numpy().argmax(1)
    q_top1 = qonnx_logits(qbytes, x_test).argmax(1)
    twin_top1 = ort_logits(twin.SerializeToString(), x_test).argmax(1)
    agreement = float((q_top1 == twin_top1).mean())
    if float((q_top1 == torch_top1).mean()) < 0.99:
        raise ModelError(f"{info.name}: the exported QONNX model disagrees with Brevitas' forward on "
                         f"{int((q_top1 != torch_top1).sum())} held-out samples; fix: this is a zoo bug, report it")
    weight_bits, act_bits = VARIANTS[variant]
    write_artifact(qbytes, qpath, {
        **info.to_dict(), "name": qpath.stem, "recipe": recipe, "accuracy": float((q_top1 == y_test).mean()),
        "accuracy_runtime": "qonnx execute_onnx", "format": "QONNX (Brevitas export_qonnx, qonnx cleanup)",
        "twin": path.name, "weight_bits": weight_bits, "act_bits": act_bits, "onnx": onnx_facts(qmodel),
        "description": f"FINN's TFC at {variant} as QONNX: what FINN compiles; run by --backend pynq --device fake"})
    meta = {**info.to_dict(), "recipe": recipe, "recipe_fields": asdict(spec),
            "accuracy": float((twin_top1 == y_test).mean()), "accuracy_runtime": "onnxruntime (the float twin)",
            "qonnx": {"file": qpath.name,
                      "accuracy": float((q_top1 == y_test).mean()), "accuracy_runtime": "qonnx execute_onnx",
                      "twin_agreement": agreement, "weight_bits": weight_bits, "act_bits": act_bits,
                      "onnx": onnx_facts(qmodel)},
            "held_out": {"dataset": info.dataset, "samples": int(len(y_test))},
            "input": {"name": twin.graph.input[0].name, "shape": ["N", *INPUT_SHAPES[topology]], "dtype": "float32",
                      "scale": "pixel / 255 (UINT8 codes, scale 1/255)"},
            "onnx": onnx_facts(twin), "versions": {**versions(), "torch": torch.__version__,
                                                   "brevitas": _version("brevitas"), "qonnx": _version("qonnx")},
            "build_time_s": round(time.perf_counter() - start, 3)}
    write_artifact(twin.SerializeToString(), path, meta)
    onnx.checker.check_model(twin)
    say(f"{info.name}: built (held-out top-1 {meta['accuracy']:.4f} twin, {meta['qonnx']['accuracy']:.4f} QONNX, "
        f"agreement {agreement:.4f})")
    return path


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


for _topology in RECIPES:
    register_family(f"{_topology}-brevitas", lambda t=_topology: list_models(t), build_model)
