"""The PYNQ backend's parts that need no pynq: the stream codec, FINN deployment packages, the accelerator model.

What runs here for real (in the main environment, numpy 2): the stand-in accelerator's stream codec against an
independent per-element bit manipulation, reading FINN deployments (`io_shape_dict` from a FINN-style
`driver.py`, JSON or YAML; the folder, `.bit` and io-file layouts) with one line per bad input, the accelerator
model's weights decoded bit for bit as ONNX Runtime dequantizes them, the backend's refusals, and the one-line
error that names the FINN environment where pynq and FINN's driver are absent. The driver itself, the real
`pynq` and `FakePynqBoard` run in `tests/finn/` inside `.venv/finn` (make test runs both).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mlperf_ext.errors import BackendUnavailable, ConfigError, ModelError
from sut.base import Backend, DeploymentOptions
from sut.fake_accelerator import (
    DataType,
    MlpAccelerator,
    accelerator_refusal,
    pack_bits,
    packed_bytes,
    read_quantized_mlp,
    unpack_bits,
)
from sut.finn_package import FinnPackage
from sut.pynq import PynqBackend, fclk_of
from sut.registry import check_backend
from tests.sut.conftest import (
    INNER_WIDTHS,
    STREAM_TYPES,
    assert_user_error,
    build_mlp,
    codec_sample,
    tiny_quantized_mlps,
)

FINN_HERE = importlib.util.find_spec("finn_plus_driver") is not None

REF = "sut.pynq:PynqBackend"
PREFIX = "mlppynq"


@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory) -> dict[str, Path]:
    return tiny_quantized_mlps(tmp_path_factory.mktemp("pynq_models"), PREFIX)


# ---- the stand-in accelerator's stream codec --------------------------------------------------------

def reference_pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Per vector: a Python int with element i at bit i*bits, written little-endian (independent of numpy's
    bit routines)."""
    flat = values.reshape(-1, values.shape[-1])
    nbytes = (values.shape[-1] * bits + 7) // 8
    rows = []
    for vec in flat:
        word = 0
        for i, v in enumerate(vec.tolist()):
            word |= (int(v) & ((1 << bits) - 1)) << (i * bits)
        rows.append(list(word.to_bytes(nbytes, "little")))
    return np.array(rows, np.uint8).reshape(*values.shape[:-1], nbytes)


@pytest.mark.parametrize("name", STREAM_TYPES)
@pytest.mark.parametrize("inner", INNER_WIDTHS)
def test_packing_matches_bit_by_bit_reference_and_round_trips(name, inner):
    dtype, values = codec_sample(name, inner)
    packed = pack_bits(values, dtype)
    assert packed.dtype == np.uint8 and packed.shape == (3, 4, packed_bytes(inner, dtype.bits))
    np.testing.assert_array_equal(packed, reference_pack(values, dtype.bits))
    np.testing.assert_array_equal(unpack_bits(packed, dtype, inner), values)


def test_packing_refuses_values_outside_the_type():
    with pytest.raises(ValueError):
        pack_bits(np.array([4]), DataType.parse("UINT2"))
    with pytest.raises(ValueError):
        pack_bits(np.array([-3]), DataType.parse("INT2"))
    with pytest.raises(ConfigError):
        DataType.parse("FLOAT7")




# ---- FINN deployment packages ---------------------------------------------------------------------------

