"""`FakeOverlay`: a stand-in for a PYNQ board running a FINN-style MLP accelerator, for machines without one.

It offers what `sut.finn_driver.FinnDriver` uses of a real overlay, with the same interfaces as PYNQ's
objects (`pynq/lib/dma.py`, `pynq/buffer.py`, github.com/Xilinx/PYNQ): an AXI DMA `axi_dma_0` whose
`sendchannel`/`recvchannel` have `transfer(buffer, start=0, nbytes=0)`, `wait()` and `idle`; a register
block `finn_accel_0` with `write(offset, value)` where the driver writes the job's sample count; and
`allocate(shape=..., dtype=...)` buffers with `flush()`/`invalidate()`. The buffers keep a separate
"device memory" that only `flush()` updates and only `invalidate()` reads back, as a cacheable buffer
behaves on a Zynq, so a driver that skips its cache maintenance reads stale data here too. Like PYNQ's
channels, a send flushes its buffer inside `transfer()` and a receive invalidates its buffer inside
`wait()`. A transfer the hardware would hang on (a receive armed for the wrong length, a wait with nothing
sent) raises instead. Every call is appended to `events`, so tests can see what ran where.

**The accelerator inside** is `MlpAccelerator`, this project's numpy model of the zoo's quantized MLPs,
read from the ONNX variant's own initializers:
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

**Timing is simulated**: the model runs on the host CPU inside the receive channel's `wait()`, so a
compute interval measured through this fake is numpy's time, never FPGA performance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_ext.errors import ModelError, UnsupportedVariant
from sut.finn_driver import DataType, OverlayMetadata, pack_bits, unpack_bits

#: MNIST pixels 0..255 scaled by 1/255 on the host (mlperf_ext.datasets.mnist.mlp_input)
PIXEL_SCALE = 1.0 / 255.0
#: the largest DMA job the fake declares in its metadata (a real overlay's metadata says its own)
FAKE_MAX_BATCH = 1024
FAKE_BATCH_REGISTER = {"ip": "finn_accel_0", "offset": 0x1C}
#: stream words the fake folds its input into: the widest of these that divides the input
SIMD_CHOICES = (64, 32, 16, 8, 4, 2, 1)
_SIGNED_WEIGHT_TYPES = {"int2": 2, "int4": 4, "int8": 8}


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
            raise UnsupportedVariant(f"the fake overlay models single-input, single-output MLPs; this graph has "
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
        raise UnsupportedVariant(f"Gemm {gemm.name} has transA/alpha/beta the fake overlay does not model")
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
                                 "a layout the fake overlay decodes")
    if attrs.get("accuracy_level", 0) not in (0, 1):
        raise UnsupportedVariant(f"MatMulNBits {node.name} has accuracy_level {attrs['accuracy_level']} (ORT "
                                 "quantizes its activations then); the fake models fp32 activations only")
    extra = [name for name in node.input[3:] if name]
    if extra:
        raise UnsupportedVariant(f"MatMulNBits {node.name} has zero points, g_idx or bias inputs the zoo's symmetric "
                                 "INT4 does not; the fake overlay does not model them")
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
                                     "fully connected layer the fake overlay models (INT2 DequantizeLinear + Gemm, "
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


def mlp_refusal(path: Path | str) -> str | None:
    """Why the fake overlay cannot model this ONNX file, or None."""
    try:
        read_quantized_mlp(path)
    except (UnsupportedVariant, ModelError) as exc:
        return f"the fake overlay cannot model {Path(path).name}: {exc}"
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


# ---------------------------------------------------------------------------------------------- fake hardware

class FakeBuffer(np.ndarray):
    """A buffer from `FakeOverlay.allocate`: host view (this array) and device memory kept apart."""

    def __array_finalize__(self, obj):
        # views and slices share the host memory but are not allocations of their own
        self.device_memory = None
        self.events = getattr(obj, "events", None)
        self.label = getattr(obj, "label", "view")
        self.physical_address = getattr(obj, "physical_address", 0)

    def _host_bytes(self) -> np.ndarray:
        return np.asarray(self).reshape(-1).view(np.uint8)

    def flush(self) -> None:
        """Write the host view back to device memory (what the DMA reads)."""
        if self.device_memory is None:
            raise RuntimeError("flush() on a view: flush the buffer allocate() returned")
        self.device_memory[:] = self._host_bytes()
        self.events.append(f"{self.label}.flush")

    def invalidate(self) -> None:
        """Reload the host view from device memory (what the DMA wrote)."""
        if self.device_memory is None:
            raise RuntimeError("invalidate() on a view: invalidate the buffer allocate() returned")
        self._host_bytes()[:] = self.device_memory
        self.events.append(f"{self.label}.invalidate")

    def freebuffer(self) -> None:
        if self.device_memory is not None:
            self.events.append(f"{self.label}.free")
            self.device_memory = None


class FakeChannel:
    """One direction of the fake AXI DMA, with PYNQ's `_SDMAChannel` interface (simple mode)."""

    def __init__(self, overlay: FakeOverlay, direction: str, max_size: int = (1 << 26) - 1):
        self._overlay = overlay
        self.direction = direction
        self._max_size = max_size  # the AXI DMA's 26-bit length register (PYNQ's buffer_max_size default)
        self._active: tuple[FakeBuffer, int, int] | None = None
        self.running = True
        self.transferred = 0

    @property
    def idle(self) -> bool:
        return self._active is None

    def transfer(self, array: Any, start: int = 0, nbytes: int = 0) -> None:
        if not self.idle:
            raise RuntimeError("DMA channel not idle")
        if not isinstance(array, FakeBuffer) or array.device_memory is None:
            raise RuntimeError("the DMA can only move buffers from allocate() (physically contiguous memory)")
        nbytes = nbytes or array.nbytes - start
        if nbytes > self._max_size or start + nbytes > array.nbytes:
            raise ValueError(f"transfer of {nbytes} bytes from offset {start} exceeds the buffer or the DMA's maximum")
        ov = self._overlay
        if self.direction == "send":
            array.flush()  # PYNQ's send channel flushes before it starts (pynq/lib/dma.py, _flush_before)
            ov.events.append(f"dma.send.transfer({nbytes})")
            ov.stream_in(bytes(array.device_memory[start:start + nbytes]))
        else:
            ov.events.append(f"dma.recv.transfer({nbytes})")
        self._active = (array, start, nbytes)

    def wait(self) -> None:
        if self._active is None:
            raise RuntimeError(f"wait() on the {self.direction} channel with no transfer started: a board would hang")
        array, start, nbytes = self._active
        ov = self._overlay
        if self.direction == "recv":
            out = ov.stream_out(nbytes)
            array.device_memory[start:start + nbytes] = np.frombuffer(out, np.uint8)
            array.invalidate()  # PYNQ's receive channel invalidates after the transfer (pynq/lib/dma.py)
        ov.events.append(f"dma.{self.direction}.wait")
        self.transferred = nbytes
        self._active = None


