"""Standard ImageNet architectures for speed runs, built directly as ONNX with seeded random weights.

Why random weights: no ImageNet-pretrained ResNet/MobileNet/GoogLeNet/VGG weights and no ImageNet
validation set can be obtained offline here (see docs/models.md), so these models exist to measure
speed only; their accuracy is "not applicable", never invented.

All five take `input` float32 [N, 3, 224, 224] (dynamic batch "N") and give `logits` [N, 1000].
BatchNorm is folded into the preceding conv (see onnx_builder); the `-bn` zoo variants of the
architectures that have BatchNorm (ResNet-50, MobileNetV1, GoogLeNet) keep it as its own
BatchNormalization node instead, from the same seeded draws, so BN's own cost can be measured (Xu et
al., NPC'19, find BN far slower than its share of operations). Parameter counts are reported the way
the published tables count the *unfolded* model (torchvision: conv weights, BN gamma/beta, FC weight
and bias) next to the elements the folded graph really stores.

Published parameter counts (sources):
- ResNet-50 v1.5: 25,557,032 -- torchvision model docs, ResNet50_Weights.IMAGENET1K_V1 "num_params"
  (https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html).
  torchvision's resnet50 *is* v1.5: the stride-2 sits in the 3x3 conv of the bottleneck.
- MobileNetV1 1.0-224: "4.2 million" -- Howard et al. 2017, "MobileNets: Efficient Convolutional
  Neural Networks for Mobile Vision Applications", arXiv:1704.04861 (Table 1: the body; the result
  tables list 1.0 MobileNet-224 with 4.2 million parameters; Keras' mobilenet docs repeat 4.2 M).
  Rounded to 0.1 M, so it is checked to that precision. Our unfolded count with BN gamma/beta is
  4,231,976; without BN parameters (conv + FC only, the paper's likely convention) 4,210,088; both
  round to 4.2 M.
- GoogLeNet (Inception v1), no auxiliary classifiers: 6,624,904 -- torchvision model docs,
  GoogLeNet_Weights.IMAGENET1K_V1 (https://pytorch.org/vision/stable/models/generated/torchvision.models.googlenet.html).
  That count is torchvision's variant: BN after every conv, and 3x3 (not 5x5) convs in the
  "5x5" branch (torchvision keeps this known deviation for weight compatibility, pytorch/vision#906).
  We follow it so that the count is comparable; `googlenet_params(five_by_five=True)` gives the
  paper-faithful variant's count for reference.
- VGG-16 (configuration D, no BN): 138,357,544 -- torchvision model docs, VGG16_Weights.IMAGENET1K_V1
  (https://pytorch.org/vision/stable/models/generated/torchvision.models.vgg16.html).
- AlexNet, torchvision's variant (no LRN, no BN; 64/192/384/256/256 conv channels): 61,100,840 and
  0.71 GFLOPS (torchvision's "GFLOPS" are multiply-accumulates: 714,188,480 MACs here) --
  torchvision model docs, AlexNet_Weights.IMAGENET1K_V1
  (https://pytorch.org/vision/stable/models/generated/torchvision.models.alexnet.html). It is the
  single-GPU form of Krizhevsky et al. 2012 from Krizhevsky 2014, "One weird trick for parallelizing
  convolutional neural networks" (arXiv:1404.5997), which torchvision's source cites.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from mlperf_ext.errors import ModelError
from mlperf_ext.zoo.metadata import ModelInfo, is_current, onnx_facts, versions, write_artifact
from mlperf_ext.zoo.onnx_builder import GraphBuilder, count_initializer_elements, model_props
from mlperf_ext.zoo.registry import Progress, register_family

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
IMAGE_SIDE = 224
NUM_CLASSES = 1000
#: why there is no accuracy for these models (stored in metadata as the reason for accuracy = null)
ACCURACY_REASON = "random weights"


# ---- ResNet-50 v1.5 -------------------------------------------------------------------------------
#: (bottleneck width, blocks) per stage; expansion 4 (He et al. 2016, Table 1, 50-layer column)
RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
RESNET_EXPANSION = 4
#: shrinks the last BN gamma of each residual branch so the residual sum's variance stays moderate
#: (the same idea as torchvision's zero_init_residual, without making the branch vanish)
RESNET_LAST_GAMMA = 0.3


def build_resnet50(seed: int = 0, fold_bn: bool = True) -> onnx.ModelProto:
    """ResNet-50 v1.5: bottlenecks 1x1 -> 3x3 (stride here) -> 1x1, projection shortcut on change."""
    g = GraphBuilder("resnet50_v1_5", seed, fold_bn=fold_bn)
    x = g.input(INPUT_NAME, 3, IMAGE_SIDE, IMAGE_SIDE)
    x = g.conv(x, 64, 7, stride=2, pad=3)
    x = g.max_pool(x, 3, 2, pad=1)
    for stage, (width, blocks) in enumerate(RESNET50_STAGES):
        for block in range(blocks):
            stride = 2 if (stage > 0 and block == 0) else 1
            out_ch = width * RESNET_EXPANSION
            shortcut = x
            if stride != 1 or g.channels[x] != out_ch:
                shortcut = g.conv(x, out_ch, 1, stride=stride, relu=False)
            y = g.conv(x, width, 1)
            y = g.conv(y, width, 3, stride=stride, pad=1)
            y = g.conv(y, out_ch, 1, relu=False, gamma_scale=RESNET_LAST_GAMMA)
            x = g.relu(g.add(y, shortcut))
    x = g.flatten(g.global_avg_pool(x), g.channels[x])
    x = g.gemm(x, NUM_CLASSES, output=OUTPUT_NAME)
    return g.finish(x, _metadata("resnet50", fold_bn))


# ---- MobileNetV1 1.0-224 --------------------------------------------------------------------------
#: (pointwise output channels, depthwise stride) of the 13 depthwise-separable blocks
#: (Howard et al. 2017, Table 1; the last dw is stride 1 -- the table's "s2" there is a known typo,
#: its output stays 7x7)
MOBILENETV1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                      (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def build_mobilenetv1(seed: int = 0, fold_bn: bool = True) -> onnx.ModelProto:
    """MobileNetV1 (alpha 1.0, 224): conv 3x3/2 then 13 x (dw 3x3 + BN + ReLU, pw 1x1 + BN + ReLU)."""
    g = GraphBuilder("mobilenet_v1_1.0_224", seed, fold_bn=fold_bn)
    x = g.input(INPUT_NAME, 3, IMAGE_SIDE, IMAGE_SIDE)
    x = g.conv(x, 32, 3, stride=2, pad=1)
    for out_ch, stride in MOBILENETV1_BLOCKS:
        ch = g.channels[x]
        x = g.conv(x, ch, 3, stride=stride, pad=1, groups=ch)
        x = g.conv(x, out_ch, 1)
    x = g.flatten(g.global_avg_pool(x), g.channels[x])
    x = g.gemm(x, NUM_CLASSES, output=OUTPUT_NAME)
    return g.finish(x, _metadata("mobilenetv1", fold_bn))


# ---- GoogLeNet / Inception v1 ---------------------------------------------------------------------
#: per inception module: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
#: (Szegedy et al. 2015, "Going deeper with convolutions", Table 1)
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def _inception(g: GraphBuilder, x: str, spec: tuple[int, ...], five_kernel: int) -> str:
    c1, c3r, c3, c5r, c5, cp = spec
    b1 = g.conv(x, c1, 1)
    b2 = g.conv(g.conv(x, c3r, 1), c3, 3, pad=1)
    b3 = g.conv(g.conv(x, c5r, 1), c5, five_kernel, pad=five_kernel // 2)
    b4 = g.conv(g.max_pool(x, 3, 1, pad=1, ceil=True), cp, 1)
    return g.concat([b1, b2, b3, b4])


def build_googlenet(seed: int = 0, five_by_five: bool = False, fold_bn: bool = True) -> onnx.ModelProto:
    """GoogLeNet without the auxiliary classifiers (inference form), BN after each conv (torchvision).

    `five_by_five=False` (default) uses torchvision's 3x3 kernel in the "5x5" branch so the parameter
    count is the published 6,624,904; True builds the paper's 5x5 kernels.
    """
    g = GraphBuilder("googlenet", seed, fold_bn=fold_bn)
    x = g.input(INPUT_NAME, 3, IMAGE_SIDE, IMAGE_SIDE)
    x = g.max_pool(g.conv(x, 64, 7, stride=2, pad=3), 3, 2, ceil=True)
    x = g.conv(g.conv(x, 64, 1), 192, 3, pad=1)
    x = g.max_pool(x, 3, 2, ceil=True)
    kernel = 5 if five_by_five else 3
    for name in ("3a", "3b"):
        x = _inception(g, x, INCEPTION[name], kernel)
    x = g.max_pool(x, 3, 2, ceil=True)
    for name in ("4a", "4b", "4c", "4d", "4e"):
        x = _inception(g, x, INCEPTION[name], kernel)
    x = g.max_pool(x, 2, 2, ceil=True)
    for name in ("5a", "5b"):
        x = _inception(g, x, INCEPTION[name], kernel)
    x = g.flatten(g.global_avg_pool(x), g.channels[x])  # dropout is identity at inference
    x = g.gemm(x, NUM_CLASSES, output=OUTPUT_NAME)
    return g.finish(x, _metadata("googlenet", fold_bn))


# ---- VGG-16 (configuration D) ---------------------------------------------------------------------
#: conv widths, "M" = 2x2 max pool (Simonyan & Zisserman 2015, Table 1, column D)
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")
VGG_FC = 4096


def build_vgg16(seed: int = 0) -> onnx.ModelProto:
    """VGG-16 D without BN: 13 conv3x3 (+bias, ReLU), 5 max pools, FC 4096 -> 4096 -> 1000."""
    g = GraphBuilder("vgg16", seed)
    x = g.input(INPUT_NAME, 3, IMAGE_SIDE, IMAGE_SIDE)
    side = IMAGE_SIDE
    for item in VGG16_CONFIG:
        if item == "M":
            x = g.max_pool(x, 2, 2)
            side //= 2
        else:
            x = g.conv(x, int(item), 3, pad=1, bn=False)
    # torchvision's AdaptiveAvgPool2d((7, 7)) is the identity at 224x224 input, so it is omitted
    x = g.flatten(x, g.channels[x] * side * side)
    x = g.gemm(x, VGG_FC, relu=True)
    x = g.gemm(x, VGG_FC, relu=True)  # dropouts are identities at inference
    x = g.gemm(x, NUM_CLASSES, output=OUTPUT_NAME)
    return g.finish(x, _metadata("vgg16"))


# ---- AlexNet (torchvision's variant) --------------------------------------------------------------
#: (output channels, kernel, stride, pad, 3x3/2 max pool after?) of the five convs, each + bias + ReLU
#: (torchvision.models.alexnet, after Krizhevsky 2014, arXiv:1404.5997; no LRN, no BN)
ALEXNET_CONVS = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
                 (256, 3, 1, 1, False), (256, 3, 1, 1, True))
ALEXNET_POOL_SIDE = 6
ALEXNET_FC = 4096


def build_alexnet(seed: int = 0) -> onnx.ModelProto:
    """AlexNet: 5 biased convs (3 max pools), FC 9216 -> 4096 -> 4096 -> 1000; 224 -> 55 -> 27 -> 13 -> 6."""
    g = GraphBuilder("alexnet", seed)
    x = g.input(INPUT_NAME, 3, IMAGE_SIDE, IMAGE_SIDE)
    side = IMAGE_SIDE
    for out_ch, kernel, stride, pad, pool in ALEXNET_CONVS:
        x = g.conv(x, out_ch, kernel, stride=stride, pad=pad, bn=False)
        side = (side + 2 * pad - kernel) // stride + 1
        if pool:
            x = g.max_pool(x, 3, 2)
            side = (side - 3) // 2 + 1
    # torchvision's AdaptiveAvgPool2d((6, 6)) is the identity at 224x224 input (the features are 6x6)
    if side != ALEXNET_POOL_SIDE:
        raise AssertionError(f"AlexNet features are {side}x{side}, expected 6x6 at 224x224")
    x = g.flatten(x, g.channels[x] * side * side)
    x = g.gemm(x, ALEXNET_FC, relu=True)  # dropouts are identities at inference
    x = g.gemm(x, ALEXNET_FC, relu=True)
    x = g.gemm(x, NUM_CLASSES, output=OUTPUT_NAME)
    return g.finish(x, _metadata("alexnet"))


# ---- catalogue ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchInfo:
    """One standard architecture: how to build it and what the literature says it should count."""

    name: str
    title: str
    #: build(seed) -> the BN-folded model; build(seed, fold_bn=False) where `has_batchnorm`
    build: Callable[..., onnx.ModelProto]
    published_params: int
    #: how many parameters the published figure may differ by (0 = exact; MobileNetV1's is rounded)
    published_tolerance: int
    source: str
    #: whether the network has BatchNorm (and so an unfolded `-bn` variant)
    has_batchnorm: bool = True


ARCHITECTURES: dict[str, ArchInfo] = {
    "resnet50": ArchInfo(
        "resnet50", "ResNet-50 v1.5", build_resnet50, 25_557_032, 0,
        "torchvision docs, ResNet50_Weights.IMAGENET1K_V1 num_params"),
    "mobilenetv1": ArchInfo(
        "mobilenetv1", "MobileNetV1 1.0-224", build_mobilenetv1, 4_200_000, 50_000,
        "Howard et al. 2017 (arXiv:1704.04861), 1.0 MobileNet-224 '4.2 million' (rounded to 0.1 M)"),
    "googlenet": ArchInfo(
        "googlenet", "GoogLeNet / Inception v1 (no aux classifiers)", build_googlenet, 6_624_904, 0,
        "torchvision docs, GoogLeNet_Weights.IMAGENET1K_V1 num_params"),
    "vgg16": ArchInfo(
        "vgg16", "VGG-16 (configuration D)", build_vgg16, 138_357_544, 0,
        "torchvision docs, VGG16_Weights.IMAGENET1K_V1 num_params", has_batchnorm=False),
    "alexnet": ArchInfo(
        "alexnet", "AlexNet (torchvision variant)", build_alexnet, 61_100_840, 0,
        "torchvision docs, AlexNet_Weights.IMAGENET1K_V1 num_params", has_batchnorm=False),
}


def _metadata(arch: str, fold_bn: bool = True) -> dict[str, str]:
    info = ARCHITECTURES[arch]
    return {"architecture": info.title, "weights": f"seeded random (He init), {_bn_form(fold_bn)}",
            "accuracy": "null", "accuracy_reason": ACCURACY_REASON,
            "params_published": str(info.published_params), "params_source": info.source}


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts of one built model: unfolded (published convention), folded (what the BN-folded
    graph stores) and in_graph (the float elements this graph stores: = folded when BN is folded; with BN
    kept, unfolded + the BN running mean and var, which are buffers in torch but constants in ONNX)."""

    unfolded: int
    folded: int
    published: int
    published_tolerance: int
    in_graph: int

    @property
    def difference(self) -> int:
        """unfolded - published (0 when it matches an exact published figure)."""
        return self.unfolded - self.published

    @property
    def matches_published(self) -> bool:
        return abs(self.difference) <= self.published_tolerance


