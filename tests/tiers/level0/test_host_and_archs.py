"""Host ceilings (real ONNX Runtime / OpenVINO GEMMs and convolutions from the kernel sweep, numpy triad) and the standard
architectures."""

from __future__ import annotations

import argparse

import pytest

from mlperf_ext.errors import ConfigError
from tiers.level0 import cli
from tiers.level0.graph import analyze
from tiers.level0.host_ceilings import (
    HostCeilings,
    KernelCeiling,
    ceiling_shapes,
    detect,
    host_platform_entry,
    host_spec,
    kernel_ceilings,
    physical_cores,
    triad_bandwidth,
    write_host_platform,
)
from tiers.level0.platforms import HOST_PLATFORM_FILE, load_catalog, parse_platform
from tiers.micro import kernels
from tiers.micro.kernels import ConvShape, GemmShape

#: a tiny GEMM (M=64 N=16 K=64): the ceilings' code path in milliseconds
TINY = [GemmShape(64, 16, 64, "test")]
#: a tiny 3x3 convolution (8x8x16 -> 16 at batch 2)
TINY_CONV = ConvShape(8, 8, 16, 2, 16, 3, 3, 1, 1, 1, 1, "test")


def test_detect_reads_this_host():
    spec = detect()
    assert spec.cpu_model and 1 <= spec.cores <= spec.logical_cpus and spec.cores_source


def test_nominal_formula_on_a_hand_made_host():
    """4 physical cores (8 logical) x 2000 MHz x 64 fp32 ops/cycle (AVX-512 FMA) = 0.512 TOP/s."""
    spec = host_spec("test cpu", 8, 4, 2000.0, {"avx512f", "fma", "avx2", "avx512_vnni"}, [])
    assert spec.cores == 4 and spec.ops_per_cycle == {"fp32": 64, "int8": 256}
    assert spec.nominal_peak_tops == pytest.approx({"fp32": 0.512, "int8": 2.048})
    assert spec.notes == []


def test_nominal_without_core_ids_uses_logical_cpus_with_a_note():
    spec = host_spec("test cpu", 8, None, 2000.0, {"avx2"}, [])
    assert spec.cores == 8 and spec.nominal_peak_tops == pytest.approx({"fp32": 8 * 2.0 * 32 / 1000,
                                                                        "int8": 8 * 2.0 * 64 / 1000})
    assert "logical" in spec.cores_source and any("logical" in n for n in spec.notes)


def test_nominal_absent_without_clock_or_sourced_ops_per_cycle():
    no_clock = host_spec("test cpu", 4, 4, None, {"avx512f"}, [])
    assert no_clock.nominal_peak_tops == {} and any("clock not readable" in n for n in no_clock.notes)
    arm = host_spec("arm cpu", 4, None, 1500.0, {"asimd", "neon", "asimddp"}, [])
    assert arm.ops_per_cycle == {} and arm.nominal_peak_tops == {}
    assert any("no sourced ops/cycle" in n for n in arm.notes)


CPUINFO_SMT = "\n\n".join(  # 2 cores x 2 SMT threads: CPUs 0/2 share core 0, 1/3 share core 1
    f"processor\t: {cpu}\nphysical id\t: 0\ncore id\t\t: {cpu % 2}\nflags\t\t: fma" for cpu in range(4))


def test_physical_cores_counts_unique_core_ids_of_usable_cpus():
    assert physical_cores(CPUINFO_SMT, {0, 1, 2, 3}) == 2
    assert physical_cores(CPUINFO_SMT, {0, 2}) == 1  # two SMT siblings of one core
    assert physical_cores("processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\nBogoMIPS\t: 50", {0, 1}) is None


def _ceilings(spec, gemm):
    return HostCeilings(spec, gemm, triad_gbs=10.0, triad_bytes=24)


