"""Each runtime's own profiler on the whole model, as a cross-check of the microbenchmarks: per op type,
the share of time the profiler attributes, next to the share the cut layers measured on their own.

ORT: the session profiler's per-node kernel events (`*_kernel_time`, args.op_name). OpenVINO: the
infer request's `profiling_info` with `PERF_COUNT` on (node_type, real_time). Both count a fused kernel
as one op type: ORT's FusedConv (Conv + its activation) is counted as Conv here, and OpenVINO's
Convolution layer holds the Relu or the residual Add it fused; so a small op (Relu, Add) the cut layers
time on their own may have no share at all in a profile, and the cross-check shows that.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

#: runtime kernel names -> the ONNX op type the micro tier names the layer by
KERNEL_OP = {"FusedConv": "Conv", "NchwcConv": "Conv", "QLinearConv": "Conv", "ConvInteger": "Conv",
             "FusedGemm": "Gemm", "QGemm": "Gemm", "FusedMatMul": "MatMul", "MatMulInteger": "MatMul",
             "QLinearMatMul": "MatMul", "MatMulNBits": "MatMul", "NchwcMaxPool": "MaxPool",
             "QLinearAdd": "Add", "QLinearGlobalAveragePool": "GlobalAveragePool"}
#: OpenVINO CPU layer types -> the ONNX op type of the layer they execute (fused layers count as their main op)
OV_LAYER_OP = {"Convolution": "Conv", "GroupConvolution": "Conv", "Pooling": "MaxPool", "MaxPool": "MaxPool",
               "Reduce": "GlobalAveragePool", "Eltwise": "Add", "Concatenation": "Concat", "Reshape": "Flatten"}
RUNS = 20


def _shares(times: dict[str, float]) -> dict[str, float]:
    total = sum(times.values())
    return {k: v / total for k, v in sorted(times.items(), key=lambda kv: -kv[1])} if total > 0 else {}


def ort_profile(model: Path, batch: np.ndarray, threads: int | None = None) -> dict[str, float]:
    """Op type -> share of kernel time over RUNS profiled runs of the whole model (ORT CPU)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as scratch:
        so = ort.SessionOptions()
        if threads is not None:
            so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(scratch) / "micro")
        session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: batch}
        for _ in range(RUNS):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            times[KERNEL_OP.get(op, op)] += float(e.get("dur", 0))
    return _shares(times)


def openvino_profile(model: Path, batch: np.ndarray, threads: int | None = None) -> dict[str, float]:
    """Layer type -> share of real time over RUNS runs of the whole model (OpenVINO CPU, PERF_COUNT)."""
    import openvino as ov

    config = {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(str(model), "CPU", config)
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(np.ascontiguousarray(batch)))
    matmul = "MatMul" if _model_has(model, "MatMul") else "Gemm"
    times: dict[str, float] = defaultdict(float)
    for _ in range(RUNS):
        request.infer()
        for info in request.profiling_info:
            if info.node_type in ("Parameter", "Result", "Constant", "Input", "Output"):
                continue
            kind = matmul if info.node_type.startswith("FullyConnected") else OV_LAYER_OP.get(info.node_type,
                                                                                              info.node_type)
            times[kind] += info.real_time.total_seconds()
    return _shares(times)


def _model_has(model: Path, op_type: str) -> bool:
    import onnx

    return any(n.op_type == op_type for n in onnx.load(str(model), load_external_data=False).graph.node)


PROFILERS = {"onnxruntime": ort_profile, "openvino": openvino_profile}
