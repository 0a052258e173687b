"""FINN's TFC and CNV, Brevitas QAT -> QONNX, their float twins, and the stand-in's network, on the held-out split.

Real parts: torch + Brevitas train both variants on the MNIST-5k train split, Brevitas' `export_qonnx` writes the
QONNX graph, qonnx's `execute_onnx` runs it, ONNX Runtime and OpenVINO run the twin, and the stand-in board's
`QonnxAccelerator` (numpy, integer accumulation) runs the QONNX graph from the UINT8 pixel codes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from mlperf_ext.zoo import registry
from mlperf_ext.zoo.evaluate import openvino_logits, ort_logits
from mlperf_ext.zoo.metadata import read_metadata
from mlperf_ext.zoo.mlp_brevitas import RECIPES, held_out_data, qonnx_logits, qonnx_path
from mlperf_ext.zoo.qonnx_twin import QONNX_DOMAIN
from sut.fake_accelerator import PIXEL_SCALE, accelerator_refusal, load_accelerator
from sut.fake_qonnx import QonnxAccelerator
from tests.zoo.brevitas_models import float_twins

pytest.importorskip("brevitas", reason="the TFC family needs the brevitas extra (pip install 'mlperf-ext[brevitas]')")


@pytest.fixture(scope="module")
def twins() -> dict:
    return float_twins()


@pytest.mark.parametrize("name, quantizer", [("tfc-w1a1", "BipolarQuant"), ("tfc-w2a2", "Quant"),
                                             ("cnv-w1a1", "BipolarQuant"), ("cnv-w2a2", "Quant")])
def test_qonnx_model_twin_and_stand_in_agree_on_the_whole_held_out_split(twins, name, quantizer):
    topology, variant = name.split("-")
    _, _, x, y = held_out_data(topology, RECIPES[topology])
    assert len(x) == 1000
    twin, qonnx = twins[name], qonnx_path(twins[name])
    qmodel = onnx.load(str(qonnx))
    ops = {n.op_type for n in qmodel.graph.node if n.domain == QONNX_DOMAIN}
    assert ops == {quantizer}  # weights and activations quantized, as FINN takes them
    assert not any(n.domain for n in onnx.load(str(twin)).graph.node)  # the twin is standard ONNX

    q = qonnx_logits(qonnx.read_bytes(), x).argmax(1)
    ort = ort_logits(twin, x).argmax(1)
    ov = openvino_logits(twin, x).argmax(1)
    acc = load_accelerator(qonnx, PIXEL_SCALE)
    assert isinstance(acc, QonnxAccelerator) and acc.precision() == variant
    stand_in = acc.labels(np.rint(x.astype(np.float64) * 255).astype(np.int64))
    report = {name: float((labels == y).mean()) for name, labels in
              (("qonnx", q), ("ort twin", ort), ("openvino twin", ov), ("stand-in", stand_in))}
    print(f"{name} held-out top-1: {report}; twin agreement ORT {(ort == q).mean():.4f} OV {(ov == q).mean():.4f}")
    np.testing.assert_array_equal(stand_in, q)  # every held-out sample
    assert (ort == q).mean() >= 0.995 and (ov == q).mean() >= 0.995
    assert report["qonnx"] > 0.85  # trained: far above the 10 % of chance

    meta, qmeta = read_metadata(twin), read_metadata(qonnx)
    assert meta["accuracy"] == report["ort twin"] and meta["qonnx"]["accuracy"] == report["qonnx"]
    assert qmeta["accuracy"] == report["qonnx"] and qmeta["precision"] == variant
    assert meta["qonnx"]["twin_agreement"] == float((ort == q).mean())


def test_the_float_twin_is_refused_by_the_stand_in_and_the_qonnx_model_accepted(twins):
    assert accelerator_refusal(qonnx_path(twins["tfc-w1a1"])) is None
    assert "cannot model" in (accelerator_refusal(twins["tfc-w1a1"]) or "")


def test_a_second_build_is_the_cache(twins, monkeypatch):
    from mlperf_ext.zoo import mlp_brevitas

    def no_training(*_args, **_kwargs):
        raise AssertionError("a current build must not train again")

    monkeypatch.setattr(mlp_brevitas, "train", no_training)
    twin = twins["tfc-w1a1"]
    before = (twin.read_bytes(), qonnx_path(twin).read_bytes())
    assert registry.build(["tfc-w1a1"], twin.parent)[0] == twin
    assert (twin.read_bytes(), qonnx_path(twin).read_bytes()) == before
