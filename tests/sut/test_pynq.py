"""PynqBackend, FinnDriver and FakeOverlay.

What runs here for real: the packing (against an independent per-element bit manipulation and a FINN
docstring example), the overlay metadata, the driver's stages and DMA calls against `FakeOverlay` on a tiny
zoo MLP family (INT2 and INT4) with top-1 equal to ONNX Runtime on all 1000 held-out samples, the compute
boundary (which calls a timed step makes, seen in the fake's event log), the refusals, the `fpga` glue
against a FakePynqBoard (the modules a board's pynq presents), and the real CLI in all four scenarios with `--device fake`.
Tests marked `fpga` need a PYNQ board and skip with the reason found on this host.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mlperf_ext.datasets import open_dataset
from mlperf_ext.errors import BackendUnavailable, ConfigError, DatasetError, ModelError
from mlperf_ext.zoo import registry
from mlperf_ext.zoo.evaluate import ort_logits
from mlperf_ext.zoo.metadata import read_metadata
from mlperf_ext.zoo.mlp import MlpFamily, MlpRecipe, register
from sut.base import Backend, DeploymentOptions
from sut.fake_overlay import FakeOverlay, MlpAccelerator, mlp_refusal, read_quantized_mlp
from sut.finn_driver import DataType, FinnDriver, OverlayMetadata, pack_bits, packed_bytes, unpack_bits
from sut.pynq import SIMULATED_DEVICE, PynqBackend, board_refusal, fclk_of
from sut.registry import check_backend
from tests.sut.conftest import assert_user_error, build_mlp

REF = "sut.pynq:PynqBackend"
PREFIX = "mlppynq"
TINY = MlpRecipe(widths=(64, 32), epochs=2, batch_size=64, finetune_epochs=1, qat_epochs=1)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory) -> dict[str, Path]:
    """The tiny MLP family's INT2 and INT4 variants, built by the zoo's own recipes (a few seconds)."""
    register(MlpFamily(TINY, prefix=PREFIX))
    try:
        out = tmp_path_factory.mktemp("pynq_models")
        names = [f"{PREFIX}-w64-int2", f"{PREFIX}-w64-int4"]
        int2, int4 = registry.build(names, out)
        return {"int2": int2, "int4": int4}
    finally:
        registry.unregister_family(PREFIX)


@pytest.fixture(scope="module")
def held_out():
    ds = open_dataset("mnist")
    return ds.samples, ds.labels


# ---- packing ---------------------------------------------------------------------------------------------

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


@pytest.mark.parametrize("name", ["BINARY", "UINT2", "UINT4", "UINT8", "INT2", "INT4", "INT8", "UINT3", "UINT12"])
@pytest.mark.parametrize("inner", [1, 5, 16])
def test_packing_matches_bit_by_bit_reference_and_round_trips(name, inner):
    dtype = DataType.parse(name)
    rng = np.random.default_rng(dtype.bits * 100 + inner)
    values = rng.integers(dtype.min, dtype.max + 1, size=(3, 4, inner))
    packed = pack_bits(values, dtype)
    assert packed.dtype == np.uint8 and packed.shape == (3, 4, packed_bytes(inner, dtype.bits))
    np.testing.assert_array_equal(packed, reference_pack(values, dtype.bits))
    np.testing.assert_array_equal(unpack_bits(packed, dtype, inner), values)


def test_packing_is_finns_driver_layout():
    # finn/util/data_packing.py: pack_innermost_dim_as_hex_string([[1, 3], [3, 1]], UINT2, 8) gives "0x07", "0x0d"
    # without reverse_inner; the driver packs with reverse_inner (and reverse_endian), which swaps them.
    np.testing.assert_array_equal(pack_bits(np.array([[1, 3], [3, 1]]), DataType.parse("UINT2")), [[0x0D], [0x07]])
    # two bytes: reverse_endian puts element 0's bits in the first byte
    np.testing.assert_array_equal(pack_bits(np.array([0xA, 0xB, 0xC]), DataType.parse("UINT4")), [0xBA, 0x0C])


def test_packing_refuses_values_outside_the_type():
    with pytest.raises(ValueError):
        pack_bits(np.array([4]), DataType.parse("UINT2"))
    with pytest.raises(ValueError):
        pack_bits(np.array([-3]), DataType.parse("INT2"))
    with pytest.raises(ConfigError):
        DataType.parse("FLOAT7")


# ---- overlay metadata -----------------------------------------------------------------------------------

def _overlay_dir(tmp_path: Path, meta: OverlayMetadata, **changes) -> Path:
    d = tmp_path / "overlay"
    d.mkdir(exist_ok=True)
    data = {**meta.to_dict(), "bitfile": "accel.bit", **changes}
    (d / "overlay.json").write_text(json.dumps(data))
    (d / "accel.bit").write_bytes(b"not a real bitstream")
    (d / "accel.hwh").write_text("<hwh/>")
    return d


def test_metadata_round_trips_and_is_found_from_dir_bit_or_json(zoo_models, tmp_path):
    meta = FakeOverlay(zoo_models["int2"]).metadata
    assert OverlayMetadata.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
    assert meta.ishape_packed == (49, 16) and meta.input_bytes == 784  # UINT8 in words of 16 pixels
    assert meta.odt == "UINT4" and meta.output_bytes == 1  # 10 classes: a 4-bit label padded to a byte
    d = _overlay_dir(tmp_path, meta)
    for path in (d, d / "accel.bit", d / "overlay.json"):
        found, file = OverlayMetadata.read(path)
        assert file == d / "overlay.json" and found.bitfile == "accel.bit"
        assert found.bitfile_path(file) == d / "accel.bit"


@pytest.mark.parametrize("change, needle", [
    ({"ishape_folded": [50, 16]}, "does not hold"),
    ({"odt": "UINT3"}, "cannot carry class indices"),
    ({"idt": "FLOAT8"}, "unknown accelerator datatype"),
    ({"max_batch": 0}, "max_batch"),
    ({"colour": "red"}, "unknown fields"),
    ({"output": "logits"}, "label"),
])
def test_bad_metadata_is_one_line(zoo_models, tmp_path, change, needle):
    meta = FakeOverlay(zoo_models["int2"]).metadata
    d = _overlay_dir(tmp_path, meta, **change)
    with pytest.raises(ModelError) as err:
        OverlayMetadata.read(d)
    assert needle in assert_user_error(err.value)


def test_missing_metadata_or_hwh_is_refused(zoo_models, tmp_path):
    meta = FakeOverlay(zoo_models["int2"]).metadata
    with pytest.raises(ModelError) as err:
        OverlayMetadata.read(tmp_path)
    assert "overlay.json" in assert_user_error(err.value)
    d = _overlay_dir(tmp_path, meta)
    (d / "accel.hwh").unlink()
    found, file = OverlayMetadata.read(d)
    with pytest.raises(ModelError) as err:
        found.bitfile_path(file)
    assert ".hwh" in assert_user_error(err.value)


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


@pytest.mark.parametrize("precision", ["int2", "int4"])
def test_fake_overlay_top1_equals_ort_on_the_whole_held_out_split(zoo_models, held_out, precision):
    """Through the whole driver (quantize, fold, pack, buffers, DMA calls, unpack) in jobs of 250."""
    x, y = held_out
    assert len(x) == 1000
    overlay = FakeOverlay(zoo_models[precision])
    driver = FinnDriver(overlay, overlay.allocate, overlay.metadata, batch_size=250)
    labels = np.concatenate([driver.execute(x[i:i + 250]) for i in range(0, len(x), 250)])
    ref = ort_logits(zoo_models[precision], x)
    mismatches = int((labels != ref.argmax(1)).sum())
    logits = overlay.accelerator.logits(np.rint(x.astype(np.float64) * 255))
    diff = float(np.abs(logits - ref).max())
    print(f"{precision}: {len(x)} held-out samples, top-1 mismatches vs ORT {mismatches}, max |logit diff| {diff:.3g}")
    assert mismatches == 0
    assert diff < 1e-4  # float32 rounding of the same arithmetic, not a different model
    assert overlay.jobs == 4
    meta = read_metadata(zoo_models[precision])
    assert float((labels == y).mean()) == meta["accuracy"]  # the zoo's own ORT-measured accuracy


# ---- the compute boundary -------------------------------------------------------------------------------

class RecordingClock:
    """A clock whose every reading is an event in the fake overlay's log."""

    def __init__(self, events: list[str]):
        self.events = events
        self.now = 0

    def __call__(self) -> int:
        self.now += 1000
        self.events.append("clock")
        return self.now