def test_measured_mode_holds_only_measured_peaks(tmp_path):
    spec = host_spec("test cpu", 4, 4, 2000.0, {"avx512f", "amx_bf16", "amx_int8"}, [])
    c = _ceilings(spec, [KernelCeiling("onnxruntime", "fp32", "M=64 N=64 K=64", 0.2),
                         KernelCeiling("openvino", "bf16", "M=64 N=64 K=64", None, "executed fp32, not bf16", "fp32")])
    write_host_platform(c, tmp_path)
    host = load_catalog(workdir=tmp_path).get("host")
    assert host.point("measured").peak_tops == {"fp32": 0.2}  # no nominal bf16/int8 inherited
    assert host.point("nominal").peak_tops == pytest.approx({"fp32": 0.512, "bf16": 8.192, "int8": 16.384})


def test_no_clock_means_no_nominal_mode_and_the_reason_is_stored(tmp_path):
    spec = host_spec("test cpu", 4, 4, None, {"avx512f"}, [])
    entry = host_platform_entry(_ceilings(spec, [KernelCeiling("onnxruntime", "fp32", "M=64 N=64 K=64", 0.2)]))
    assert list(entry["modes"]) == ["measured"] and entry["peak_tops"] == {"fp32": 0.2}
    assert any("clock not readable" in n for n in entry["nominal_formula"]["notes"])
    parse_platform(entry, "generated")


def test_no_kernel_result_raises_before_writing(tmp_path):
    spec = host_spec("test cpu", 4, 4, 2000.0, {"avx512f"}, [])
    c = _ceilings(spec, [KernelCeiling("onnxruntime", "fp32", "M=64 N=64 K=64", None, "NOT_IMPLEMENTED")])
    with pytest.raises(ConfigError, match="no kernel ran.*NOT_IMPLEMENTED.*fix:"):
        write_host_platform(c, tmp_path)
    assert not (tmp_path / HOST_PLATFORM_FILE).exists()


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "int8"])
def test_openvino_records_a_ceiling_only_in_the_type_it_ran(dtype):
    """Where the CPU has native kernels for the type (OpenVINO says so in OPTIMIZATION_CAPABILITIES) a ceiling
    is recorded and the GEMM ran in that type; where it has none, no ceiling, and the row says why."""
    ov = pytest.importorskip("openvino")
    native = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}[dtype] in ov.Core().get_property(
        "CPU", "OPTIMIZATION_CAPABILITIES")
    (r,) = kernel_ceilings(TINY, threads=1, budget_s=0.01, runtimes=["openvino"], precisions=[dtype])
    if native:
        assert r.tops and r.tops > 0, r.error
        assert r.ran_as == dtype and not r.error
    else:
        assert r.tops is None and r.error and r.ran_as != dtype


def test_a_gemm_that_ran_in_another_precision_gives_no_ceiling():
    """ONNX Runtime's CPU provider runs an fp16 MatMul through casts to fp32 where it has no fp16 kernel: the
    row then names what ran, and fp16 gets no ceiling; int4 weights never make an int4 ceiling unless int4
    arithmetic ran."""
    rows = kernel_ceilings(TINY, threads=1, budget_s=0.01, runtimes=["onnxruntime"], precisions=["fp16", "int4"])
    assert {r.dtype for r in rows} == {"fp16", "int4"}
    for r in rows:
        assert r.ran_as, r.error  # both load and run on ORT's CPU provider
        assert (r.tops is not None) == (r.ran_as == r.dtype), r
        if r.tops is None:
            assert f"not {r.dtype}" in r.error
    c = _ceilings(detect(), rows + [KernelCeiling("onnxruntime", "fp32", "M=64 N=64 K=64", 0.1)])
    assert set(c.measured_peak_tops()) == {"fp32"} | {r.dtype for r in rows if r.tops is not None}


def test_a_missing_runtime_is_one_row_with_the_reason():
    rows = kernel_ceilings(TINY, threads=1, budget_s=0.01, runtimes=["no-such-runtime"], precisions=["fp32"])
    assert [(r.runtime, r.dtype, r.tops) for r in rows] == [("no-such-runtime", "-", None)]
    assert "fix:" in rows[0].error


