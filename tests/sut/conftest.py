"""Small real ONNX models built with onnx.helper, plus the numpy reference each one computes.

Every model is written to pytest's tmp_path so the backends read real files from disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.zoo import registry as zoo_registry
from mlperf_ext.zoo.mlp import MlpFamily, MlpRecipe
from mlperf_ext.zoo.mlp import register as register_mlp_family

OPSET = 17


@dataclass
class BuiltModel:
    """An ONNX file and a numpy function computing the same outputs from the same weights."""

    path: Path
    reference: object  # Callable[[np.ndarray], np.ndarray]
    input_shape: tuple[int, ...]  # one sample, without the batch dimension

    def batch(self, n: int, seed: int = 3) -> np.ndarray:
        """A float32 batch of n random samples."""
        return np.random.default_rng(seed).standard_normal((n, *self.input_shape)).astype(np.float32)


def _save(nodes, inputs, outputs, inits, path: Path, opset: int = OPSET, ir_version: int | None = None) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_mlp(path: Path, batch: int | str = "N", dims=(32, 64, 10), seed: int = 0) -> BuiltModel:
    """MatMul+Add+Relu layers; `batch` is a dim_param (dynamic) or a fixed size."""
    rng = np.random.default_rng(seed)
    ws = [(rng.standard_normal((dims[i], dims[i + 1])) / np.sqrt(dims[i])).astype(np.float32)
          for i in range(len(dims) - 1)]
    bs = [rng.standard_normal(dims[i + 1]).astype(np.float32) * 0.1 for i in range(len(dims) - 1)]
    nodes, inits, prev = [], [], "x"
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"add{i}"])]
        prev = f"add{i}"
        if i < len(ws) - 1:
            nodes.append(helper.make_node("Relu", [prev], [f"relu{i}"]))
            prev = f"relu{i}"
    nodes.append(helper.make_node("Identity", [prev], ["logits"]))
    _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, dims[0]])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, dims[-1]])], inits, path)

    def reference(x: np.ndarray) -> np.ndarray:
        h = x.astype(np.float64)
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = h @ w + b
            if i < len(ws) - 1:
                h = np.maximum(h, 0.0)
        return h

    return BuiltModel(path, reference, (dims[0],))


def build_convnet(path: Path, seed: int = 1) -> BuiltModel:
    """Conv 3x3 (3->8, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(8->5), dynamic batch."""
    rng = np.random.default_rng(seed)
    k = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    kb = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w = rng.standard_normal((8, 5)).astype(np.float32)
    b = (rng.standard_normal(5) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "k", "kb"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["logits"])]
    inits = [numpy_helper.from_array(a, n) for a, n in ((k, "k"), (kb, "kb"), (w, "w"), (b, "b"))]
    _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits, path)

    def reference(x: np.ndarray) -> np.ndarray:
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        n, _, h, wd = x.shape
        conv = np.zeros((n, 8, h, wd))
        for i in range(3):
            for j in range(3):
                conv += np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + wd], k[:, :, i, j])
        conv = np.maximum(conv + kb[None, :, None, None], 0.0)
        return conv.mean(axis=(2, 3)) @ w + b

    return BuiltModel(path, reference, (3, 8, 8))


def build_int2_matmul(path: Path, seed: int = 2) -> BuiltModel:
    """x @ DequantizeLinear(W_int2, per-column scale): the INT2 QDQ pattern OpenVINO cannot read.

    INT2 initializers need opset 25 / IR 11 (the ONNX spec's INT2 type, onnx 1.18).
    """
    rng = np.random.default_rng(seed)
    wq = rng.integers(-2, 2, size=(16, 4)).astype(np.int8)  # INT2 range is [-2, 1]
    scale = np.array([0.5, 0.25, 1.0, 0.125], np.float32)
    inits = [helper.make_tensor("w_q", TensorProto.INT2, list(wq.shape), wq.flatten().tolist()),
             numpy_helper.from_array(scale, "w_scale")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale"], ["w"], axis=1),
             helper.make_node("MatMul", ["x", "w"], ["y"])]
    _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits, path, opset=25, ir_version=11)
    return BuiltModel(path, lambda x: x.astype(np.float64) @ (wq * scale), (16,))


@pytest.fixture
def mlp_model(tmp_path) -> BuiltModel:
    return build_mlp(tmp_path / "mlp.onnx")


@pytest.fixture
def conv_model(tmp_path) -> BuiltModel:
    return build_convnet(tmp_path / "conv.onnx")


@pytest.fixture
def fixed_batch_model(tmp_path) -> BuiltModel:
    return build_mlp(tmp_path / "mlp_b1.onnx", batch=1)


@pytest.fixture
def fixed_batch4_model(tmp_path) -> BuiltModel:
    return build_mlp(tmp_path / "mlp_b4.onnx", batch=4)


@pytest.fixture
def int2_model(tmp_path) -> BuiltModel:
    return build_int2_matmul(tmp_path / "int2.onnx")


@pytest.fixture
def fp16_model(tmp_path) -> BuiltModel:
    """The MLP with float16 weights (float32 I/O), as onnxconverter-common's FP16 recipe makes it."""
    from onnxconverter_common import float16

    built = build_mlp(tmp_path / "mlp32.onnx")
    model = float16.convert_float_to_float16(onnx.load(str(built.path)), keep_io_types=True)
    path = tmp_path / "mlp16.onnx"
    onnx.save(model, str(path))
    return BuiltModel(path, built.reference, built.input_shape)


@pytest.fixture
def corrupt_model(tmp_path) -> Path:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf" + bytes(range(256)) * 4)
    return path


@pytest.fixture
def missing_model(tmp_path) -> Path:
    return tmp_path / "does_not_exist.onnx"


def assert_user_error(exc) -> str:
    """A user-facing error is one line that names a fix, never a traceback."""
    msg = str(exc)
    assert "\n" not in msg and "fix:" in msg and "Traceback" not in msg
    return msg


@pytest.fixture
def int8_model(tmp_path) -> BuiltModel:
    """The MLP quantized to static INT8 QDQ by onnxruntime.quantization (the zoo's INT8 recipe)."""
    from mlperf_ext.zoo import quantize

    built = build_mlp(tmp_path / "mlp32.onnx", dims=(32, 64, 64, 10))
    model, _meta = quantize.to_int8_qdq(onnx.load(str(built.path)), built.batch(64, seed=9), "x")
    path = tmp_path / "mlp8.onnx"
    onnx.save(model, str(path))
    return BuiltModel(path, built.reference, built.input_shape)


def build_conv_bn(path: Path, seed: int = 4) -> BuiltModel:
    """Conv 3x3 (3->4) -> BatchNormalization -> Relu -> GlobalAveragePool -> Flatten: BN as its own node."""
    rng = np.random.default_rng(seed)
    k = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
    scale, bias = rng.uniform(0.5, 1.5, 4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2.0, 4).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "k"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], epsilon=1e-5),
             helper.make_node("Relu", ["b"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["y"], axis=1)]
    inits = [numpy_helper.from_array(a, n) for a, n in ((k, "k"), (scale, "scale"), (bias, "bias"), (mean, "mean"),
                                                        (var, "var"))]
    _save(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits, path)

    def reference(x: np.ndarray) -> np.ndarray:
        xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
        n, _, h, w = x.shape
        conv = np.zeros((n, 4, h, w))
        for i in range(3):
            for j in range(3):
                conv += np.einsum("nchw,oc->nohw", xp[:, :, i:i + h, j:j + w], k[:, :, i, j])
        bn = (conv - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
        bn = bn * scale[None, :, None, None] + bias[None, :, None, None]
        return np.maximum(bn, 0).mean(axis=(2, 3))

    return BuiltModel(path, reference, (3, 8, 8))


@pytest.fixture
def conv_bn_model(tmp_path) -> BuiltModel:
    return build_conv_bn(tmp_path / "conv_bn.onnx")


# ---- the real CLI over a spec, for a backend's four-scenario test ------------------------------------------
SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`mlperf-ext ARGS` in a child process with the project on its path."""
    from tiers.runner.launch import PROJECT_ROOT

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-m", "mlperf_ext.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def run_spec(entries: list[dict], work: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """`mlperf-ext run` over a spec of these grids; (the process, the stored rows by scenario)."""
    from mlperf_ext.store import ResultsStore
    from tiers.runner import layout

    spec = work / "spec.yaml"
    spec.write_text(json.dumps(entries))  # JSON is YAML
    proc = cli("run", str(spec), "--workdir", str(work))
    return proc, {r.point.scenario: r for r in ResultsStore(layout.store_path(work)).results()}


def assert_four_scenarios_valid(proc: subprocess.CompletedProcess, rows: dict, runtime: str) -> None:
    """Every scenario ran, ok and VALID, with system and compute figures and no callback error, on `runtime`."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(rows) == set(SCENARIOS)
    for scenario, r in rows.items():
        assert r.status == "ok", (scenario, r.error)
        assert r.system.valid is True, (scenario, r.system.invalid_reasons)
        assert r.system.throughput > 0 and r.compute.throughput > 0
        assert r.system.lat_p50_ms <= r.system.lat_p90_ms <= r.system.lat_p99_ms
        assert r.callback_errors == 0
        assert r.runtime.name == runtime and r.runtime.device.lower() == "cpu"  # OpenVINO says CPU


#: a tiny MLP family (widths 64 and 32, an epoch or two): the quantized MLPs the PYNQ stand-in is programmed with
TINY_MLP = MlpRecipe(widths=(64, 32), epochs=2, batch_size=64, finetune_epochs=1, qat_epochs=1)


def tiny_quantized_mlps(out: Path, prefix: str) -> dict[str, Path]:
    """The tiny family's INT2 and INT4 variants, built by the zoo's own recipes into `out` (a few seconds)."""
    register_mlp_family(MlpFamily(TINY_MLP, prefix=prefix))
    try:
        int2, int4 = zoo_registry.build([f"{prefix}-w64-int2", f"{prefix}-w64-int4"], out)
        return {"int2": int2, "int4": int4}
    finally:
        zoo_registry.unregister_family(prefix)


#: the stream types and innermost widths both codec tests (against a reference and against FINN's packer) cover
STREAM_TYPES = ("BINARY", "UINT2", "UINT4", "UINT8", "INT2", "INT4", "INT8", "UINT3", "UINT12")
INNER_WIDTHS = (1, 5, 16)


def codec_sample(name: str, inner: int):
    """(the stand-in's DataType, seeded integer values (3, 4, inner) spanning the type's whole range)."""
    from sut.fake_accelerator import DataType

    dtype = DataType.parse(name)
    rng = np.random.default_rng(dtype.bits * 100 + inner)
    return dtype, rng.integers(dtype.min, dtype.max + 1, size=(3, 4, inner))
