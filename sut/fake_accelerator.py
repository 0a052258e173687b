"""The accelerator inside `sut.fake_pynq_board.FakePynqBoard`: a numpy model of a FINN-style MLP and the stream codec.

**The network** is `MlpAccelerator`, this project's numpy model of the zoo's quantized MLPs, read from the ONNX
variant's own initializers:
- INT2 (`mlperf_ext.zoo.quantize.to_int2_qdq`): INT2 weight codes {-1, 0, 1} -> DequantizeLinear with a
  per-output-channel float32 scale -> Gemm(transB=1) + float32 bias -> Relu;
- INT4 (`to_int4_matmulnbits`): `com.microsoft.MatMulNBits` (4-bit codes q with the default zero point 8,
  a float32 scale per block of 32 inputs, ORT contrib-op spec docs/ContribOperators.md#com.microsoft.MatMulNBits,
  github.com/microsoft/onnxruntime) -> Add bias -> Relu.
Its arithmetic: the input is the accelerator's UINT8 pixel codes p (x = p / 255, what
`mlperf_ext.datasets.mnist.mlp_input` computed); each layer accumulates weight code x activation per
output channel (per block for INT4) in float64, scales the sums by the channel's (block's) float32 scale,
adds the float32 bias, rounds to float32 (the graph's activation type) and applies ReLU; the last layer's
top-1 is the output, as FINN's accelerators end in a label select. In layer 0 every product and partial
sum is an integer below 2**53, so its accumulation is exact integer arithmetic whatever the order.

**"Bit-exact" here means**: the weight codes, scales, zero points and biases are the ONNX file's own,
decoded bit for bit (the tests check the decoded weights equal what ONNX Runtime's own DequantizeLinear and
MatMulNBits produce), the input codes are the exact pixels, and the label the accelerator streams back is
ONNX Runtime's top-1 on every sample. The logits are not bit-identical to ORT's: ORT sums float32 products
in MLAS's order, this model sums exactly and rounds once per layer, so they differ by float32 rounding
(`MlpAccelerator.logits` exposes them to measure it).

**The stream codec** (`pack_bits`/`unpack_bits`) is how the hardware side reads FINN's packed stream: along
the innermost (SIMD) axis, element i occupies bits [i*b, (i+1)*b) of one little-endian word padded up to whole
bytes; signed values are b-bit two's complement. It is this project's own code, written from the layout FINN's
driver produces (`finnpy_to_packed_bytearray(..., reverse_inner=True, reverse_endian=True)`), and the tests
check it against FINN's own packing function byte for byte. The board decodes with it; the host side packs
with FINN's driver, never with this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_ext.errors import ConfigError, ModelError, UnsupportedVariant

#: MNIST pixels 0..255 scaled by 1/255 on the host (mlperf_ext.datasets.mnist.mlp_input)
PIXEL_SCALE = 1.0 / 255.0
#: DMA-able memory of the stand-in board (a setting of this fake, not a board's CMA figure)
CMA_BYTES = 128 << 20


def stand_in_max_batch(features: int) -> int:
    """The most samples the stand-in board's memory holds for a network of `features` UINT8 inputs: FINN's driver
    allocates its packed input and output buffers, and keeps an unpacked copy beside them."""
    return CMA_BYTES // (2 * (features + 2))
_SIGNED_WEIGHT_TYPES = {"int2": 2, "int4": 4, "int8": 8}
_DTYPE_RE = re.compile(r"^(UINT|INT)(\d+)$")


@dataclass(frozen=True)
class DataType:
    """An accelerator stream element type: FINN's UINT<n>, INT<n> and BINARY (= UINT1) names."""

    name: str
    bits: int
    signed: bool

    @classmethod
    def parse(cls, name: str) -> DataType:
        text = str(name).upper()
        if text == "BINARY":
            return cls("BINARY", 1, False)
        m = _DTYPE_RE.match(text)
        if not m or not 1 <= int(m.group(2)) <= 32 or (m.group(1) == "INT" and int(m.group(2)) < 2):
            raise ConfigError(f"unknown accelerator datatype '{name}'; fix: use UINT1..UINT32, INT2..INT32 or "
                              "BINARY in the io_shape_dict")
        return cls(text, int(m.group(2)), m.group(1) == "INT")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def packed_bytes(elements: int, bits: int) -> int:
    """Bytes one innermost vector of `elements` b-bit values takes once packed (padded to whole bytes)."""
    return (elements * bits + 7) // 8


