"""The stand-in board's QONNX network: FINN's TFC and CNV as Brevitas exports them, run with exact integer sums.

`QonnxAccelerator` is what `sut.fake_pynq_board.FakePynqBoard` runs when it is programmed with a QONNX model
(`mlperf_ext.zoo.mlp_brevitas`); `sut.fake_accelerator.load_accelerator` picks it for a graph with QONNX quantizers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_ext.errors import UnsupportedVariant
from mlperf_ext.zoo.qonnx_twin import QONNX_DOMAIN, quant_range, text_attr

_PRODUCTS = ("MatMul", "Gemm")
@dataclass(frozen=True)
class Quantized:
    """A tensor as the hardware holds it: integer codes (stored as integer-valued float64, so BLAS sums them
    exactly: every partial sum here is an integer far below 2**53) and the scale one code stands for."""

    codes: np.ndarray
    scale: np.ndarray  # float64, a scalar (per tensor)

    @property
    def value(self) -> np.ndarray:
        return self.codes * self.scale


_LAYOUT_OPS = ("Flatten", "Reshape", "Identity")
_SUPPORTED = (*_PRODUCTS, "Conv", "MaxPool", "BatchNormalization", "Relu", *_LAYOUT_OPS)
#: samples per pass of `logits` (bounds the im2col buffers of the convolutions)
CHUNK = 64


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class QonnxAccelerator:
    """A FINN-style dataflow network read from a QONNX model (Brevitas' export): the stand-in's second network.

    What it runs: products by a quantized weight (`Quant`/`BipolarQuant` of an initializer: integer codes and a
    per-tensor scale) as Gemm/MatMul or as a 2-D convolution (stride 1, no padding or groups: FINN's CNV),
    BatchNormalization, Relu, MaxPool, activation quantizers (`Quant`, `BipolarQuant`) that turn values back into
    integer codes, and Flatten/Reshape/Identity. A product of integer activation codes by integer weight codes is
    accumulated exactly (FINN's MVAU/SWU: the convolution as im2col, sliding windows times the weight matrix),
    then scaled; max-pooling compares codes (the scale is positive); BatchNorm and the quantizers' rounding run in
    float64 (FINN folds them into integer thresholds; float64 holds those decisions well below float32 rounding).
    The input is the UINT8 pixel code stream (scale `input_scale`), the output the top-1 label.
    """

    def __init__(self, model, input_scale: float):
        from onnx import numpy_helper

        self.input_scale = float(input_scale)
        g = model.graph
        self._inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self._nodes = list(g.node)
        self._input, self._output = g.input[0].name, g.output[0].name
        dims = g.input[0].type.tensor_type.shape.dim
        self.input_shape = tuple(int(d.dim_value) for d in dims[1:])  # per sample, as the graph declares it
        if not self.input_shape or not all(self.input_shape):
            raise UnsupportedVariant("the QONNX graph's input has no fixed per-sample shape")
        self.weight_bits: set[int] = set()
        self.act_bits: set[int] = set()
        self._weights: dict[str, Quantized] = {}
        for node in self._nodes:
            if node.domain == QONNX_DOMAIN and node.input[0] in self._inits:
                self._weights[node.output[0]] = self._quantize(node, self._inits[node.input[0]], weight=True)
            elif node.domain == QONNX_DOMAIN:  # an activation quantizer: its width, read from the graph
                self.act_bits.add(1 if node.op_type == "BipolarQuant" else int(self._inits[node.input[3]]))
            elif node.op_type not in _SUPPORTED:
                raise UnsupportedVariant(f"QONNX node {node.name or node.op_type} ({node.op_type}) is not part of a "
                                         "FINN-style network the stand-in models (Gemm/MatMul, Conv, MaxPool, "
                                         "BatchNormalization, Relu, Quant, BipolarQuant)")
            self._check(node)
        if not self._weights:
            raise UnsupportedVariant("the QONNX graph quantizes no weight: not a quantized network")
        # each product's weight as an (in, out) code matrix, once: the hardware's weights are fixed at build time
        self._matrices = {n.output[0]: self._matrix(n) for n in self._nodes if n.op_type in (*_PRODUCTS, "Conv")}

    @classmethod
    def from_onnx(cls, path: Path | str, input_scale: float) -> QonnxAccelerator:
        """`input_scale`: the host value of one input code (the deployment's, e.g. 1/255 for pixels)."""
        import onnx

        return cls(onnx.load(str(path)), input_scale)

    def _check(self, node) -> None:
        a = _attrs(node)
        if node.op_type == "Conv":
            if (len(node.input) > 2 or any(v != 1 for v in a.get("strides", [1, 1]) + a.get("dilations", [1, 1]))
                    or any(a.get("pads", [0, 0, 0, 0])) or a.get("group", 1) != 1):
                raise UnsupportedVariant(f"Conv {node.name}: bias, stride, dilation, padding or groups the stand-in "
                                         "does not model (FINN's CNV: 3x3, stride 1, no padding)")
        elif node.op_type == "MaxPool":
            k = a.get("kernel_shape")
            if a.get("strides", k) != k or any(a.get("pads", [0, 0, 0, 0])) or len(k) != 2:
                raise UnsupportedVariant(f"MaxPool {node.name}: only non-overlapping 2-D windows are modelled")
        elif node.op_type == "Gemm":
            if len(node.input) > 2 or a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise UnsupportedVariant(f"Gemm {node.name} has a bias, transA or alpha/beta the stand-in does not model")

    def _quantize(self, node, x: np.ndarray, weight: bool = False) -> Quantized:
        scale = np.asarray(self._inits[node.input[1]], np.float64)
        if scale.size != 1:
            raise UnsupportedVariant(f"QONNX {node.op_type} {node.name}: a per-channel scale is not modelled")
        scale = scale.reshape(())
        x = np.asarray(x, np.float64)
        if node.op_type == "BipolarQuant":
            if weight:
                self.weight_bits.add(1)
            return Quantized(np.where(x >= 0, 1.0, -1.0), scale)
        if node.op_type != "Quant":
            raise UnsupportedVariant(f"QONNX op {node.op_type} is not modelled by the stand-in")
        a = _attrs(node)
        zero = np.asarray(self._inits[node.input[2]], np.float64)
        bits = float(self._inits[node.input[3]])
        if np.any(zero != 0) or text_attr(a.get("rounding_mode", "ROUND")) != "ROUND" or bits != int(bits):
            raise UnsupportedVariant(f"QONNX Quant {node.name}: zero point, rounding or fractional bit width the "
                                     "stand-in does not model")
        lo, hi = quant_range(bits, bool(a.get("signed", 1)), bool(a.get("narrow", 0)))
        if weight:
            self.weight_bits.add(int(bits))
        return Quantized(np.clip(np.round(x / scale), lo, hi), scale)

    def _matrix(self, node) -> Quantized:
        """A product's weight as an (in, out) code matrix: Gemm(transB=1) and Conv store (out, in...)."""
        w = self._weights.get(node.input[1])
        if w is None:
            raise UnsupportedVariant(f"{node.op_type} {node.name}'s weight is not a quantized initializer")
        if node.op_type == "Conv" or (node.op_type == "Gemm" and _attrs(node).get("transB", 0)):
            return Quantized(w.codes.reshape(w.codes.shape[0], -1).T, w.scale)
        return w

    @property
    def in_features(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def classes(self) -> int:
        return int(list(self._matrices.values())[-1].codes.shape[1])

    def logits(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, np.float64).reshape(-1, *self.input_shape)
        return np.concatenate([self._run(codes[i:i + CHUNK]) for i in range(0, len(codes), CHUNK)]
                              or [np.zeros((0, self.classes))])

    def _run(self, codes: np.ndarray) -> np.ndarray:
        vals: dict[str, object] = {self._input: Quantized(codes, np.float64(self.input_scale))}

        def value(name: str) -> np.ndarray:
            v = vals[name]
            return v.value if isinstance(v, Quantized) else v

        for node in self._nodes:
            out = node.output[0]
            if out in self._weights:
                continue
            x = vals[node.input[0]]
            if node.op_type in (*_PRODUCTS, "Conv"):
                w = self._matrices[out]
                a = x if isinstance(x, Quantized) else Quantized(np.asarray(x, np.float64), np.float64(1.0))
                if node.op_type == "Conv":
                    kh, kw = self._weights[node.input[1]].codes.shape[2:]
                    win = np.lib.stride_tricks.sliding_window_view(a.codes, (kh, kw), axis=(2, 3))
                    n, c, h, wd = win.shape[:4]
                    patches = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, c * kh * kw)
                    acc = (patches @ w.codes).reshape(n, h, wd, -1).transpose(0, 3, 1, 2)
                else:
                    acc = a.codes @ w.codes
                vals[out] = acc * (a.scale * w.scale)  # the exact integer sums, then scaled
            elif node.op_type == "BatchNormalization":
                gamma, beta, mean, var = (np.asarray(self._inits[i], np.float64) for i in node.input[1:5])
                eps = _attrs(node).get("epsilon", 1e-5)
                v = value(node.input[0])
                shape = (1, -1) + (1,) * (v.ndim - 2)
                vals[out] = ((v - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape)
                             + beta.reshape(shape))
            elif node.op_type == "Relu":
                vals[out] = np.maximum(value(node.input[0]), 0.0)
            elif node.op_type == "MaxPool":
                k = _attrs(node)["kernel_shape"]
                arr = x.codes if isinstance(x, Quantized) else np.asarray(x)
                n, c, h, wd = arr.shape
                pooled = arr[:, :, :h // k[0] * k[0], :wd // k[1] * k[1]].reshape(
                    n, c, h // k[0], k[0], wd // k[1], k[1]).max(axis=(3, 5))
                vals[out] = Quantized(pooled, x.scale) if isinstance(x, Quantized) else pooled
            elif node.domain == QONNX_DOMAIN:
                vals[out] = self._quantize(node, value(node.input[0]))
            elif node.op_type in ("Flatten", "Reshape"):  # to (n, features): FINN's CNV flattens a 1x1 map
                vals[out] = (Quantized(x.codes.reshape(len(x.codes), -1), x.scale) if isinstance(x, Quantized)
                             else np.asarray(x).reshape(len(x), -1))
            else:  # Identity
                vals[out] = x
        return np.asarray(value(self._output), np.float64)

    def labels(self, codes: np.ndarray) -> np.ndarray:
        return self.logits(codes).argmax(axis=1)

    def precision(self) -> str:
        return f"w{max(self.weight_bits)}a{max(self.act_bits) if self.act_bits else 32}"

    def executed(self) -> str:
        """What the network computes in, for the row: its quantizers' widths, read from the graph."""
        acts = f"{max(self.act_bits)}-bit activations" if self.act_bits else "float activations"
        return f"{self.precision()} ({max(self.weight_bits)}-bit weights, {acts}; QONNX)"