def param_counts(arch: str, model: onnx.ModelProto) -> ParamCounts:
    info = _info(arch)
    props = model_props(model)
    return ParamCounts(int(props["params_unfolded"]), int(props["params_folded"]),
                       info.published_params, info.published_tolerance, count_initializer_elements(model))


def build_arch(arch: str, seed: int = 0, fold_bn: bool = True) -> onnx.ModelProto:
    """The ONNX model of `arch` (one of ARCHITECTURES) with weights drawn from `seed`; `fold_bn=False`
    keeps every BatchNorm as a BatchNormalization node (same draws, same function)."""
    info = _info(arch)
    if fold_bn:
        return info.build(seed)
    if not info.has_batchnorm:
        with_bn = ", ".join(a for a, i in ARCHITECTURES.items() if i.has_batchnorm)
        raise ModelError(f"{arch} has no BatchNorm, so there is nothing to keep unfolded; "
                         f"fix: build it with fold_bn=True, or unfold one of {with_bn}")
    return info.build(seed, fold_bn=False)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    seconds: float
    params: ParamCounts
    size_bytes: int


def export_arch(arch: str, path: str | Path, seed: int = 0, fold_bn: bool = True) -> ExportResult:
    """Build `arch` and write it to `path` (atomically: a partial file is never left behind)."""
    start = time.perf_counter()
    model = build_arch(arch, seed, fold_bn)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return ExportResult(path, time.perf_counter() - start, param_counts(arch, model), path.stat().st_size)