class FakeDma:
    """`overlay.axi_dma_0`: a send (MM2S) and a receive (S2MM) channel."""

    def __init__(self, overlay: FakeOverlay):
        self.sendchannel = FakeChannel(overlay, "send")
        self.recvchannel = FakeChannel(overlay, "recv")


class FakeRegisters:
    """The accelerator's control registers (PYNQ's DefaultIP `write`/`read`)."""

    def __init__(self, overlay: FakeOverlay):
        self._overlay = overlay
        self.values: dict[int, int] = {}

    def write(self, offset: int, value: int) -> None:
        self.values[offset] = int(value)
        self._overlay.events.append(f"accel.write({offset:#x}, {int(value)})")

    def read(self, offset: int) -> int:
        return self.values.get(offset, 0)


def _simd(in_features: int) -> int:
    return next(s for s in SIMD_CHOICES if in_features % s == 0)


class FakeOverlay:
    """A FINN-style MLP accelerator behind one AXI DMA, simulated on the host by `MlpAccelerator`.

    `metadata` is what the overlay declares (the same schema a real overlay's overlay.json has): UINT8
    input folded into stream words of `_simd` pixels, a UINT<n> top-1 label out, at most FAKE_MAX_BATCH
    samples per job, the batch count at `finn_accel_0` offset 0x1C.
    """

    name = "fake-overlay"

    def __init__(self, model_path: Path | str, max_batch: int = FAKE_MAX_BATCH):
        self.model_path = Path(model_path)
        self.accelerator = MlpAccelerator.from_onnx(self.model_path)
        acc = self.accelerator
        simd = _simd(acc.in_features)
        odt = f"UINT{max(1, (acc.classes - 1).bit_length())}"  # as FINN sizes a label select's output
        self.metadata = OverlayMetadata(
            name=self.name, idt="UINT8", odt=odt, ishape_normal=(acc.in_features,),
            ishape_folded=(acc.in_features // simd, simd), oshape_normal=(1,), oshape_folded=(1, 1),
            max_batch=max_batch, input_scale=PIXEL_SCALE, classes=acc.classes,
            batch_register=dict(FAKE_BATCH_REGISTER),
            implements={"model": self.model_path.stem, "onnx": self.model_path.name,
                        "weights": acc.precision(), "layers": [layer.source for layer in acc.layers],
                        "activations": "float32 (as the ONNX graph)"})
        self.events: list[str] = []
        self.axi_dma_0 = FakeDma(self)
        self.finn_accel_0 = FakeRegisters(self)
        self.ip_dict = {"axi_dma_0": {"type": "xilinx.com:ip:axi_dma:7.1 (fake)"},
                        "finn_accel_0": {"type": "fake FINN MLP accelerator"}}
        self._pending: list[bytes] = []
        self._addresses = 0x4000_0000
        self._allocations = 0
        self.jobs = 0  # accelerator jobs completed

    # -- memory ---------------------------------------------------------------------------------
    def allocate(self, shape, dtype=np.uint32, **_kwargs) -> FakeBuffer:
        """A zeroed buffer with its own device memory (pynq.allocate's signature)."""
        host = np.zeros(shape, dtype=dtype)
        buf = host.view(FakeBuffer)
        buf.device_memory = np.zeros(host.nbytes, np.uint8)
        buf.events = self.events
        buf.label = f"buf{self._allocations}"
        self._allocations += 1
        buf.physical_address = self._addresses
        self._addresses += (host.nbytes + 0xFFF) & ~0xFFF
        self.events.append(f"{buf.label}.allocate({host.nbytes})")
        return buf

    # -- the accelerator's streams ----------------------------------------------------------------
    def stream_in(self, data: bytes) -> None:
        self._pending.append(data)

    def stream_out(self, nbytes: int) -> bytes:
        """Run the job on what was sent and return its output stream (nbytes armed by the receive)."""
        meta = self.metadata
        data = b"".join(self._pending)
        self._pending = []
        reg = meta.batch_register
        n = self.finn_accel_0.read(reg["offset"]) if reg else len(data) // meta.input_bytes
        if not data:
            raise RuntimeError("receive wait() with nothing sent: the accelerator produces no output, a board would hang")
        if len(data) != n * meta.input_bytes or nbytes != n * meta.output_bytes:
            raise RuntimeError(f"the job is {n} samples ({n * meta.input_bytes} input, {n * meta.output_bytes} output "
                               f"bytes) but {len(data)} bytes were sent and {nbytes} armed to receive: the DMA would "
                               "hang on a board")
        words = np.frombuffer(data, np.uint8).reshape(n, *meta.ishape_packed)
        codes = unpack_bits(words, DataType.parse(meta.idt), meta.ishape_folded[-1]).reshape(n, *meta.ishape_normal)
        labels = self.accelerator.labels(codes).reshape(n, *meta.oshape_folded)
        self.jobs += 1
        self.events.append(f"accel.job({n})")
        return pack_bits(labels, DataType.parse(meta.odt)).tobytes()

    def free(self) -> None:
        self.events.append("overlay.free")
