"""Fixtures for the harness tests: a small real ONNX MLP that takes the built-in `mnist` samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def make_mlp(path: Path, batch_dim="N", hidden: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.standard_normal((784, hidden)).astype(np.float32) * 0.05,
        "b1": rng.standard_normal(hidden).astype(np.float32) * 0.1,
        "w2": rng.standard_normal((hidden, 10)).astype(np.float32) * 0.2,
        "b2": rng.standard_normal(10).astype(np.float32) * 0.1,
    }
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, 784])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch_dim, 10])],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def numpy_top1(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's top-1 computed without any runtime, from the stored weights."""
    model = onnx.load(path)
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    h = np.maximum(x @ w["w1"] + w["b1"], 0)
    return (h @ w["w2"] + w["b2"]).argmax(axis=1)


@pytest.fixture(scope="session")
def mlp_model(tmp_path_factory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("models") / "mlp.onnx")


@pytest.fixture(scope="session")
def fixed_batch_model(tmp_path_factory) -> Path:
    return make_mlp(tmp_path_factory.mktemp("models") / "mlp_b1.onnx", batch_dim=1)


#: LoadGen settings that keep each quick run well under a second of measuring
SHORT = {"min_duration_ms": 200}