#: the io_shape_dict FINN generates for its MNIST TFC networks (UINT8 image in, folded 16 x 49; UINT8 label out)
TFC_DRIVER_PY = """
import argparse
from qonnx.core.datatype import DataType
from driver_base import FINNExampleOverlay

# dictionary describing the I/O of the FINN-generated accelerator
io_shape_dict = {
    # FINN DataType for input and output tensors
    "idt" : [DataType['UINT8']],
    "odt" : [DataType['UINT8']],
    # shapes for input and output tensors (NHWC layout)
    "ishape_normal" : [(1, 784)],
    "oshape_normal" : [(1, 1)],
    # folded / packed shapes below depend on idt/odt and input/output
    # PE/SIMD parallelization settings -- these are calculated by the
    # FINN compiler.
    "ishape_folded" : [(1, 16, 49)],
    "oshape_folded" : [(1, 1, 1)],
    "ishape_packed" : [(1, 16, 49)],
    "oshape_packed" : [(1, 1, 1)],
    "input_dma_name" : ['idma0'],
    "output_dma_name" : ['odma0'],
    "number_of_external_weights": 0,
    "num_inputs" : 1,
    "num_outputs" : 1,
}

if __name__ == "__main__":
    raise SystemExit("not run by mlperf-ext")
"""


def _deployment(tmp_path: Path, io: str | dict | None = TFC_DRIVER_PY, hwh: bool = True) -> Path:
    """FINN's deployment layout: bitfile/finn-accel.{bit,hwh}, driver/driver.py (or io_shape_dict.json)."""
    root = tmp_path / "deploy"
    (root / "bitfile").mkdir(parents=True, exist_ok=True)
    (root / "bitfile" / "finn-accel.bit").write_bytes(b"not a real bitstream")
    if hwh:
        (root / "bitfile" / "finn-accel.hwh").write_text("<EDKSYSTEM/>")
    if isinstance(io, str):
        (root / "driver").mkdir(exist_ok=True)
        (root / "driver" / "driver.py").write_text(io)
    elif isinstance(io, dict):
        (root / "io_shape_dict.json").write_text(json.dumps(io))
    return root


def test_io_shape_dict_is_read_from_finns_driver_py_without_running_it(tmp_path):
    root = _deployment(tmp_path)
    for path in (root, root / "bitfile" / "finn-accel.bit", root / "driver" / "driver.py"):
        pkg = FinnPackage.read(path)
        assert pkg.bitfile == root / "bitfile" / "finn-accel.bit" and pkg.hwh.suffix == ".hwh"
        assert pkg.io_source == root / "driver" / "driver.py"
        assert (pkg.idt, pkg.odt) == ("UINT8", "UINT8") and pkg.sample_shape == (784,)
        assert pkg.shapes["ishape_folded"] == (1, 16, 49) and pkg.platform == "zynq-iodma"
        assert pkg.input_scale == 1.0 and pkg.label_count == 256
    info = PynqBackend.inspect_model(root)
    assert info.input.shape == (None, 784) and info.input.dtype == "float32"


def test_io_shape_dict_json_with_this_projects_keys(tmp_path):
    io = {"idt": ["DataType['UINT8']"], "odt": ["UINT4"], "ishape_normal": [[1, 784]], "oshape_normal": [[1, 1]],
          "ishape_folded": [[1, 49, 16]], "oshape_folded": [[1, 1, 1]], "ishape_packed": [[1, 49, 16]],
          "oshape_packed": [[1, 1, 1]], "input_scale": 1 / 255, "classes": 10, "max_batch": 512}
    pkg = FinnPackage.read(_deployment(tmp_path, io))
    assert pkg.odt == "UINT4" and pkg.label_count == 10 and pkg.max_batch == 512
    assert pkg.describe()["idt"] == ["UINT8"] and pkg.describe()["ishape_folded"] == [[1, 49, 16]]