def pack_bits(values: np.ndarray, dtype: DataType) -> np.ndarray:
    """Pack the innermost axis of integer `values` to `dtype.bits` per element: element i at bits
    [i*b, (i+1)*b) of a little-endian word, padded to whole bytes. Out: uint8 (..., packed_bytes(n, b))."""
    values = np.asarray(values)
    if values.size and (values.min() < dtype.min or values.max() > dtype.max):
        raise ValueError(f"values outside {dtype.name} ({dtype.min}..{dtype.max}) cannot be packed")
    n, b = values.shape[-1], dtype.bits
    if b == 8:  # a byte per element: the two's-complement bytes as they are
        return np.ascontiguousarray(values.astype(np.int16 if dtype.signed else np.uint16).astype(np.uint8))
    codes = values.astype(np.int64) & ((1 << b) - 1)
    shifts = np.arange(b, dtype=np.int64)
    bits = ((codes[..., None] >> shifts) & 1).astype(np.uint8).reshape(*values.shape[:-1], n * b)
    pad = packed_bytes(n, b) * 8 - n * b
    if pad:
        bits = np.concatenate([bits, np.zeros((*bits.shape[:-1], pad), np.uint8)], axis=-1)
    return np.packbits(bits, axis=-1, bitorder="little")


def unpack_bits(packed: np.ndarray, dtype: DataType, elements: int) -> np.ndarray:
    """Inverse of `pack_bits`: uint8 (..., packed_bytes(elements, b)) -> int64 (..., elements)."""
    packed = np.asarray(packed, dtype=np.uint8)
    b = dtype.bits
    if packed.shape[-1] != packed_bytes(elements, b):
        raise ValueError(f"{packed.shape[-1]} bytes per vector cannot hold {elements} x {b}-bit values "
                         f"(expected {packed_bytes(elements, b)})")
    if b == 8:
        return packed.view(np.int8).astype(np.int64) if dtype.signed else packed.astype(np.int64)
    bits = np.unpackbits(packed, axis=-1, bitorder="little")[..., : elements * b]
    bits = bits.reshape(*packed.shape[:-1], elements, b).astype(np.int64)
    codes = (bits << np.arange(b, dtype=np.int64)).sum(axis=-1)
    if dtype.signed:
        codes = np.where(codes >= 1 << (b - 1), codes - (1 << b), codes)
    return codes


@dataclass(frozen=True)
class QuantLayer:
    """One fully connected layer as integer codes (out, in) with float32 scales per (channel, block)."""

    codes: np.ndarray  # int8 (out, in): the weight codes, zero point already taken off
    scales: np.ndarray  # float32 (out, blocks); blocks = 1 for per-channel scales
    block_size: int  # inputs per scale block (in, for per-channel)
    bias: np.ndarray  # float32 (out,)
    relu: bool
    weight_bits: int
    source: str  # the ONNX pattern it was read from

    @property
    def in_features(self) -> int:
        return int(self.codes.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.codes.shape[0])

    def dequantized(self) -> np.ndarray:
        """float32 (out, in) weights code x scale, as the runtime's dequantization computes them."""
        scale = np.repeat(self.scales, self.block_size, axis=1)[:, : self.in_features]
        return (self.codes.astype(np.float32) * scale).astype(np.float32)

    def accumulate(self, a: np.ndarray) -> np.ndarray:
        """float64 (n, out, blocks): sum of code x activation per output channel and scale block."""
        n, k = a.shape
        blocks = self.scales.shape[1]
        padded = blocks * self.block_size
        w = self.codes.astype(np.float64)
        if padded != k:
            a = np.concatenate([a, np.zeros((n, padded - k))], axis=1)
            w = np.concatenate([w, np.zeros((w.shape[0], padded - k))], axis=1)
        a3 = a.reshape(n, blocks, self.block_size).transpose(1, 0, 2)  # (blocks, n, bs)
        w3 = w.reshape(-1, blocks, self.block_size).transpose(1, 2, 0)  # (blocks, bs, out)
        return np.matmul(a3, w3).transpose(1, 2, 0)