def _info(arch: str) -> ArchInfo:
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture '{arch}'; fix: use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


# ---- zoo family ----------------------------------------------------------------------------------
FAMILY = "archs"
#: precisions built for the speed-run models. int4 (W4A8 QDQ) and int2 are left out: ORT dequantizes
#: them at run time (docs/models.md), so they would measure an emulation, not a speed.
ARCH_PRECISIONS = ("fp32", "fp16", "int8")
WEIGHT_SEED = 0
#: random N(0, 1) images used to calibrate INT8 (16, as for ResNet-50 in docs/models.md)
CALIBRATION_SAMPLES = 16
CALIBRATION_SEED = 1234
#: bump when the builders or the variant recipe change the artifacts' bytes
ARTIFACT_CODE_VERSION = 1
#: zoo-name suffix of the variants that keep BatchNorm as its own node (`resnet50-fp32-bn`)
UNFOLDED_SUFFIX = "-bn"
#: precisions of the unfolded variants: FP32 only, the precision in which Xu et al. (NPC'19) time BN;
#: an INT8 QDQ or FP16 BN would measure the quantizer's or converter's handling of BN instead
UNFOLDED_PRECISIONS = ("fp32",)


def model_name(arch: str, precision: str, fold_bn: bool = True) -> str:
    """`<arch>-<precision>`, or `<arch>-<precision>-bn` for the variant with BatchNorm unfolded."""
    return f"{arch}-{precision}" + ("" if fold_bn else UNFOLDED_SUFFIX)


