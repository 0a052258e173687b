"""Standard architectures built as ONNX: parameter counts, ORT/OpenVINO runs, dynamic batch, metadata,
and the BN-unfolded variants.

The expected parameter counts are computed here independently from the papers' layer tables (not from
the builder), then checked against the published figures:
- torchvision model docs (num_params): resnet50 25,557,032; googlenet 6,624,904; vgg16 138,357,544;
  alexnet 61,100,840 and 0.71 GFLOPS (multiply-accumulates), AlexNet_Weights.IMAGENET1K_V1
  (https://pytorch.org/vision/stable/models/generated/torchvision.models.alexnet.html).
- Howard et al. 2017 (arXiv:1704.04861): 1.0 MobileNet-224 has 4.2 million parameters (rounded).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from mlperf_ext.errors import ModelError
from mlperf_ext.zoo import archs, registry
from mlperf_ext.zoo.archs import ARCHITECTURES, build_arch, export_arch, param_counts
from mlperf_ext.zoo.onnx_builder import count_initializer_elements, model_props
from tiers.level0.graph import analyze

PUBLISHED = {"resnet50": 25_557_032, "googlenet": 6_624_904, "vgg16": 138_357_544, "alexnet": 61_100_840}
ALEXNET_PUBLISHED_GMACS = 0.71
MOBILENET_PUBLISHED_MILLIONS = 4.2


def _conv(cin: int, cout: int, k: int, bn: bool = True, groups: int = 1) -> tuple[int, int]:
    """(torch-style parameters, BN channels) of one conv (+BN, else +bias)."""
    weights = cout * (cin // groups) * k * k
    return (weights + 2 * cout, cout) if bn else (weights + cout, 0)


def _sum(parts: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(p for p, _ in parts), sum(c for _, c in parts)


def resnet50_expected() -> tuple[int, int]:
    """He et al. 2016, Table 1, 50-layer: bottleneck widths 64/128/256/512 x 3/4/6/3 blocks, expansion 4."""
    parts, cin = [_conv(3, 64, 7)], 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            out = 4 * width
            parts += [_conv(cin, width, 1), _conv(width, width, 3), _conv(width, out, 1)]
            if block == 0:
                parts.append(_conv(cin, out, 1))  # projection shortcut
            cin = out
    params, bn = _sum(parts)
    return params + 2048 * 1000 + 1000, bn


def mobilenetv1_expected() -> tuple[int, int]:
    """Howard et al. 2017, Table 1: conv 32, then dw/pw pairs to 64,128,128,256,256,512x6,1024,1024."""
    parts, cin = [_conv(3, 32, 3)], 32
    for out in (64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024):
        parts += [_conv(cin, cin, 3, groups=cin), _conv(cin, out, 1)]
        cin = out
    params, bn = _sum(parts)
    return params + 1024 * 1000 + 1000, bn


def googlenet_expected(five: int = 3) -> tuple[int, int]:
    """Szegedy et al. 2015, Table 1 rows (#1x1, #3x3red, #3x3, #5x5red, #5x5, pool proj); BN per conv,
    and torchvision's 3x3 kernel in the 5x5 branch unless five=5."""
    table = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64),
             (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
             (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
             (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
             (832, 384, 192, 384, 48, 128, 128)]
    parts = [_conv(3, 64, 7), _conv(64, 64, 1), _conv(64, 192, 3)]
    for cin, c1, c3r, c3, c5r, c5, cp in table:
        parts += [_conv(cin, c1, 1), _conv(cin, c3r, 1), _conv(c3r, c3, 3), _conv(cin, c5r, 1),
                  _conv(c5r, c5, five), _conv(cin, cp, 1)]
    params, bn = _sum(parts)
    return params + 1024 * 1000 + 1000, bn


def vgg16_expected() -> tuple[int, int]:
    """Simonyan & Zisserman 2015, Table 1 column D: 13 biased 3x3 convs, FC 25088-4096-4096-1000."""
    widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
    parts, cin = [], 3
    for out in widths:
        parts.append(_conv(cin, out, 3, bn=False))
        cin = out
    params, _ = _sum(parts)
    return params + 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000, 0


#: torchvision's AlexNet: (in, out, kernel, output side) of the 5 biased convs; pools 55->27, 27->13, 13->6
ALEXNET_CONVS = ((3, 64, 11, 55), (64, 192, 5, 27), (192, 384, 3, 13), (384, 256, 3, 13), (256, 256, 3, 13))
ALEXNET_FCS = ((256 * 6 * 6, 4096), (4096, 4096), (4096, 1000))


def alexnet_expected() -> tuple[int, int]:
    """torchvision.models.alexnet: 5 biased convs, FC 9216-4096-4096-1000 (no BN)."""
    convs = sum(_conv(cin, cout, k, bn=False)[0] for cin, cout, k, _ in ALEXNET_CONVS)
    return convs + sum(i * o + o for i, o in ALEXNET_FCS), 0


def alexnet_macs() -> int:
    return (sum(side * side * cout * cin * k * k for cin, cout, k, side in ALEXNET_CONVS)
            + sum(i * o for i, o in ALEXNET_FCS))


EXPECTED = {"resnet50": resnet50_expected, "mobilenetv1": mobilenetv1_expected,
            "googlenet": googlenet_expected, "vgg16": vgg16_expected, "alexnet": alexnet_expected}
FAST = ["resnet50", "mobilenetv1", "googlenet"]
#: the architectures with BatchNorm, i.e. with a `-bn` (unfolded) variant
WITH_BN = FAST
ALL = [*FAST, pytest.param("alexnet", marks=pytest.mark.slow),  # 244 MB of weights
       pytest.param("vgg16", marks=pytest.mark.slow)]  # 553 MB of weights: ~15 s here


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Build each architecture once per module, on first use."""
    cache: dict[str, tuple[onnx.ModelProto, str]] = {}

    def get(arch: str) -> tuple[onnx.ModelProto, str]:
        if arch not in cache:
            path = tmp_path_factory.mktemp("archs") / f"{arch}.onnx"
            export_arch(arch, path)
            cache[arch] = (onnx.load(str(path)), str(path))
        return cache[arch]

    return get


def test_independent_formulas_match_published_values():
    for arch, published in PUBLISHED.items():
        assert EXPECTED[arch]()[0] == published, arch
    params, _ = mobilenetv1_expected()
    assert round(params / 1e6, 1) == MOBILENET_PUBLISHED_MILLIONS


@pytest.mark.parametrize("arch", ALL)
def test_parameter_counts(arch, exported):
    model, _ = exported(arch)
    expected, bn_channels = EXPECTED[arch]()
    counts = param_counts(arch, model)
    assert counts.unfolded == expected
    # folding replaces each BN's gamma+beta (2 per channel) by one conv bias per channel
    assert counts.folded == expected - bn_channels == count_initializer_elements(model)
    assert counts.matches_published
    if arch in PUBLISHED:
        assert counts.difference == 0


def test_googlenet_paper_variant_counts_five_by_five():
    from mlperf_ext.zoo.archs import build_googlenet

    model = build_googlenet(five_by_five=True)
    assert int(model_props(model)["params_unfolded"]) == googlenet_expected(five=5)[0]
    assert googlenet_expected(five=5)[0] > PUBLISHED["googlenet"]


@pytest.mark.parametrize("arch", ALL)
def test_graph_interface_and_metadata(arch, exported):
    model, path = exported(arch)
    onnx.checker.check_model(path)  # from the file: avoids re-serialising VGG's 553 MB in Python
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "logits"
    in_dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    out_dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
    assert in_dims == ["N", 3, 224, 224] and out_dims == ["N", 1000]
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    props = model_props(model)
    assert props["accuracy"] == "null" and props["accuracy_reason"] == "random weights"


@pytest.mark.parametrize("arch", ALL)
def test_onnxruntime_and_openvino_batch2(arch, exported):
    ort = pytest.importorskip("onnxruntime")
    ov = pytest.importorskip("openvino", reason="OpenVINO comes with the openvino extra")
    _, path = exported(arch)
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y_ort = sess.run(["logits"], {"input": x})[0]
    assert y_ort.shape == (2, 1000) and np.isfinite(y_ort).all()
    assert not np.allclose(y_ort[0], y_ort[1])  # the two random images give different logits
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    y_ov = compiled({"input": x})[compiled.output(0)]
    assert y_ov.shape == (2, 1000)
    scale = float(np.abs(y_ort).max())
    np.testing.assert_allclose(y_ov, y_ort, atol=1e-3 * scale, rtol=1e-3)


@pytest.mark.parametrize("arch", ["mobilenetv1", "googlenet"])
def test_dynamic_batch_gives_per_sample_results(arch, exported):
    ort = pytest.importorskip("onnxruntime")
    _, path = exported(arch)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).standard_normal((3, 3, 224, 224), dtype=np.float32)
    y3 = sess.run(["logits"], {"input": x})[0]
    y1 = sess.run(["logits"], {"input": x[1:2]})[0]
    assert y3.shape == (3, 1000) and y1.shape == (1, 1000)
    np.testing.assert_allclose(y1[0], y3[1], rtol=1e-4, atol=1e-4 * float(np.abs(y3).max()))


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = build_arch("mobilenetv1", 0), build_arch("mobilenetv1", 0), build_arch("mobilenetv1", 1)
    wa, wb, wc = (onnx.numpy_helper.to_array(m.graph.initializer[0]) for m in (a, b, c))
    assert np.array_equal(wa, wb) and not np.array_equal(wa, wc)


def test_unknown_architecture_is_a_user_error():
    with pytest.raises(ModelError, match="fix: use one of"):
        build_arch("resnet18")
    assert set(ARCHITECTURES) == set(EXPECTED)


# ---- AlexNet ---------------------------------------------------------------------------------------
def test_alexnet_counts_match_torchvision():
    """Built in memory (~2 s): parameters exactly torchvision's, MACs 0.71 G, and level 0 agrees."""
    model = build_arch("alexnet")
    counts = param_counts("alexnet", model)
    assert counts.unfolded == counts.folded == counts.in_graph == alexnet_expected()[0] == PUBLISHED["alexnet"]
    assert counts.difference == 0
    a = analyze(model)
    assert a.params == PUBLISHED["alexnet"] and a.unsupported == []
    assert a.mac_ops == 2 * alexnet_macs()
    assert round(alexnet_macs() / 1e9, 2) == ALEXNET_PUBLISHED_GMACS
    ops = {n.op_type for n in model.graph.node}
    assert ops == {"Conv", "Relu", "MaxPool", "Flatten", "Gemm"}  # no LRN, no BN, no pooling to 6x6
    assert [n.op_type for n in model.graph.node].count("Conv") == 5


# ---- level 0 agrees with the architecture -----------------------------------------------------------
@pytest.mark.parametrize("arch", FAST)
def test_level0_params_equal_the_folded_count(arch):
    """tiers.level0.graph's parameters of the built graph = the independent formula less one per BN channel."""
    model = build_arch(arch)
    expected, bn_channels = EXPECTED[arch]()
    a = analyze(model)
    assert a.params == expected - bn_channels == param_counts(arch, model).folded
    assert a.weight_bytes == 4 * a.params and a.unsupported == []


# ---- BN-unfolded variants ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def both_forms():
    """(folded, unfolded) graph of each architecture with BN, built once on first use."""
    cache: dict[str, tuple[onnx.ModelProto, onnx.ModelProto]] = {}

    def get(arch: str) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        if arch not in cache:
            cache[arch] = (build_arch(arch), build_arch(arch, fold_bn=False))
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", WITH_BN)
def test_unfolded_graph_keeps_one_batchnorm_per_conv(arch, both_forms):
    folded, unfolded = both_forms(arch)
    onnx.checker.check_model(unfolded)
    ops_f = [n.op_type for n in folded.graph.node]
    ops_u = [n.op_type for n in unfolded.graph.node]
    n_conv = ops_f.count("Conv")
    assert "BatchNormalization" not in ops_f
    assert ops_u.count("BatchNormalization") == ops_u.count("Conv") == n_conv  # every conv here has BN
    assert len(ops_u) == len(ops_f) + n_conv
    inits = {t.name for t in unfolded.graph.initializer}
    for node in unfolded.graph.node:
        if node.op_type == "Conv":
            assert len(node.input) == 2  # bias-free: BN's beta is the shift
        if node.op_type == "BatchNormalization":
            assert len(node.input) == 5 and set(node.input[1:]) <= inits  # scale, B, mean, var
    assert model_props(unfolded)["batchnorm"].startswith("unfolded")


@pytest.mark.parametrize("arch", WITH_BN)
def test_unfolded_counts_and_level0_agree_with_the_folded_graph(arch, both_forms):
    """Same architecture, same counts; level 0 sees the same Conv/Gemm ops, 2 ops per BN element more,
    and the BN's four per-channel constants as weights."""
    folded, unfolded = both_forms(arch)
    expected, bn_channels = EXPECTED[arch]()
    cf, cu = param_counts(arch, folded), param_counts(arch, unfolded)
    assert cu.unfolded == cf.unfolded == expected and cu.folded == cf.folded == expected - bn_channels
    assert cu.in_graph == expected + 2 * bn_channels == count_initializer_elements(unfolded)
    af, au = analyze(folded), analyze(unfolded)
    assert au.unsupported == [] and af.unsupported == []
    assert au.mac_ops == af.mac_ops

    def by_op(a):
        out: dict[str, int] = {}
        for n in a.nodes:
            out[n.op_type] = out.get(n.op_type, 0) + n.ops
        return out

    ops_f, ops_u = by_op(af), by_op(au)
    assert ops_u["Conv"] == ops_f["Conv"] and ops_u["Gemm"] == ops_f["Gemm"]
    bn_elements = sum(n.activation_elements for n in au.nodes if n.op_type == "BatchNormalization")
    assert ops_u["BatchNormalization"] == 2 * bn_elements > 0
    assert au.ops == af.ops + 2 * bn_elements
    assert au.params == cu.in_graph and au.weight_bytes == 4 * cu.in_graph
    bn_params = sum(n.params for n in au.nodes if n.op_type == "BatchNormalization")
    assert bn_params == 4 * bn_channels


@pytest.mark.parametrize("arch", ["mobilenetv1", "googlenet"])
def test_unfolded_graph_computes_what_the_folded_one_does(arch, both_forms):
    """Same seed, same draws: with ORT's graph optimisations off (so BN runs as its own node) the unfolded
    graph gives the folded graph's logits."""
    ort = pytest.importorskip("onnxruntime")
    folded, unfolded = both_forms(arch)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = np.random.default_rng(3).standard_normal((2, 3, 224, 224), dtype=np.float32)
    y = [ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
         .run(["logits"], {"input": x})[0] for m in (folded, unfolded)]
    np.testing.assert_allclose(y[1], y[0], rtol=1e-4, atol=1e-4 * float(np.abs(y[0]).max()))


def test_unfolding_an_architecture_without_batchnorm_is_a_user_error():
    for arch in ("vgg16", "alexnet"):
        with pytest.raises(ModelError, match=f"{arch} has no BatchNorm.*; fix: build it with fold_bn=True"):
            build_arch(arch, fold_bn=False)


def test_zoo_names_of_the_unfolded_and_alexnet_variants():
    names = [i.name for i in archs.list_models()]
    assert len(names) == len(set(names))
    assert {"alexnet-fp32", "alexnet-fp16", "alexnet-int8"} <= set(names)
    unfolded = {n for n in names if n.endswith(archs.UNFOLDED_SUFFIX)}
    assert unfolded == {"resnet50-fp32-bn", "mobilenetv1-fp32-bn", "googlenet-fp32-bn"}
    info = registry.model_info("resnet50-fp32-bn")
    assert info.architecture == "resnet50" and info.precision == "fp32" and info.family == archs.FAMILY


def test_zoo_builds_the_unfolded_variant_next_to_the_folded_one(tmp_path):
    messages: list[str] = []
    folded, unfolded = registry.build(["mobilenetv1-fp32", "mobilenetv1-fp32-bn"], tmp_path, messages.append)
    assert unfolded.name == "mobilenetv1-fp32-bn.onnx"
    meta_f, meta_u = (registry.read_metadata(p) for p in (folded, unfolded))
    assert meta_f["batchnorm"] == "folded" and meta_u["batchnorm"] == "unfolded"
    assert meta_f["recipe"] != meta_u["recipe"]
    assert meta_u["params"] == meta_f["params"] == mobilenetv1_expected()[0]
    assert meta_u["params_detail"]["in_graph"] == analyze(unfolded).params
    assert "BatchNormalization" in meta_u["onnx"]["ops"] and "BatchNormalization" not in meta_f["onnx"]["ops"]
    messages.clear()
    registry.build(["mobilenetv1-fp32-bn"], tmp_path, messages.append)
    assert messages == ["mobilenetv1-fp32-bn: cached"]