# ---------------------------------------------------------------------------------------------- ONNX reading

class _Graph:
    """Producers, consumers, attributes and initializers of an ONNX graph, for walking a layer chain."""

    def __init__(self, model):
        from onnx import numpy_helper

        self._to_array = numpy_helper.to_array
        g = model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for node in g.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        inputs = [i for i in g.input if i.name not in self.inits]
        if len(inputs) != 1 or len(g.output) != 1:
            raise UnsupportedVariant(f"the fake accelerator models single-input, single-output MLPs; this graph has "
                                     f"{len(inputs)} inputs and {len(g.output)} outputs")
        self.input, self.output = inputs[0].name, g.output[0].name

    def array(self, name: str, what: str) -> np.ndarray:
        if name not in self.inits:
            raise UnsupportedVariant(f"{what} '{name}' is not a constant initializer")
        return self._to_array(self.inits[name])

    @staticmethod
    def attrs(node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def only_consumer(self, name: str):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 else None


def _type_name(tensor) -> str:
    from onnx import TensorProto

    return TensorProto.DataType.Name(tensor.data_type).lower()


def _int2_gemm(g: _Graph, gemm) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(codes (out, in), scales (out, 1), bias, weight bits) of Gemm(x, DequantizeLinear(q, s), b)."""
    attrs = g.attrs(gemm)
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise UnsupportedVariant(f"Gemm {gemm.name} has transA/alpha/beta the fake accelerator does not model")
    dq = g.producer.get(gemm.input[1])
    if dq is None or dq.op_type != "DequantizeLinear":
        raise UnsupportedVariant(f"Gemm {gemm.name}'s weight is not an integer initializer through DequantizeLinear "
                                 "(a float weight: not a quantized variant)")
    qname = dq.input[0]
    if qname not in g.inits or _type_name(g.inits[qname]) not in _SIGNED_WEIGHT_TYPES:
        raise UnsupportedVariant(f"DequantizeLinear {dq.name} reads no INT2/INT4/INT8 weight initializer")
    bits = _SIGNED_WEIGHT_TYPES[_type_name(g.inits[qname])]
    codes = g.array(qname, "weight").astype(np.int8)
    scale = g.array(dq.input[1], "scale").astype(np.float32)
    if len(dq.input) > 2 and dq.input[2] and np.any(g.array(dq.input[2], "zero point").astype(np.int64) != 0):
        raise UnsupportedVariant(f"DequantizeLinear {dq.name} has a non-zero zero point (the zoo's are symmetric)")
    if codes.ndim != 2:
        raise UnsupportedVariant(f"weight {qname} is not a matrix")
    trans_b = attrs.get("transB", 0)
    out_axis = 0 if trans_b else 1
    if scale.size not in (1, codes.shape[out_axis]) or (scale.size > 1 and
                                                       g.attrs(dq).get("axis", 1) % 2 != out_axis):
        raise UnsupportedVariant(f"DequantizeLinear {dq.name} scales along the input axis, not per output channel")
    if not trans_b:
        codes = codes.T
    scales = np.broadcast_to(scale.reshape(-1), (codes.shape[0],)).reshape(-1, 1).astype(np.float32)
    bias = (g.array(gemm.input[2], "bias").astype(np.float32) if len(gemm.input) > 2 and gemm.input[2]
            else np.zeros(codes.shape[0], np.float32))
    return np.ascontiguousarray(codes), np.ascontiguousarray(scales), bias, bits


def decode_matmulnbits(blob: np.ndarray, bits: int, k: int, n: int, block: int) -> np.ndarray:
    """uint8 (N, blocks, block*bits/8) -> int codes (N, blocks*block), element j of a byte at bits j*b (the
    ORT MatMulNBits layout: the first element of each byte in its low bits)."""
    per_byte = 8 // bits
    shifts = (np.arange(per_byte) * bits).astype(np.uint8)
    vals = (blob[..., None] >> shifts) & ((1 << bits) - 1)
    return vals.reshape(n, -1).astype(np.int64)


def _matmulnbits(g: _Graph, node) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(codes (out, in), scales (out, blocks), block size, bits) of a symmetric MatMulNBits."""
    attrs = g.attrs(node)
    k, n, bits, block = attrs.get("K"), attrs.get("N"), attrs.get("bits", 4), attrs.get("block_size")
    if bits not in (2, 4, 8) or not k or not n or not block:
        raise UnsupportedVariant(f"MatMulNBits {node.name}: bits={bits}, K={k}, N={n}, block_size={block} is not "
                                 "a layout the fake accelerator decodes")
    if attrs.get("accuracy_level", 0) not in (0, 1):
        raise UnsupportedVariant(f"MatMulNBits {node.name} has accuracy_level {attrs['accuracy_level']} (ORT "
                                 "quantizes its activations then); the fake models fp32 activations only")
    extra = [name for name in node.input[3:] if name]
    if extra:
        raise UnsupportedVariant(f"MatMulNBits {node.name} has zero points, g_idx or bias inputs the zoo's symmetric "
                                 "INT4 does not; the fake accelerator does not model them")
    blocks = -(-k // block)
    blob = g.array(node.input[1], "packed weight").astype(np.uint8).reshape(n, blocks, -1)
    if blob.shape[2] * 8 != block * bits:
        raise UnsupportedVariant(f"MatMulNBits {node.name}: {blob.shape[2]} bytes per block cannot hold {block} x "
                                 f"{bits}-bit codes")
    codes = decode_matmulnbits(blob, bits, k, n, block) - (1 << (bits - 1))  # default zero point 2^(bits-1)
    scales = g.array(node.input[2], "scales").astype(np.float32).reshape(n, blocks)
    return codes[:, :k].astype(np.int8), scales, int(block), int(bits)


def read_quantized_mlp(path: Path | str) -> list[QuantLayer]:
    """The chain of quantized fully connected layers of a zoo INT2/INT4 MLP; UnsupportedVariant otherwise."""
    import onnx

    p = Path(path)
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # protobuf errors come in many types: all mean "not an ONNX file"
        raise ModelError(f"{p} is not a readable ONNX model ({type(exc).__name__}); fix: pass the zoo's INT2/INT4 "
                         "MLP variant") from None
    g = _Graph(model)
    layers: list[QuantLayer] = []
    cur = g.input
    while cur != g.output:
        node = g.only_consumer(cur)
        if node is None:
            raise UnsupportedVariant(f"tensor '{cur}' feeds {len(g.consumers.get(cur, []))} nodes: not a plain MLP chain")
        if node.op_type == "Gemm" and node.input[0] == cur:
            codes, scales, bias, bits = _int2_gemm(g, node)
            block, source = codes.shape[1], f"DequantizeLinear(INT{bits}) + Gemm"
            cur = node.output[0]
        elif node.op_type == "MatMulNBits" and node.input[0] == cur:
            codes, scales, block, bits = _matmulnbits(g, node)
            bias, source = np.zeros(codes.shape[0], np.float32), f"MatMulNBits({bits}-bit, block {block})"
            cur = node.output[0]
            add = g.only_consumer(cur)
            if add is not None and add.op_type == "Add":
                other = add.input[1] if add.input[0] == cur else add.input[0]
                bias = g.array(other, "bias").astype(np.float32).reshape(-1)
                cur = add.output[0]
        else:
            raise UnsupportedVariant(f"node {node.name or node.op_type} ({node.op_type}) is not part of a quantized "
                                     "fully connected layer the fake accelerator models (INT2 DequantizeLinear + Gemm, "
                                     "or MatMulNBits + Add)")
        relu = False
        nxt = g.only_consumer(cur)
        if nxt is not None and nxt.op_type == "Relu":
            relu, cur = True, nxt.output[0]
        if bias.shape != (codes.shape[0],):
            raise UnsupportedVariant(f"layer {len(layers)}'s bias has shape {bias.shape}, not ({codes.shape[0]},)")
        if layers and layers[-1].out_features != codes.shape[1]:
            raise UnsupportedVariant(f"layer {len(layers)} takes {codes.shape[1]} inputs but the layer before gives "
                                     f"{layers[-1].out_features}")
        layers.append(QuantLayer(codes, scales, int(block), bias, relu, bits, source))
    if not layers:
        raise UnsupportedVariant("the graph has no fully connected layer")
    return layers


def accelerator_refusal(path: Path | str) -> str | None:
    """Why the stand-in cannot be programmed with this ONNX file (a QONNX network or a zoo INT2/INT4 MLP), or None."""
    try:
        load_accelerator(path)
    except (UnsupportedVariant, ModelError) as exc:
        return f"the fake accelerator cannot model {Path(path).name}: {exc}"
    return None


class MlpAccelerator:
    """The numpy model of the accelerator: integer pixel codes in, logits or top-1 labels out."""

    def __init__(self, layers: list[QuantLayer], input_scale: float = PIXEL_SCALE):
        self.layers = layers
        self.input_scale = float(input_scale)

    @classmethod
    def from_onnx(cls, path: Path | str, input_scale: float = PIXEL_SCALE) -> MlpAccelerator:
        return cls(read_quantized_mlp(path), input_scale)

    @property
    def in_features(self) -> int:
        return self.layers[0].in_features

    @property
    def classes(self) -> int:
        return self.layers[-1].out_features

    def logits(self, codes: np.ndarray) -> np.ndarray:
        """float32 (n, classes) from integer input codes (n, in): the arithmetic in the module docstring."""
        a = np.asarray(codes, dtype=np.float64)
        y = np.empty((a.shape[0], 0), np.float32)
        for i, layer in enumerate(self.layers):
            scales = layer.scales.astype(np.float64) * (self.input_scale if i == 0 else 1.0)
            y = ((layer.accumulate(a) * scales[None]).sum(axis=2) + layer.bias.astype(np.float64)).astype(np.float32)
            if layer.relu:
                y = np.maximum(y, np.float32(0))
            a = y.astype(np.float64)
        return y

    def labels(self, codes: np.ndarray) -> np.ndarray:
        return self.logits(codes).argmax(axis=1)

    def precision(self) -> str:
        bits = sorted({layer.weight_bits for layer in self.layers})
        return "/".join(f"int{b}" for b in bits)

    def executed(self) -> str:
        """What the network computes in, for the row."""
        return f"{self.precision()} weights, float32 activations"


def is_qonnx(path: Path | str) -> bool:
    """Whether an ONNX file holds QONNX quantizers (a network for `sut.fake_qonnx.QonnxAccelerator`)."""
    import onnx

    from mlperf_ext.zoo.qonnx_twin import QONNX_DOMAIN

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - protobuf errors come in many types: not an ONNX file
        return False
    return any(n.domain == QONNX_DOMAIN for n in model.graph.node)


def load_accelerator(path: Path | str, input_scale: float = PIXEL_SCALE):
    """The network the stand-in is programmed with: a QONNX model, else a zoo INT2/INT4 MLP."""
    if is_qonnx(path):
        from sut.fake_qonnx import QonnxAccelerator

        return QonnxAccelerator.from_onnx(path, input_scale)
    return MlpAccelerator.from_onnx(path, input_scale)