@pytest.mark.parametrize("change, needle", [
    ({"ishape_folded": [[1, 16, 50]]}, "does not hold"),
    ({"ishape_packed": [[1, 16, 7]]}, "pack to"),
    ({"idt": ["FLOAT8"]}, "not a stream type"),
    ({"odt": ["INT8"]}, "label"),
    ({"oshape_normal": [[1, 10]], "oshape_folded": [[1, 1, 10]], "oshape_packed": [[1, 1, 10]]}, "label"),
    ({"idt": ["UINT8", "UINT8"]}, "one of each"),
    ({"ishape_normal": [[2, 392]]}, "batch axis 1"),
    ({"platform": "versal"}, "platform"),
    ({"max_batch": 0}, "max_batch"),
    ({"input_scale": -1}, "input_scale"),
])
def test_a_bad_io_shape_dict_is_one_line(tmp_path, change, needle):
    io = {"idt": ["UINT8"], "odt": ["UINT8"], "ishape_normal": [[1, 784]], "oshape_normal": [[1, 1]],
          "ishape_folded": [[1, 16, 49]], "oshape_folded": [[1, 1, 1]], "ishape_packed": [[1, 16, 49]],
          "oshape_packed": [[1, 1, 1]], **change}
    with pytest.raises(ModelError) as err:
        FinnPackage.read(_deployment(tmp_path, io))
    assert needle in assert_user_error(err.value)


def test_a_finn_examples_bitfile_is_known_by_its_name(tmp_path):
    root = _deployment(tmp_path, io=None)
    bit = root / "bitfile" / "finn-accel.bit"
    named = bit.rename(bit.with_name("tfc-w1a1.bit"))
    bit.with_suffix(".hwh").rename(named.with_suffix(".hwh"))
    pkg = FinnPackage.read(named)
    assert str(pkg.io_source) == "finn-examples:tfc-w1a1" and pkg.shapes["ishape_folded"] == (1, 16, 49)
    assert pkg.input_scale == pytest.approx(1 / 255) and pkg.label_count == 10


def test_a_missing_bitfile_hwh_or_io_shape_dict_is_one_line(tmp_path):
    with pytest.raises(ModelError) as err:
        FinnPackage.read(tmp_path / "nowhere")
    assert "does not exist" in assert_user_error(err.value)
    with pytest.raises(ModelError) as err:
        FinnPackage.read(_deployment(tmp_path / "a", hwh=False))
    assert ".hwh" in assert_user_error(err.value)
    with pytest.raises(ModelError) as err:
        FinnPackage.read(_deployment(tmp_path / "b", io=None))
    assert "no io_shape_dict" in assert_user_error(err.value)
    empty = tmp_path / "c"
    empty.mkdir()
    with pytest.raises(ModelError) as err:
        FinnPackage.read(empty)
    assert "one bitstream" in assert_user_error(err.value)
    with pytest.raises(ModelError) as err:
        FinnPackage.read(_deployment(tmp_path / "d", io="x = 1\n"))
    assert "assigns no io_shape_dict" in assert_user_error(err.value)

# ---- the fake's accelerator against ONNX Runtime --------------------------------------------------------

def _ort(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def test_int2_weights_decode_exactly_as_ort_dequantizes_them(zoo_models):
    model = onnx.load(str(zoo_models["int2"]))
    inits = {t.name: t for t in model.graph.initializer}
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    layers = read_quantized_mlp(zoo_models["int2"])
    assert len(dqs) == len(layers) == 4
    for node, layer in zip(dqs, layers, strict=True):
        graph = helper.make_graph([node], "dq", [], [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT,
                                                                                   None)],
                                  [inits[node.input[0]], inits[node.input[1]]])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 25)])
        m.ir_version = 11
        np.testing.assert_array_equal(_ort(m, {}), layer.dequantized())  # bit for bit
        assert set(np.unique(layer.codes)) <= {-1, 0, 1} and layer.weight_bits == 2


def test_int4_weights_decode_exactly_as_ort_matmulnbits_uses_them(zoo_models):
    model = onnx.load(str(zoo_models["int4"]))
    inits = {t.name: t for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    layers = read_quantized_mlp(zoo_models["int4"])
    assert len(nodes) == len(layers) == 4
    for node, layer in zip(nodes, layers, strict=True):
        k = layer.in_features
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        probe = helper.make_node("MatMulNBits", ["A", node.input[1], node.input[2]], ["Y"], domain="com.microsoft",
                                 **attrs)
        graph = helper.make_graph([probe], "nbits", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [k, k])],
                                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                                  [inits[node.input[1]], inits[node.input[2]]])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        m.ir_version = 8
        # identity @ W: ORT's own dequantized weights, transposed
        np.testing.assert_array_equal(_ort(m, {"A": np.eye(k, dtype=np.float32)}), layer.dequantized().T)
        assert layer.codes.min() >= -8 and layer.codes.max() <= 7 and layer.block_size == 32




