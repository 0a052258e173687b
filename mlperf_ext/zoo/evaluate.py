"""Measure held-out top-1 accuracy of an ONNX artifact on ONNX Runtime or OpenVINO.

Accuracy in the zoo's metadata is always measured this way, never assumed from the recipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlperf_ext.errors import BackendUnavailable

EVAL_BATCH = 250


def ort_logits(model: Path | bytes, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """Logits from ONNX Runtime's CPU provider (single input, first output)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(model) if isinstance(model, Path) else model, opts,
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + EVAL_BATCH]})[0]
                           for i in range(0, len(x), EVAL_BATCH)])


def openvino_logits(model: Path, x: np.ndarray) -> np.ndarray:
    """Logits from OpenVINO's CPU plugin with f32 inference precision.

    The default INFERENCE_PRECISION_HINT is bf16 on CPUs with avx512_bf16 (OpenVINO CPU plugin docs), which would not
    be the model's own precision; f32 measures the artifact as stored.
    """
    try:
        import openvino as ov
    except ModuleNotFoundError as exc:
        raise BackendUnavailable("openvino", "openvino", str(exc)) from exc
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(model)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        res = req.infer({0: np.ascontiguousarray(x[i:i + EVAL_BATCH])})
        out.append(np.asarray(res[compiled.outputs[0]]))
    return np.concatenate(out)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(axis=1) == labels).mean())


def accuracy(model: Path, x: np.ndarray, y: np.ndarray, backend: str = "onnxruntime") -> float:
    if backend == "onnxruntime":
        return top1(ort_logits(model, x), y)
    if backend == "openvino":
        return top1(openvino_logits(model, x), y)
    raise ValueError(f"no accuracy evaluator for backend {backend!r}")
