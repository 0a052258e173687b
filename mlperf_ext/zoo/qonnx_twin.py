"""The float twin of a QONNX model: the same arithmetic in standard ONNX ops, for ONNX Runtime and OpenVINO.

QONNX's `Quant` and `BipolarQuant` (domain `qonnx.custom_op.general`, spec: github.com/fastmachinelearning/qonnx
docs/qonnx-custom-ops/quant_op.md and bipolar_quant_op.md) run in no CPU runtime. qonnx's own `QuantToQCDQ` turns
`Quant` into QuantizeLinear/Clip/DequantizeLinear but has no form for `BipolarQuant` (1-bit +-1), so this module
writes the twin itself, node by node:
- a quantizer of a constant (a weight) is evaluated here and becomes a float initializer holding the quantized
  values (codes x scale);
- `Quant(x, s, z, b)` on an activation becomes Div, Add(z), Round, Clip(lo, hi), Sub(z), Mul(s), with lo/hi from
  `signed`/`narrow`/bit width as the spec defines them; `Round` is ONNX's half-to-even, the spec's `ROUND`;
- `BipolarQuant(x, s)` becomes Where(x >= 0, s, -s).
Everything else is kept as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mlperf_ext.errors import ModelError

QONNX_DOMAIN = "qonnx.custom_op.general"
TWIN_OPSET = 17
TWIN_IR_VERSION = 8


def quant_range(bits: float, signed: bool, narrow: bool) -> tuple[float, float]:
    """The integer range of a QONNX Quant: signed [-2^(b-1) (+1 if narrow), 2^(b-1)-1], unsigned [0, 2^b-1 (-1)]."""
    if signed:
        return -(2.0 ** (bits - 1)) + (1 if narrow else 0), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0 ** bits - 1 - (1 if narrow else 0)


def quant_codes(x: np.ndarray, scale, zero_point, bits: float, signed: bool, narrow: bool,
                rounding: str = "ROUND") -> np.ndarray:
    """The integer codes (zero point taken off) a QONNX Quant gives x."""
    if rounding != "ROUND":
        raise ModelError(f"QONNX Quant rounding_mode {rounding} is not modelled; fix: export with ROUND")
    lo, hi = quant_range(bits, signed, narrow)
    return np.clip(np.round(x / scale + zero_point), lo, hi) - zero_point


def bipolar_codes(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, 1.0, -1.0)


def attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def float_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """A standard-ONNX model computing what the QONNX model computes (see the module docstring)."""
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes, new_inits, folded = [], [], set()

    def const(name: str, value) -> str:
        new_inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    for node in g.node:
        if node.domain != QONNX_DOMAIN:
            nodes.append(node)
            continue
        a = attrs(node)
        x, out = node.input[0], node.output[0]
        scale = inits.get(node.input[1])
        if scale is None:
            raise ModelError(f"QONNX node {node.name}: scale {node.input[1]} is not a constant; fix: export with "
                             "constant quantizer parameters")
        if node.op_type == "Quant":
            zero, bits = inits[node.input[2]], float(inits[node.input[3]])
            signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
            if x in inits:
                codes = quant_codes(inits[x], scale, zero, bits, signed, narrow, text_attr(a.get("rounding_mode", "ROUND")))
                new_inits.append(numpy_helper.from_array((codes * scale).astype(np.float32), out))
                folded.add(x)
                continue
            lo, hi = quant_range(bits, signed, narrow)
            p = f"{node.name or out}_twin"
            nodes += [helper.make_node("Div", [x, const(f"{p}_s", scale)], [f"{p}_div"]),
                      helper.make_node("Add", [f"{p}_div", const(f"{p}_z", zero)], [f"{p}_add"]),
                      helper.make_node("Round", [f"{p}_add"], [f"{p}_round"]),
                      helper.make_node("Clip", [f"{p}_round", const(f"{p}_lo", lo), const(f"{p}_hi", hi)],
                                       [f"{p}_clip"]),
                      helper.make_node("Sub", [f"{p}_clip", f"{p}_z"], [f"{p}_codes"]),
                      helper.make_node("Mul", [f"{p}_codes", f"{p}_s"], [out])]
        elif node.op_type == "BipolarQuant":
            if x in inits:
                new_inits.append(numpy_helper.from_array((bipolar_codes(inits[x]) * scale).astype(np.float32), out))
                folded.add(x)
                continue
            p = f"{node.name or out}_twin"
            nodes += [helper.make_node("GreaterOrEqual", [x, const(f"{p}_zero", 0.0)], [f"{p}_ge"]),
                      helper.make_node("Where", [f"{p}_ge", const(f"{p}_pos", scale), const(f"{p}_neg", -scale)],
                                       [out])]
        else:
            raise ModelError(f"QONNX op {node.op_type} ({node.name}) has no float twin here; fix: use Quant or "
                             "BipolarQuant quantizers")
    used = {i for n in nodes for i in n.input}
    keep = [t for t in g.initializer if t.name in used and t.name not in folded]
    graph = helper.make_graph(nodes, g.name or "twin", list(g.input), list(g.output), keep + new_inits)
    twin = helper.make_model(graph, opset_imports=[helper.make_opsetid("", TWIN_OPSET)],
                             producer_name="mlperf_ext.zoo.qonnx_twin")
    twin.ir_version = TWIN_IR_VERSION
    onnx.checker.check_model(twin)
    return twin


def text_attr(value) -> str:
    """An ONNX string attribute as str (onnx returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