def _count(obj, name: str, counts: dict) -> None:
    inner = getattr(obj, name)

    def counted(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return inner(*args, **kwargs)

    setattr(obj, name, counted)


def test_a_compute_step_times_the_dma_run_only(zoo_models, held_out):
    x = held_out[0][:8]
    backend = PynqBackend()
    backend.load(zoo_models["int2"], DeploymentOptions(device="fake", max_batch=8))
    driver, overlay = backend._driver, backend._overlay
    driver._clock = RecordingClock(overlay.events)  # the driver's clock, read where the interval starts and ends
    counts: dict = {}
    for stage in ("quantize_input", "fold_input", "pack_input", "copy_input_data_to_device",
                  "copy_output_data_from_device", "unpack_output"):
        _count(driver, stage, counts)
    step = backend.compute_step(x)
    staged = dict(counts)
    assert staged == {"quantize_input": 1, "fold_input": 1, "pack_input": 1, "copy_input_data_to_device": 1}
    overlay.events.clear()
    for _ in range(3):
        assert step() > 0
    assert counts == staged  # no packing or copying in any timed run
    timed = overlay.events[overlay.events.index("clock") + 1:]
    timed = timed[: timed.index("clock")]
    ibuf, obuf = driver.ibuf.label, driver.obuf.label
    assert timed == ["accel.write(0x1c, 8)", "dma.recv.transfer(8)", f"{ibuf}.flush", "dma.send.transfer(6272)",
                     "dma.send.wait", "accel.job(8)", f"{obuf}.invalidate", "dma.recv.wait"]
    assert overlay.events.count("accel.job(8)") == 3 and overlay.events.count("clock") == 6
    # the system path runs every stage, and keeps FINN's stage timings
    labels = backend.infer(x).argmax(1)
    assert counts["pack_input"] == 2 and counts["copy_output_data_from_device"] == 1
    assert set(driver.stage_seconds) == {"quantize_input", "fold_input", "pack_input", "copy_input_data_to_device",
                                         "runtime", "copy_output_data_from_device", "unpack_output", "unfold_output"}
    np.testing.assert_array_equal(labels, ort_logits(zoo_models["int2"], x).argmax(1))


def test_a_short_batch_moves_only_its_bytes(zoo_models, held_out):
    overlay = FakeOverlay(zoo_models["int4"])
    driver = FinnDriver(overlay, overlay.allocate, overlay.metadata, batch_size=16)
    labels = driver.execute(held_out[0][:5])
    assert labels.shape == (5,) and "dma.send.transfer(3920)" in overlay.events and "dma.recv.transfer(5)" in overlay.events


def test_the_fake_dma_fails_where_a_board_would_hang(zoo_models, held_out):
    overlay = FakeOverlay(zoo_models["int2"])
    driver = FinnDriver(overlay, overlay.allocate, overlay.metadata, batch_size=4)
    driver.stage(held_out[0][:4])
    with pytest.raises(RuntimeError, match="hang"):
        overlay.axi_dma_0.recvchannel.wait()  # nothing transferred
    overlay.finn_accel_0.write(0x1C, 3)  # the job says 3 samples, 4 are sent
    overlay.axi_dma_0.recvchannel.transfer(driver.obuf, nbytes=4)
    overlay.axi_dma_0.sendchannel.transfer(driver.ibuf)
    with pytest.raises(RuntimeError, match="hang"):
        overlay.axi_dma_0.recvchannel.wait()
    with pytest.raises(RuntimeError, match="not idle"):
        overlay.axi_dma_0.recvchannel.transfer(driver.obuf)
    with pytest.raises(RuntimeError, match="allocate"):
        FakeOverlay(zoo_models["int2"]).axi_dma_0.sendchannel.transfer(np.zeros(8, np.uint8))


def test_buffers_keep_host_and_device_memory_apart(zoo_models):
    overlay = FakeOverlay(zoo_models["int2"])
    buf = overlay.allocate(shape=(4,), dtype=np.uint8)
    buf[:] = 7
    assert not buf.device_memory.any()  # not flushed: the device sees the old bytes
    buf.flush()
    assert (buf.device_memory == 7).all()
    buf.device_memory[:] = 9
    assert (np.asarray(buf) == 7).all()  # not invalidated: the CPU sees its cached bytes
    buf.invalidate()
    assert (np.asarray(buf) == 9).all()


# ---- the backend and its refusals -----------------------------------------------------------------------

def test_backend_satisfies_the_protocol_and_loads_without_pynq():
    assert isinstance(PynqBackend(), Backend)
    assert check_backend(REF) is PynqBackend  # no runtime_module: the fake needs no pynq


def test_fake_backend_describes_simulated_timing(zoo_models, held_out):
    backend = PynqBackend()
    backend.load(zoo_models["int4"], DeploymentOptions(device="fake", max_batch=32))
    desc = backend.describe()
    assert desc.device == SIMULATED_DEVICE and "not FPGA performance" in desc.device
    assert desc.runtime == "fake-overlay" and "simulated" in desc.settings["timing"] and desc.notes
    assert desc.precision.startswith("int4 weights") and desc.compute_dtype == ""
    assert "no PMBus" in desc.settings["power_rails"]
    assert desc.settings["ibuf_bytes"] == 32 * 784 and desc.settings["obuf_bytes"] == 32
    assert backend.input_spec().shape == (None, 784)
    scores = backend.infer(held_out[0][:32])
    assert scores.shape == (32, 10) and set(np.unique(scores)) == {0.0, 1.0} and (scores.sum(1) == 1).all()
    backend.close()


def test_batch_beyond_the_overlays_max_batch_is_refused(zoo_models):
    with pytest.raises(ConfigError) as err:
        PynqBackend().load(zoo_models["int2"], DeploymentOptions(device="fake", max_batch=4096))
    assert "max_batch" in assert_user_error(err.value)


def test_input_off_the_accelerators_grid_is_refused(zoo_models, held_out):
    backend = PynqBackend()
    backend.load(zoo_models["int2"], DeploymentOptions(device="fake", max_batch=2))
    with pytest.raises(DatasetError) as err:
        backend.infer(held_out[0][:2] * 0.5 + 0.001)
    assert "grid" in assert_user_error(err.value)


def _info(path: Path):
    return PynqBackend.inspect_model(path)


@pytest.mark.parametrize("options, needle", [
    (DeploymentOptions(device="fake", streams=2), "one stream"),
    (DeploymentOptions(device="fake", threads=2), "no thread setting"),
    (DeploymentOptions(device="fake", operating_mode="fclk-100"), "no operating mode"),
    (DeploymentOptions(device="fake", exec_precision="int8"), "cannot execute"),
    (DeploymentOptions(device="fpga"), "runs an overlay"),
])
def test_supports_refuses_what_an_overlay_cannot_do(zoo_models, options, needle):
    reason = PynqBackend.supports(_info(zoo_models["int2"]), options)
    assert reason and needle in reason and "fix:" in reason


def test_fake_refuses_a_float_model_and_unknown_devices(tmp_path):
    fp32 = build_mlp(tmp_path / "fp32.onnx", dims=(784, 16, 10)).path
    reason = PynqBackend.supports(_info(fp32), DeploymentOptions(device="fake"))
    assert reason and "cannot model" in reason and mlp_refusal(fp32)
    with pytest.raises(ConfigError) as err:
        PynqBackend.check_device("gpu")
    assert "fake" in assert_user_error(err.value)
    assert fclk_of("fclk-187.5") == 187.5 and fclk_of("LATENCY") is None


@pytest.mark.skipif(importlib.util.find_spec("pynq") is not None, reason="pynq is installed here")
def test_fpga_without_pynq_names_the_extra():
    with pytest.raises(BackendUnavailable) as err:
        PynqBackend.check_device("fpga")
    assert "mlperf-ext[pynq]" in assert_user_error(err.value)


# ---- the fpga glue against a FakePynqBoard (the board's pynq, not the real package) ---------------------

class FakePynqBoard:
    """The `pynq`, `pynq.ps` and `pynq.pmbus` modules as a board with a FakeOverlay on `onnx_path` presents them.

    It stands for the board, which this host lacks: the real pynq 4.0.0 installs on x86-64 (in its own venv:
    it pins numpy 1.26 and protobuf 5, which the project's stack cannot take) but finds no device there, and
    `Overlay`/`allocate` need one.
    """

    def __init__(self, onnx_path: Path, devices: list):
        pynq = types.ModuleType("pynq")
        pynq.__version__ = "fake-board"
        loaded: list = []

        def overlay(bitfile):
            loaded.append(bitfile)
            ov = FakeOverlay(onnx_path)
            pynq.allocate = ov.allocate
            return ov

        pynq.Overlay, pynq.loaded = overlay, loaded
        pynq.Device = types.SimpleNamespace(devices=devices,
                                            active_device=types.SimpleNamespace(name="fake-board"))
        ps = types.ModuleType("pynq.ps")
        ps.Clocks = types.SimpleNamespace(fclk0_mhz=100.0)
        pmbus = types.ModuleType("pynq.pmbus")
        pmbus.get_rails = lambda: {"12V": types.SimpleNamespace(power=object()), "VCCINT": object()}
        self.modules: dict[str, types.ModuleType] = {"pynq": pynq, "pynq.ps": ps, "pynq.pmbus": pmbus}


def test_fpga_path_reads_the_overlay_and_drives_the_same_driver(zoo_models, held_out, tmp_path, monkeypatch):
    meta = FakeOverlay(zoo_models["int2"]).metadata
    d = _overlay_dir(tmp_path, meta, fclk_mhz=150.0)
    modules = FakePynqBoard(zoo_models["int2"], devices=["board0"]).modules
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    backend = PynqBackend()
    backend.load(d / "accel.bit", DeploymentOptions(device="fpga", max_batch=16, operating_mode="fclk-200"))
    assert modules["pynq"].loaded == [str(d / "accel.bit")]
    desc = backend.describe()
    assert desc.device == "fpga (fake-board)" and desc.runtime == "pynq" and not desc.notes
    assert desc.settings["fclk0_mhz"] == 200.0  # the mode wins over the metadata's build clock, read back
    assert desc.settings["power_rails"] == ["12V", "VCCINT"]
    assert desc.precision.startswith("int2 weights") and "declared by the overlay" in desc.precision
    x = held_out[0][:16]
    np.testing.assert_array_equal(backend.infer(x).argmax(1), ort_logits(zoo_models["int2"], x).argmax(1))
    monkeypatch.setitem(sys.modules, "pynq", FakePynqBoard(zoo_models["int2"], devices=[]).modules["pynq"])
    with pytest.raises(ConfigError) as err:
        PynqBackend.check_device("fpga")
    assert "finds no device" in assert_user_error(err.value)


# ---- the real CLI, with the fake ------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-m", "mlperf_ext.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=PROJECT_ROOT)


def test_cli_four_scenarios_with_the_fake(zoo_models, tmp_path):
    from mlperf_ext.store import ResultsStore
    from tiers.runner import layout

    work = tmp_path / "work"
    common = ["--model", str(zoo_models["int2"]), "--dataset", "mnist", "--backend", REF, "--device", "fake",
              "--setting", "min_duration_ms=200", "--workdir", str(work)]
    for extra in (["--scenario", "Offline", "--batch", "32", "--mode", "submission"], ["--scenario", "SingleStream"],
                  ["--scenario", "MultiStream", "--batch", "8"],
                  ["--scenario", "Server", "--batch", "8", "--setting", "server_target_qps=1000",
                   "--setting", "min_duration_ms=1000"]):
        proc = _cli("run", *common, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["scenario"]: r for r in ResultsStore(layout.store_path(work)).rows()}
    assert set(rows) == {"Offline", "SingleStream", "MultiStream", "Server"}
    for scenario, row in rows.items():
        # a Server verdict is the host's tail latency against the bound: a busy host may miss it while the
        # path under test (driver, buffers, DMA calls through LoadGen) ran in full; every other one is VALID
        missed_bound = scenario == "Server" and row["status"] == "invalid" and any(
            why in (row["error"] or "") for why in ("latency", "early-stopping"))
        assert row["status"] == "ok" or missed_bound, (scenario, row.get("error"))
        assert row["callback_errors"] == 0 and row["sys_sample_count"] > 0
        assert row["runtime_device"] == SIMULATED_DEVICE and row["runtime_name"] == "fake-overlay"
        assert "simulated" in row["runtime_notes"]
        assert row["sys_throughput"] > 0 and row["compute_throughput"] > 0
    offline = rows["Offline"]
    assert offline["accuracy_total"] == 1000
    assert offline["accuracy"] == read_metadata(zoo_models["int2"])["accuracy"]  # labels equal ORT's top-1


# ---- a real board (skipped without one) -----------------------------------------------------------------

OVERLAY_ENV = "MLPERF_EXT_PYNQ_OVERLAY"  # an overlay's .bit (or directory) to test on the board


def _board_or_skip() -> None:
    if importlib.util.find_spec("pynq") is None:
        pytest.skip("pynq is not installed (pip install 'mlperf-ext[pynq]' on a PYNQ board)")
    import pynq

    reason = board_refusal(pynq)
    if reason:
        pytest.skip(reason)


@pytest.mark.fpga
def test_board_is_found_and_reports_its_rails():
    _board_or_skip()
    PynqBackend.check_device("fpga")


@pytest.mark.fpga
def test_overlay_on_the_board_runs_the_held_out_split(held_out):
    _board_or_skip()
    overlay = os.environ.get(OVERLAY_ENV)
    if not overlay:
        pytest.skip(f"no overlay to test: set {OVERLAY_ENV} to a FINN MLP overlay's .bit (overlay.json beside it)")
    x, y = held_out
    backend = PynqBackend()
    backend.load(Path(overlay), DeploymentOptions(device="fpga", max_batch=100))
    labels = np.concatenate([backend.infer(x[i:i + 100]).argmax(1) for i in range(0, len(x), 100)])
    desc = backend.describe()
    assert desc.device.startswith("fpga (") and not desc.notes
    assert float((labels == y).mean()) > 0.5  # a trained MNIST model, far above chance
    onnx_name = desc.settings["implements"].get("onnx")
    onnx_path = Path(overlay).parent / onnx_name if onnx_name else None
    if onnx_path is not None and onnx_path.is_file():
        np.testing.assert_array_equal(labels, ort_logits(onnx_path, x).argmax(1))
    step = backend.compute_step(x[:100])
    assert step() > 0
    backend.close()


def test_mlp_accelerator_reads_both_zoo_formats(zoo_models):
    int2, int4 = MlpAccelerator.from_onnx(zoo_models["int2"]), MlpAccelerator.from_onnx(zoo_models["int4"])
    assert int2.precision() == "int2" and int4.precision() == "int4"
    assert int2.in_features == int4.in_features == 784 and int2.classes == int4.classes == 10


def test_the_validator_reads_an_overlay_with_the_backends_own_inspector(tmp_path):
    """A .bit is no ONNX model: validation must reach the backend's refusal (pynq missing), not an ONNX error."""
    import importlib.util

    from mlperf_ext.config import RunPoint
    from mlperf_ext.errors import BackendUnavailable
    from tiers.runner.validate import PointValidator

    if importlib.util.find_spec("pynq") is not None:
        pytest.skip("pynq is installed: the refusal under test is for hosts without it")
    bit = tmp_path / "overlay.bit"
    bit.write_bytes(b"\0")
    point = RunPoint(model=str(bit), dataset="mnist", backend="pynq", device="fpga", scenario="Offline")
    with pytest.raises(BackendUnavailable, match=r"mlperf-ext\[pynq\]"):
        PointValidator().plan(point)