def test_short_measurements_and_host_platform_file(tmp_path, capsys):
    spec = detect()
    rows = kernel_ceilings([*TINY, TINY_CONV], threads=1, budget_s=0.01, runtimes=["onnxruntime"],
                           precisions=["fp32", "int8"])
    c = HostCeilings(spec, rows, triad_bandwidth(1 << 20, 1, repeats=1), 3 * 8 << 20)
    assert {(g.kind, g.form) for g in c.kernels} == {("gemm", "MatMul"), ("gemm", "QDQ MatMul"),
                                                      ("gemm", "MatMulInteger"), ("conv", "Conv"), ("conv", "QDQ Conv")}
    assert all(g.tops and g.tops > 0 and g.ran_as == g.dtype for g in c.kernels) and c.triad_gbs > 0
    entry = host_platform_entry(c)
    parse_platform(entry, "generated")  # the written file is valid catalog data
    written = entry["measured_with"]["kernels"]
    assert [(k["kind"], k["shape"]) for k in written[:1]] == [("gemm", "M=64 N=16 K=64")]
    assert {k["kind"] for k in written} == {"gemm", "conv"}
    write_host_platform(c, tmp_path)
    host = load_catalog(workdir=tmp_path).get("host")
    measured = host.point("measured").peak_tops  # the host file keeps 4 decimals of TOP/s
    for dtype in ("fp32", "int8"):  # the fastest kernel of either kind is the ceiling
        assert measured[dtype] == round(max(g.tops for g in c.kernels if g.dtype == dtype), 4)
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["platforms", "show", "host", "--workdir", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "nominal" in out and "measured" in out and "ops_per_cycle" in out


@pytest.mark.parametrize("quick", [True, False])
def test_detect_times_convolutions_beside_gemms(quick):
    """A CNN's convolutions may run faster than any GEMM (they did in fp32 and bf16 on a 2-core EPYC), so the
    ceilings `platforms detect` stores are taken over both kinds, quick and full; the full set holds the quick
    one and DeepBench's default GEMMs, each shape once."""
    shapes = ceiling_shapes(quick)
    assert {s.kind for s in shapes} == {"gemm", "conv"}
    assert set(kernels.GEMM_QUICK + kernels.CONV_QUICK) <= set(shapes)
    assert len({s.slug for s in shapes}) == len(shapes)
    assert quick or set(kernels.GEMM_DEFAULT) <= set(shapes)


def test_openvino_gemm_small():
    pytest.importorskip("openvino")
    (r,) = kernel_ceilings(TINY, threads=1, budget_s=0.01, runtimes=["openvino"], precisions=["fp32"])
    assert r.tops and r.tops > 0 and r.ran_as == "fp32", r.error


ARCHS = {  # published totals: MACs x 2 and parameters (sources in docs/level0.md)
    "resnet50": (4.09e9 * 2, 25.5e6),  # torchvision ResNet50_Weights.IMAGENET1K_V1: 4.09 GFLOPS (MACs), 25.6 M
    "mobilenetv1": (569e6 * 2, 4.2e6),  # Howard et al. 2017: 569 M mult-adds, 4.2 M parameters
    "googlenet": (1.50e9 * 2, 6.62e6),  # torchvision GoogLeNet_Weights: 1.50 GFLOPS (MACs), 6.62 M
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_standard_architectures_match_published(arch):
    archs = pytest.importorskip("mlperf_ext.zoo.archs")
    a = analyze(archs.build_arch(arch))
    ops, params = ARCHS[arch]
    assert a.mac_ops == pytest.approx(ops, rel=0.01)
    assert a.params == pytest.approx(params, rel=0.01)
    assert not a.unsupported


def test_onnx_tool_agrees_on_conv_and_gemm(tmp_path):
    pytest.importorskip("onnx_tool", reason="onnx-tool not installed (optional cross-check)")
    archs = pytest.importorskip("mlperf_ext.zoo.archs")
    from tiers.level0.graph import compare_with_onnx_tool

    archs.export_arch("mobilenetv1", tmp_path / "m.onnx")
    c = compare_with_onnx_tool(tmp_path / "m.onnx")
    assert c.params_ours == c.params_onnx_tool
    ours, theirs = c.by_op["Conv"]
    assert abs(theirs - ours) / ours < 0.01  # onnx-tool adds the bias (1 MAC per output); we do not
    assert c.ops_onnx_tool == pytest.approx(c.ops_ours, rel=0.05)
