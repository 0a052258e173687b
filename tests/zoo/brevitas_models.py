"""The Brevitas networks the suites share, built once per checkout.

Training them takes a while on two cores, and two environments test them (the main one: QONNX, the float twin on
ONNX Runtime and OpenVINO; `.venv/finn`: FINN's driver on the stand-in board), so both build into one folder the
checkout ignores; the zoo's cache check (recipe and sha256 in the metadata) decides whether a build is current.
"""

from __future__ import annotations

from pathlib import Path

from mlperf_ext.zoo import registry
from mlperf_ext.zoo.mlp_brevitas import qonnx_path

MODELS_DIR = Path(__file__).resolve().parents[2] / ".test-models"
NAMES = ("tfc-w1a1", "tfc-w2a2", "cnv-w1a1", "cnv-w2a2")


def float_twins() -> dict[str, Path]:
    """name -> the float twin (the QONNX model sits beside it: `qonnx_path`)."""
    return dict(zip(NAMES, registry.build(list(NAMES), MODELS_DIR), strict=True))


def qonnx_models() -> dict[str, Path]:
    return {name: qonnx_path(twin) for name, twin in float_twins().items()}