def _is_unfolded(info: ModelInfo) -> bool:
    return info.name == model_name(info.architecture, info.precision, fold_bn=False)


def _bn_form(fold_bn: bool) -> str:
    return "BN folded" if fold_bn else "BN kept as BatchNormalization nodes"


def list_models() -> list[ModelInfo]:
    """`<arch>-<precision>` for every architecture and precision in ARCH_PRECISIONS, then
    `<arch>-<precision>-bn` for every architecture with BatchNorm and precision in UNFOLDED_PRECISIONS."""
    folded = [ModelInfo(name=model_name(arch, precision), family=FAMILY, architecture=arch, pruning=None,
                        precision=precision, dataset=None,
                        description=f"{info.title}, seeded random weights (speed only), {precision}")
              for arch, info in ARCHITECTURES.items() for precision in ARCH_PRECISIONS]
    unfolded = [ModelInfo(name=model_name(arch, precision, fold_bn=False), family=FAMILY, architecture=arch,
                          pruning=None, precision=precision, dataset=None,
                          description=(f"{info.title}, seeded random weights (speed only), {precision}, "
                                       f"{_bn_form(False)}"))
                for arch, info in ARCHITECTURES.items() if info.has_batchnorm
                for precision in UNFOLDED_PRECISIONS]
    return folded + unfolded


