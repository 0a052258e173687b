"""The kernel sweep: valid one-node models that compute what they claim, the precision read back from the
runtimes, the TOP/s arithmetic, and the ceilings taken only from kernels that ran in the precision asked."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.tiers.micro.models import ort_run
from tiers.micro import kernels
from tiers.micro.kernels import (
    CONV_DEFAULT,
    GEMM_DEFAULT,
    GEMM_QUICK,
    ConvShape,
    GemmShape,
    KernelResult,
    achieved_tops,
    build_model,
    ceiling_reason,
    ceilings,
    forms,
    kernel_input,
    sweep,
    time_step,
)

GEMM = GemmShape(m=6, n=3, k=40, source="test")  # K not a multiple of MatMulNBits' block of 32
#: rectangular filter, asymmetric padding and strides, batch 2: every index of the conv formula is exercised
CONV = ConvShape(w=9, h=7, c=3, n=2, k=4, s=3, r=2, pad_w=1, pad_h=0, stride_w=2, stride_h=1, source="test")


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def numpy_conv(x: np.ndarray, w: np.ndarray, s: ConvShape) -> np.ndarray:
    """Direct convolution (cross-correlation, as ONNX Conv) by summing over the filter taps."""
    xp = np.pad(x, ((0, 0), (0, 0), (s.pad_h, s.pad_h), (s.pad_w, s.pad_w)))
    out = np.zeros((s.n, s.k, s.out_h, s.out_w), dtype=np.float64)
    for i in range(s.r):
        for j in range(s.s):
            patch = xp[:, :, i: i + s.stride_h * s.out_h: s.stride_h, j: j + s.stride_w * s.out_w: s.stride_w]
            out += np.einsum("nchw,kc->nkhw", patch, w[:, :, i, j])
    return out


@pytest.mark.parametrize("shape", [GEMM, CONV], ids=["gemm", "conv"])
@pytest.mark.parametrize("model", ["fp32", "fp16", "bf16", "qdq", "integer", "nbits"])
def test_kernel_models_are_valid_onnx(shape, model):
    if shape.kind == "conv" and model in ("integer", "nbits"):
        with pytest.raises(kernels.ConfigError, match="fix:"):
            build_model(shape, model)
        return
    m = build_model(shape, model)
    onnx.checker.check_model(m, full_check=True)
    assert len(m.graph.input) == 1 and [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim][0] == \
        shape.batch
    heavy = [n.op_type for n in m.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    assert heavy == [{"integer": "MatMulInteger", "nbits": "MatMulNBits"}.get(model, "MatMul" if shape.kind == "gemm"
                                                                              else "Conv")]


def test_gemm_model_computes_x_times_w():
    m = build_model(GEMM, "fp32")
    x = kernel_input(m)
    assert x.shape == (GEMM.n, GEMM.k) and x.dtype == np.float32
    y = ort_run(m, {"X": x})["Y"]
    np.testing.assert_allclose(y, x.astype(np.float64) @ _weights(m)["W"], rtol=1e-4, atol=1e-5)


def test_conv_model_computes_the_deepbench_convolution():
    m = build_model(CONV, "fp32")
    x = kernel_input(m)
    assert x.shape == (CONV.n, CONV.c, CONV.h, CONV.w)
    y = ort_run(m, {"X": x})["Y"]
    assert y.shape == (CONV.n, CONV.k, CONV.out_h, CONV.out_w) == (2, 4, 6, 5)
    np.testing.assert_allclose(y, numpy_conv(x.astype(np.float64), _weights(m)["W"], CONV), rtol=1e-4, atol=1e-5)


def test_matmulinteger_model_is_exact_u8_times_s8():
    m = build_model(GEMM, "integer")
    x = kernel_input(m)
    assert x.dtype == np.uint8
    y = ort_run(m, {"X": x})["Y"]
    np.testing.assert_array_equal(y, x.astype(np.int32) @ _weights(m)["W"].astype(np.int32))


def test_qdq_model_is_the_quantized_matmul_within_one_output_step():
    m = build_model(GEMM, "qdq")
    w = _weights(m)
    x = kernel_input(m)
    xs, xz, ws, ys, yz = (float(w[k]) for k in ("x_scale", "x_zero", "w_scale", "y_scale", "y_zero"))
    xq = np.clip(np.rint(x / xs) + xz, 0, 255)
    y = ((xq - xz) * xs) @ (w["W_q"].astype(np.float64) * ws)
    expected = (np.clip(np.rint(y / ys) + yz, 0, 255) - yz) * ys
    got = ort_run(m, {"X": x})["Y"]
    assert np.abs(got - expected).max() <= ys * 1.001  # rounding of the int32 accumulator may differ by a step
    assert np.abs(expected).max() > 10 * ys  # the outputs are not all quantized to zero


def test_matmulnbits_model_is_the_dequantized_int4_matmul():
    """Codes packed two per byte, the lower index in the low nibble, zero point 8 (ORT contrib-op spec,
    com.microsoft.MatMulNBits); accuracy_level 4 quantizes the activations to int8, hence the tolerance."""
    m = build_model(GEMM, "nbits")
    w = _weights(m)
    packed, scales = w["B"], w["scales"]
    codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(GEMM.m, -1)[:, : GEMM.k].astype(np.float64)
    blocks = -(-GEMM.k // kernels.NBITS_BLOCK)
    scale = np.repeat(scales.reshape(GEMM.m, blocks), kernels.NBITS_BLOCK, axis=1)[:, : GEMM.k]
    weights = (codes - 8) * scale  # [M, K]
    x = kernel_input(m)
    got = ort_run(m, {"X": x})["Y"]
    expected = x.astype(np.float64) @ weights.T
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 0.05


def test_macs_and_tops_on_hand_examples():
    assert GemmShape(m=2, n=3, k=4).macs == 24
    assert achieved_tops(24, 1e-9) == pytest.approx(2 * 24 / 1e-9 / 1e12)  # 48 GOP/s = 0.048 TOP/s
    same = ConvShape(w=4, h=4, c=2, n=1, k=3, s=3, r=3, pad_w=1, pad_h=1, stride_w=1, stride_h=1)
    assert (same.out_h, same.out_w, same.macs) == (4, 4, 3 * 4 * 4 * 2 * 3 * 3)
    stem = ConvShape(224, 224, 3, 1, 64, 7, 7, 3, 3, 2, 2)  # ResNet-50's stem: 118 M MACs
    assert (stem.out_h, stem.out_w, stem.macs) == (112, 112, 64 * 112 * 112 * 3 * 7 * 7)
    assert CONV.macs == 2 * 4 * 6 * 5 * 3 * 2 * 3


def test_shape_lists_are_deepbench_sets_and_unique():
    for shapes in (GEMM_QUICK, GEMM_DEFAULT, CONV_DEFAULT, kernels.GEMM_FULL, kernels.CONV_FULL):
        # the ceiling shapes beside DeepBench's say why they are there
        assert shapes and all("DeepBench" in s.source or "ceiling shape:" in s.source for s in shapes)
        assert len({s.slug for s in shapes}) == len(shapes)
    assert set(GEMM_DEFAULT) < set(kernels.GEMM_FULL) and set(CONV_DEFAULT) < set(kernels.CONV_FULL)
    assert len(kernels.GEMM_DEVICE_SET) == 13 and len(kernels.CONV_DEVICE_SET) == 15


def test_ceiling_only_for_exactly_the_precision_asked():
    assert ceiling_reason("openvino", "int8", "int8", "int8") == ""
    assert "not fp16" in ceiling_reason("onnxruntime", "fp16", "fp32 (fp16 weights upcast)", "fp32")
    assert "not int4" in ceiling_reason("onnxruntime", "int4", "int8 with int4 weights", "int8")
    assert "not bf16" in ceiling_reason("openvino", "bf16", "mixed: 1 of 2 FullyConnected bf16, 1 fp32", "bf16")


def _row(runtime, precision, best_tops, ceiling, kind="gemm"):
    return KernelResult(kind, "s", {}, "", runtime, precision, "f", 1, tops=best_tops / 2, best_tops=best_tops,
                        ceiling=ceiling)


def test_ceilings_take_the_best_kernel_that_ran_in_the_precision():
    rows = [_row("onnxruntime", "fp32", 0.1, True), _row("openvino", "fp32", 0.2, True),
            _row("onnxruntime", "fp16", 0.3, False),  # ran as fp32: never an fp16 ceiling
            _row("openvino", "int8", 0.5, True), _row("openvino", "int8", 9.0, True, kind="conv")]
    best = ceilings(rows)
    # by the fastest execution (what the host can do), not the median one
    assert {k: (v.runtime, v.ceiling_tops) for k, v in best.items()} == {"fp32": ("openvino", 0.2),
                                                                          "int8": ("openvino", 0.5)}
    assert ceilings(rows, kinds=("conv",))["int8"].ceiling_tops == 9.0


def test_time_step_takes_the_median_and_the_fastest_after_the_warmup():
    durations = iter([5.0, 5.0, 0.3, 0.1, 0.2, 0.5, 0.4])  # two warm-up runs, then five timed ones

    def scripted_step() -> float:
        return next(durations)

    assert time_step(scripted_step, budget_s=0.0, warmup=2, min_runs=5) == (0.3, 5, 0.1)


def test_forms_name_a_reason_where_no_kernel_is_swept():
    assert forms("onnxruntime", "conv", "int4")[0] == () and "MatMulNBits" in forms("openvino", "conv", "int4")[1]
    assert [f.model for f in forms("onnxruntime", "gemm", "int8")[0]] == ["qdq", "integer"]
    assert [f.exec_precision for f in forms("openvino", "gemm", "bf16")[0]] == ["bf16"]
    with pytest.raises(kernels.ConfigError, match="fix:"):
        forms("openvino", "gemm", "fp8")


def test_sweep_on_onnxruntime_reads_back_what_ran():
    res = sweep([GEMM, CONV], runtimes=["onnxruntime"], threads=1, budget_s=0.005)
    by = {(r.kind, r.precision, r.form): r for r in res.results}
    fp32 = by[("gemm", "fp32", "MatMul")]
    assert fp32.ceiling and fp32.executed == "fp32" and fp32.runs >= 5
    assert fp32.tops == pytest.approx(achieved_tops(GEMM.macs, fp32.seconds))
    assert fp32.best_tops == pytest.approx(achieved_tops(GEMM.macs, fp32.best_seconds)) and fp32.best_tops >= fp32.tops
    assert by[("conv", "int8", "QDQ Conv")].executed == "int8"
    assert by[("gemm", "int8", "MatMulInteger")].executed == "int8"
    int4 = by[("gemm", "int4", f"MatMulNBits bits=4 accuracy_level={kernels.NBITS_ACCURACY_LEVEL}")]
    assert "int4 weights" in int4.executed and not int4.ceiling and int4.tops  # timed, labelled with what ran
    assert by[("conv", "int4", "-")].reason.startswith("not run") and by[("conv", "int4", "-")].tops is None
    for r in res.results:
        assert r.ceiling == (r.executed == r.precision and r.tops is not None), r
    assert all(ceilings(res.results, ("gemm", "conv"))[p].executed == p for p in ceilings(res.results))
    assert "onnxruntime" in res.versions and not res.unavailable


def test_sweep_lists_a_runtime_that_is_not_there():
    res = sweep([GEMM], runtimes=["no-such-runtime"], precisions=["fp32"], threads=1, budget_s=0.0)
    assert res.results == [] and "fix:" in res.unavailable["no-such-runtime"]


@pytest.mark.parametrize("precision,capability", [("fp16", "FP16"), ("bf16", "BF16"), ("int8", "INT8")])
def test_openvino_ceiling_follows_its_optimization_capabilities(precision, capability):
    """A precision the CPU plugin lists in OPTIMIZATION_CAPABILITIES executes and is a ceiling; one it lacks
    (FP16 on this CPU) is refused and gives no ceiling; the list is read, not assumed."""
    ov = pytest.importorskip("openvino")
    native = capability in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    res = sweep([GEMM], runtimes=["openvino"], precisions=[precision], threads=1, budget_s=0.005)
    (r,) = res.results
    if native:
        assert r.ceiling and r.executed == precision and r.tops, r.reason
        assert ceilings(res.results)[precision] is r
    else:
        assert not r.ceiling and r.ceiling_tops is None and precision not in ceilings(res.results)
        assert r.reason and r.executed != precision


def test_format_table_shows_every_row_and_each_reason_once():
    res = sweep([GEMM], runtimes=["onnxruntime"], precisions=["fp32", "bf16"], threads=1, budget_s=0.0)
    text = kernels.format_table(res.results + res.results)
    lines = text.splitlines()
    assert lines[0].split() == list(kernels.TABLE_COLUMNS)
    assert len([ln for ln in lines if ln.startswith("gemm")]) == 4
    reasons = [r.reason for r in res.results if r.reason.startswith("not run")]
    assert all(sum(reason in ln for ln in lines) == 1 for reason in reasons)
