"""A small ONNX graph builder for CNNs with seeded random weights (numpy + onnx.helper, no torch).

Why: the speed-run architectures (ResNet-50, MobileNetV1, GoogLeNet, VGG-16, AlexNet) need no trained
weights, and building them straight as ONNX keeps torch out of the core install.

Conventions:
- Weights are He-initialised (normal, std = sqrt(2 / fan_in)) from one `numpy.random.Generator`,
  so a (architecture, seed) pair always gives the same bytes.
- A conv followed by BatchNorm is emitted *folded* by default: the graph holds Conv(W', b') + Relu
  with W' = W * gamma / sqrt(var + eps) and b' = beta - mean * gamma / sqrt(var + eps). The BN
  statistics are drawn at random (gamma near 1, small beta/mean, var near 1) so the fold is not the
  identity. With `fold_bn=False` the same draws are emitted *unfolded*: Conv(W) without bias, then
  BatchNormalization(scale=gamma, B=beta, mean, var) as its own node, so a runtime (or a microbenchmark)
  has a BN to execute; both forms compute the same function from the same seed.
- Two parameter counts are kept: `params_unfolded` counts what the unfolded model has, the way
  torchvision counts `sum(p.numel() for p in model.parameters())` (conv weights, conv bias if any,
  BN gamma and beta -- running mean/var are buffers, not parameters --, FC weight and bias);
  `params_folded` is what the BN-folded graph stores (each BN's gamma and beta become one conv bias
  per channel). An unfolded graph stores more: its BatchNormalization nodes hold gamma, beta, mean and
  var, i.e. `params_unfolded + 2 * bn_channels` float elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: BatchNorm epsilon used when folding (torch.nn.BatchNorm2d default)
BN_EPS = 1e-5


@dataclass
class GraphBuilder:
    """Accumulates nodes and initializers of one NCHW float32 graph with a dynamic batch "N"."""

    name: str
    seed: int = 0
    opset: int = 17
    batch_dim: str = "N"
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    #: False: keep every BatchNorm as its own BatchNormalization node instead of folding it into the conv
    fold_bn: bool = True
    params_unfolded: int = 0
    #: channels of all BatchNorms drawn so far (folded or not)
    bn_channels: int = 0
    #: channels of every NCHW tensor produced so far (tensor name -> C), and vector widths after flatten
    channels: dict[str, int] = field(default_factory=dict)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    # ---- naming and weights -------------------------------------------------------------------
    def _fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def _const(self, prefix: str, array: np.ndarray) -> str:
        name = self._fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def _he(self, shape: tuple[int, ...], fan_in: int, gain: float = 2.0) -> np.ndarray:
        std = math.sqrt(gain / fan_in)
        return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    # ---- graph pieces -------------------------------------------------------------------------
    def input(self, name: str, channels: int, height: int, width: int) -> str:
        self.inputs.append(helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [self.batch_dim, channels, height, width]))
        self.channels[name] = channels
        return name

    def conv(self, x: str, out_ch: int, kernel: int, stride: int = 1, pad: int = 0, groups: int = 1,
             bn: bool = True, relu: bool = True, gamma_scale: float = 1.0) -> str:
        """Conv (+ BN when `bn`, folded unless `fold_bn` is False; else a conv bias) (+ Relu).
        Returns the output tensor name.

        `gamma_scale` shrinks the drawn BN gammas; ResNet uses it on the last BN of each residual
        branch so that activations do not double in variance at every residual add.
        """
        in_ch = self.channels[x]
        if in_ch % groups or out_ch % groups:
            raise ValueError(f"conv with {in_ch}->{out_ch} channels cannot use {groups} groups")
        fan_in = (in_ch // groups) * kernel * kernel
        w = self._he((out_ch, in_ch // groups, kernel, kernel), fan_in)
        if bn:
            gamma = self.rng.uniform(0.8, 1.2, out_ch).astype(np.float32) * np.float32(gamma_scale)
            beta = self.rng.normal(0.0, 0.05, out_ch).astype(np.float32)
            mean = self.rng.normal(0.0, 0.05, out_ch).astype(np.float32)
            var = self.rng.uniform(0.8, 1.2, out_ch).astype(np.float32)
            self.params_unfolded += w.size + 2 * out_ch  # conv weight (no bias) + BN gamma, beta
            self.bn_channels += out_ch
            if not self.fold_bn:
                conv_out = self._fresh("conv")
                self.nodes.append(helper.make_node(
                    "Conv", [x, self._const("W", w)], [conv_out], kernel_shape=[kernel, kernel],
                    strides=[stride, stride], pads=[pad] * 4, group=groups))
                self.channels[conv_out] = out_ch
                out = self.batch_norm(conv_out, gamma, beta, mean, var)
                return self.relu(out) if relu else out
            scale = gamma / np.sqrt(var + np.float32(BN_EPS))
            w = w * scale[:, None, None, None]
            b = beta - mean * scale
        else:
            b = np.zeros(out_ch, dtype=np.float32)
            self.params_unfolded += w.size + out_ch  # conv weight + bias
        out = self._fresh("conv")
        self.nodes.append(helper.make_node(
            "Conv", [x, self._const("W", w), self._const("B", b.astype(np.float32))], [out],
            kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, group=groups))
        self.channels[out] = out_ch
        return self.relu(out) if relu else out

    def batch_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
                   var: np.ndarray) -> str:
        """Inference-mode BatchNormalization over the channels of `x` (epsilon BN_EPS)."""
        out = self._fresh("bn")
        inputs = [x, self._const("gamma", gamma), self._const("beta", beta), self._const("mean", mean),
                  self._const("var", var)]
        self.nodes.append(helper.make_node("BatchNormalization", inputs, [out], epsilon=BN_EPS))
        self.channels[out] = self.channels[x]
        return out

    def relu(self, x: str) -> str:
        out = self._fresh("relu")
        self.nodes.append(helper.make_node("Relu", [x], [out]))
        self.channels[out] = self.channels[x]
        return out

    def max_pool(self, x: str, kernel: int, stride: int, pad: int = 0, ceil: bool = False) -> str:
        out = self._fresh("maxpool")
        self.nodes.append(helper.make_node(
            "MaxPool", [x], [out], kernel_shape=[kernel, kernel], strides=[stride, stride],
            pads=[pad] * 4, ceil_mode=int(ceil)))
        self.channels[out] = self.channels[x]
        return out

    def global_avg_pool(self, x: str) -> str:
        out = self._fresh("gap")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [out]))
        self.channels[out] = self.channels[x]
        return out

    def add(self, a: str, b: str) -> str:
        if self.channels[a] != self.channels[b]:
            raise ValueError(f"residual add of {self.channels[a]} and {self.channels[b]} channels")
        out = self._fresh("add")
        self.nodes.append(helper.make_node("Add", [a, b], [out]))
        self.channels[out] = self.channels[a]
        return out

    def concat(self, xs: list[str]) -> str:
        out = self._fresh("concat")
        self.nodes.append(helper.make_node("Concat", xs, [out], axis=1))
        self.channels[out] = sum(self.channels[x] for x in xs)
        return out

    def flatten(self, x: str, features: int) -> str:
        """Flatten(axis=1): keeps the dynamic batch; `features` = C*H*W, stated by the caller."""
        out = self._fresh("flatten")
        self.nodes.append(helper.make_node("Flatten", [x], [out], axis=1))
        self.channels[out] = features
        return out

    def gemm(self, x: str, out_features: int, relu: bool = False, output: str | None = None) -> str:
        """Fully connected layer y = x W^T + b (torch Linear layout, transB=1)."""
        in_features = self.channels[x]
        gain = 2.0 if relu else 1.0  # He for ReLU layers, LeCun for the logits layer
        w = self._he((out_features, in_features), in_features, gain)
        b = np.zeros(out_features, dtype=np.float32)
        self.params_unfolded += w.size + b.size
        out = output or self._fresh("gemm")
        self.nodes.append(helper.make_node("Gemm", [x, self._const("W", w), self._const("B", b)], [out],
                                           transB=1))
        self.channels[out] = out_features
        return self.relu(out) if relu else out

    # ---- result -------------------------------------------------------------------------------
    def finish(self, output: str, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
        """The model with output `output` of shape [N, features] and the parameter counts, after
        onnx.checker accepted it (a malformed graph fails here, not later inside a runtime)."""
        out_info = helper.make_tensor_value_info(output, TensorProto.FLOAT,
                                                 [self.batch_dim, self.channels[output]])
        graph = helper.make_graph(self.nodes, self.name, self.inputs, [out_info], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="mlperf-ext.zoo.onnx_builder")
        model.ir_version = 8  # opset 17 pairs with IR 8; keeps older runtimes able to load it
        # folded: the initializers are exactly the folded parameters; unfolded: what folding would leave
        folded = count_initializer_elements(model) if self.fold_bn else self.params_unfolded - self.bn_channels
        props = {"params_unfolded": str(self.params_unfolded), "params_folded": str(folded),
                 "seed": str(self.seed)}
        if not self.fold_bn:
            props["batchnorm"] = "unfolded (BatchNormalization nodes)"
        props.update(metadata or {})
        helper.set_model_props(model, props)
        onnx.checker.check_model(model)
        return model


def count_initializer_elements(model: onnx.ModelProto) -> int:
    """Elements of all floating-point initializers: the parameters a folded graph really stores."""
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type in floats)


def model_props(model: onnx.ModelProto) -> dict[str, str]:
    """The model's metadata_props as a dict."""
    return {p.key: p.value for p in model.metadata_props}