def calibration_inputs(n: int = CALIBRATION_SAMPLES) -> np.ndarray:
    return np.random.default_rng(CALIBRATION_SEED).standard_normal(
        (n, 3, IMAGE_SIDE, IMAGE_SIDE), dtype=np.float32)


def build_model(info: ModelInfo, models_dir: Path, progress: Progress | None = None,
                force: bool = False) -> Path:
    """Build (or reuse) `<models_dir>/<name>.onnx` (`<arch>-<precision>[-bn]`) and its metadata JSON."""
    from mlperf_ext.zoo import quantize

    path = Path(models_dir) / f"{info.name}.onnx"
    fold_bn = not _is_unfolded(info)
    form = "" if fold_bn else "/bn-unfolded"
    recipe = (f"{FAMILY}/{info.architecture}/seed{WEIGHT_SEED}/{info.precision}{form}"
              f"/code{ARTIFACT_CODE_VERSION}")
    say = progress or (lambda _m: None)
    if not force and is_current(path, recipe):
        say(f"{info.name}: cached")
        return path
    start = time.perf_counter()
    say(f"{info.name}: building")
    fp32 = build_arch(info.architecture, WEIGHT_SEED, fold_bn)
    counts = param_counts(info.architecture, fp32)
    if info.precision == "int8":
        model, producer = quantize.to_int8_qdq(fp32, calibration_inputs(), INPUT_NAME)
        producer["calibration_source"] = "random N(0,1) inputs: calibrated on random inputs, speed only"
    else:
        model, producer = quantize.make_variant(fp32, info.precision)
        if info.precision == "fp32":
            producer["recipe"] = f"seeded random weights (He init), {_bn_form(fold_bn)}"
    data = model.SerializeToString()
    arch = ARCHITECTURES[info.architecture]
    meta = {
        **info.to_dict(),
        "producer": producer,
        "params": counts.unfolded,
        "params_detail": {"unfolded_torchvision_style": counts.unfolded, "folded": counts.folded,
                          "in_graph": counts.in_graph, "published": arch.published_params,
                          "published_tolerance": arch.published_tolerance,
                          "published_source": arch.source, "difference": counts.difference},
        "weights": {"kind": f"seeded random (He init), {_bn_form(fold_bn)}", "seed": WEIGHT_SEED},
        "batchnorm": ("folded" if fold_bn else "unfolded") if arch.has_batchnorm else "none",
        "accuracy": None,
        "accuracy_reason": ACCURACY_REASON,
        "recipe": recipe,
        "input": {"name": INPUT_NAME, "shape": ["N", 3, IMAGE_SIDE, IMAGE_SIDE], "dtype": "float32",
                  "preprocessing": "none (random weights; any float32 image tensor)"},
        "output": {"name": OUTPUT_NAME, "shape": ["N", NUM_CLASSES], "dtype": "float32"},
        "onnx": onnx_facts(model),
        "versions": versions(),
        "build_time_s": round(time.perf_counter() - start, 3),
    }
    write_artifact(data, path, meta)
    say(f"{info.name}: built in {meta['build_time_s']:.1f} s")
    return path


register_family(FAMILY, list_models, build_model)


def main() -> None:
    """Print the parameter counts next to the published ones, and the node counts of the BN-folded and
    unfolded graphs (python -m mlperf_ext.zoo.archs)."""
    for name, info in ARCHITECTURES.items():
        start = time.perf_counter()
        model = info.build(0)
        counts = param_counts(name, model)
        nodes = f"nodes {len(model.graph.node):>4}"
        if info.has_batchnorm:
            unfolded = build_arch(name, 0, fold_bn=False)
            nodes += f" / {len(unfolded.graph.node)} unfolded"
        print(f"{info.title:48s} unfolded {counts.unfolded:>12,}  folded {counts.folded:>12,}  "
              f"published {info.published_params:>12,} (+-{info.published_tolerance:,})  "
              f"diff {counts.difference:+,}  {nodes}  build {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
