"""Host ceilings (real ONNX Runtime / OpenVINO GEMMs, numpy triad) and the standard architectures."""

from __future__ import annotations

import argparse

import pytest

from tiers import cli
from tiers.graph import analyze
from tiers.host_ceilings import (
    HostCeilings,
    detect,
    gemm_openvino,
    gemm_ort,
    host_platform_entry,
    triad_bandwidth,
    write_host_platform,
)
from tiers.platforms import load_catalog, parse_platform


def test_detect_nominal_formula():
    spec = detect()
    assert spec.cores >= 1 and spec.cpu_model
    for dt, ops in spec.ops_per_cycle.items():
        if spec.clock_mhz:
            assert spec.nominal_peak_tops[dt] == pytest.approx(spec.cores * spec.clock_mhz / 1e6 * ops)


def test_short_measurements_and_host_platform_file(tmp_path, capsys):
    spec = detect()
    c = HostCeilings(spec, [gemm_ort("fp32", 128, 0.01, 1), gemm_ort("int8", 128, 0.01, 1)],
                     triad_bandwidth(1 << 20, 1, repeats=1), 3 * 8 << 20)
    assert all(g.tops and g.tops > 0 for g in c.gemm) and c.triad_gbs > 0
    entry = host_platform_entry(c)
    parse_platform(entry, "generated")  # the written file is valid catalog data
    write_host_platform(c, tmp_path)
    host = load_catalog(workdir=tmp_path).get("host")
    assert host.point("measured").peak_tops["fp32"] == pytest.approx(c.measured_peak_tops()["fp32"], rel=1e-3)
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["platforms", "show", "host", "--workdir", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "nominal" in out and "measured" in out and "ops_per_cycle" in out


def test_openvino_gemm_small():
    pytest.importorskip("openvino")
    r = gemm_openvino("fp32", 128, 0.01, 1)
    assert r.tops and r.tops > 0, r.error


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
    from tiers.graph import compare_with_onnx_tool

    archs.export_arch("mobilenetv1", tmp_path / "m.onnx")
    c = compare_with_onnx_tool(tmp_path / "m.onnx")
    assert c.params_ours == c.params_onnx_tool
    ours, theirs = c.by_op["Conv"]
    assert abs(theirs - ours) / ours < 0.01  # onnx-tool adds the bias (1 MAC per output); we do not
    assert c.ops_onnx_tool == pytest.approx(c.ops_ours, rel=0.05)
