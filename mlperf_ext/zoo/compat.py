"""Which backend can run which zoo variant: facts checked by running every variant on each runtime.

Verified with `python -m mlperf_ext.zoo.crosscheck` (ORT 1.32, OpenVINO 2026.4) on the MLP family;
OpenVINO's INT2 failure also in /work/shared/notes/offline-models-and-data.md §5. The harness calls
`runnable_on` before loading, refuses with the reason and records it in the result row.
"""

from __future__ import annotations

INT2_TYPES = {"INT2", "UINT2"}
OPENVINO_INT2_REASON = "OpenVINO's ONNX frontend cannot read INT2 tensors (read_model: Unsupported type)"


def _initializer_types(metadata: dict) -> set[str] | None:
    facts = metadata.get("onnx") or {}
    types = facts.get("initializer_types")
    return set(types) if types is not None else None


def runnable_on(metadata: dict, backend: str) -> tuple[bool, str]:
    """(can run, why) for a variant described by its zoo metadata on `backend` (sut.base.BACKENDS name)."""
    types = _initializer_types(metadata)
    has_int2 = bool(types & INT2_TYPES) if types is not None else metadata.get("precision") == "int2"
    if backend == "onnxruntime":
        if has_int2:
            return True, "ONNX Runtime >= 1.32 runs INT2 DequantizeLinear (opset 25) on CPU (dequantized at run time)"
        return True, "ONNX Runtime runs every zoo variant on CPU"
    if backend == "openvino":
        if has_int2:
            return False, OPENVINO_INT2_REASON
        return True, "OpenVINO reads this variant's ONNX (FP32/FP16/INT8 QDQ/MatMulNBits checked)"
    return True, f"no zoo compatibility facts for backend '{backend}'; the backend decides when it loads the model"