# ---- the backend and its refusals -----------------------------------------------------------------------

def test_backend_satisfies_the_protocol_without_its_runtime():
    assert isinstance(PynqBackend(), Backend)
    assert check_backend(REF) is PynqBackend  # no runtime_module: pynq lives in its own environment


def _info(path: Path):
    return PynqBackend.inspect_model(path)


@pytest.mark.parametrize("options, needle", [
    (DeploymentOptions(device="fake", streams=2), "one stream"),
    (DeploymentOptions(device="fake", threads=2), "no thread setting"),
    (DeploymentOptions(device="fake", operating_mode="fclk-100"), "no operating mode"),
    (DeploymentOptions(device="fake", exec_precision="int8"), "cannot execute"),
    (DeploymentOptions(device="fpga"), "runs a FINN deployment"),
])
def test_supports_refuses_what_an_accelerator_cannot_do(zoo_models, options, needle):
    reason = PynqBackend.supports(_info(zoo_models["int2"]), options)
    assert reason and needle in reason and "fix:" in reason


def test_fake_refuses_a_float_model_and_unknown_devices(tmp_path):
    fp32 = build_mlp(tmp_path / "fp32.onnx", dims=(784, 16, 10)).path
    reason = PynqBackend.supports(_info(fp32), DeploymentOptions(device="fake"))
    assert reason and "cannot model" in reason and accelerator_refusal(fp32)
    with pytest.raises(ConfigError) as err:
        PynqBackend.check_device("gpu")
    assert "fake" in assert_user_error(err.value)
    assert fclk_of("fclk-187.5") == 187.5 and fclk_of("LATENCY") is None


@pytest.mark.skipif(FINN_HERE, reason="finn-plus-driver is installed here: the refusal is for hosts without it")
@pytest.mark.parametrize("device", ["fpga", "fake"])
def test_without_the_finn_environment_the_error_names_the_extra_and_the_env(zoo_models, device):
    with pytest.raises(BackendUnavailable) as err:
        PynqBackend.check_device(device)
    msg = assert_user_error(err.value)
    assert "mlperf-ext[pynq]" in msg and "make finn-env" in msg and "numpy<2" in msg
    with pytest.raises(BackendUnavailable):
        PynqBackend().load(zoo_models["int2"], DeploymentOptions(device="fake", max_batch=4))


@pytest.mark.skipif(FINN_HERE, reason="finn-plus-driver is installed here: the refusal is for hosts without it")
def test_the_validator_reads_a_deployment_with_the_backends_own_inspector(tmp_path):
    """A .bit is no ONNX model: validation must reach the backend's refusal (no FINN env), not an ONNX error."""
    from mlperf_ext.config import RunPoint
    from tiers.runner.validate import PointValidator

    root = _deployment(tmp_path)
    point = RunPoint(model=str(root / "bitfile" / "finn-accel.bit"), dataset="mnist", backend="pynq", device="fpga",
                     scenario="Offline")
    with pytest.raises(BackendUnavailable, match=r"mlperf-ext\[pynq\]"):
        PointValidator().plan(point)


def test_mlp_accelerator_reads_both_zoo_formats(zoo_models):
    int2, int4 = MlpAccelerator.from_onnx(zoo_models["int2"]), MlpAccelerator.from_onnx(zoo_models["int4"])
    assert int2.precision() == "int2" and int4.precision() == "int4"
    assert int2.in_features == int4.in_features == 784 and int2.classes == int4.classes == 10
