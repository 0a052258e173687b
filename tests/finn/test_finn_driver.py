"""FINN's own runtime driver and the real `pynq`, on `FakePynqBoard` (runs in `.venv/finn`; make test runs it).

What runs here for real: `finn_plus_driver.overlays.dma.FINNDMAOverlay` 1.6.1 (unmodified) over `pynq` 4.0.0
(`Overlay` parsing the stand-in's `.hwh` with pynqmetadata, `MMIO`, `allocate`/`PynqBuffer`, `ps.Clocks`), with
only the device stood in for (`FakePynqBoard`: memory, registers, the accelerator). Checked: the board decodes
FINN's own packing byte for byte; every accelerator run happens inside FINN's `execute_on_buffers`; top-1 equals
ONNX Runtime's on all 1000 held-out samples for the INT2 and INT4 variants, and equals qonnx's execution of the
Brevitas TFC and CNV (w1a1, w2a2) QONNX models on all of them; the compute step times the DMA run only; the board
fails where hardware would hang; the CLI in all four scenarios with `--device fake` on TFC-w1a1, and CNV-w2a2 in
Offline.
Tests marked `fpga` need a PYNQ board and skip with the reason found on this host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

finn_dma = pytest.importorskip("finn_plus_driver.overlays.dma",
                               reason="FINN's driver lives in .venv/finn (numpy<2): make test runs tests/finn there")

import pynq  # noqa: E402
from finn_plus_driver.packing import finnpy_to_packed_bytearray, packed_bytearray_to_finnpy  # noqa: E402
from pynq.ps import Clocks  # noqa: E402
from qonnx.core.datatype import DataType as QonnxType  # noqa: E402

from mlperf_ext.datasets import open_dataset  # noqa: E402
from mlperf_ext.errors import DatasetError, ModelError  # noqa: E402
from mlperf_ext.zoo.evaluate import ort_logits  # noqa: E402
from mlperf_ext.zoo.metadata import read_metadata  # noqa: E402
from sut import fake_pynq_board  # noqa: E402
from sut.base import DeploymentOptions  # noqa: E402
from sut.fake_accelerator import PIXEL_SCALE, pack_bits, unpack_bits  # noqa: E402
from sut.fake_pynq_board import FakePynqBoard, build_stand_in  # noqa: E402
from sut.pynq import SIMULATED_DEVICE, PynqBackend  # noqa: E402
from tests.sut.conftest import (  # noqa: E402
    INNER_WIDTHS,
    STREAM_TYPES,
    assert_user_error,
    codec_sample,
    tiny_quantized_mlps,
)

REF = "sut.pynq:PynqBackend"
PREFIX = "mlpfinn"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory) -> dict[str, Path]:
    return tiny_quantized_mlps(tmp_path_factory.mktemp("finn_models"), PREFIX)


@pytest.fixture(scope="module")
def brevitas() -> dict[str, Path]:
    """The zoo's Brevitas TFC and CNV as QONNX (what FINN compiles), shared with the main suite's build."""
    from tests.zoo.brevitas_models import qonnx_models

    return qonnx_models()


@pytest.fixture(scope="module")
def held_out():
    ds = open_dataset("mnist")
    return ds.samples, ds.labels


@pytest.fixture
def loaded(zoo_models):
    """A backend on the stand-in board; closed (the board no longer active) after the test."""
    backends: list[PynqBackend] = []

    def load(precision: str = "int2", **options) -> PynqBackend:
        backend = PynqBackend()
        backend.load(zoo_models[precision], DeploymentOptions(device="fake", **options))
        backends.append(backend)
        return backend

    yield load
    for backend in backends:
        backend.close()


# ---- the board reads FINN's stream as FINN's driver writes it ---------------------------------------------

@pytest.mark.parametrize("name", STREAM_TYPES)
@pytest.mark.parametrize("inner", INNER_WIDTHS)
def test_the_boards_codec_is_finns_packing_byte_for_byte(name, inner):
    dtype, values = codec_sample(name, inner)
    finn = finnpy_to_packed_bytearray(values.astype(np.float32), QonnxType[name], reverse_endian=True,
                                      reverse_inner=True)
    np.testing.assert_array_equal(pack_bits(values, dtype), finn)
    np.testing.assert_array_equal(unpack_bits(finn, dtype, inner), values)
    back = packed_bytearray_to_finnpy(finn, QonnxType[name], (3, 4, inner), reverse_endian=True, reverse_inner=True)
    np.testing.assert_array_equal(back, values)


# ---- FINN's driver on the stand-in -------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["int2", "int4"])
def test_finns_driver_on_the_stand_in_equals_ort_on_the_whole_held_out_split(loaded, zoo_models, held_out,
                                                                             precision):
    x, y = held_out
    assert len(x) == 1000
    backend = loaded(precision, max_batch=250)
    assert type(backend._overlay) is finn_dma.FINNDMAOverlay  # FINN's class itself, no subclass of ours
    assert pynq.Device.active_device is backend._board
    labels = np.concatenate([backend.infer(x[i:i + 250]).argmax(1) for i in range(0, len(x), 250)])
    ref = ort_logits(zoo_models[precision], x).argmax(1)
    print(f"{precision}: top-1 mismatches vs ORT {int((labels != ref).sum())} of {len(x)}")
    np.testing.assert_array_equal(labels, ref)
    assert float((labels == y).mean()) == read_metadata(zoo_models[precision])["accuracy"]
    assert [e for e in backend._board.events if e[0] == "execute"] == [("execute", 250)] * 4


@pytest.mark.parametrize("name", ["tfc-w1a1", "tfc-w2a2", "cnv-w1a1", "cnv-w2a2"])
def test_a_brevitas_network_through_finns_driver_equals_qonnx_on_the_whole_held_out_split(brevitas, name):
    from mlperf_ext.zoo.mlp_brevitas import RECIPES, held_out_data, qonnx_logits

    topology, variant = name.split("-")
    _, _, x, y = held_out_data(topology, RECIPES[topology])
    model = brevitas[name]
    backend = PynqBackend()
    backend.load(model, DeploymentOptions(device="fake", max_batch=200))
    try:
        labels = np.concatenate([backend.infer(x[i:i + 200]).argmax(1) for i in range(0, len(x), 200)])
        assert backend.describe().precision.startswith(f"{variant} ({variant[1]}-bit weights, {variant[3]}-bit act")
    finally:
        backend.close()
    reference = qonnx_logits(model.read_bytes(), x).argmax(1)
    print(f"{name}: stand-in via FINN's driver top-1 {(labels == y).mean():.3f}, QONNX {(reference == y).mean():.3f}")
    np.testing.assert_array_equal(labels, reference)
    assert float((labels == y).mean()) == read_metadata(model)["accuracy"]


def test_every_accelerator_run_happens_inside_finns_execute_on_buffers(loaded, held_out, monkeypatch):
    """Fails if our code drives the IODMA registers itself instead of FINN's driver doing it."""
    inside = {"depth": 0, "calls": 0}
    original = finn_dma.FINNDMAOverlay.execute_on_buffers

    def spy(self, *args, **kwargs):
        inside["depth"] += 1
        inside["calls"] += 1
        try:
            return original(self, *args, **kwargs)
        finally:
            inside["depth"] -= 1

    monkeypatch.setattr(finn_dma.FINNDMAOverlay, "execute_on_buffers", spy)
    runs = []
    real_execute = FakePynqBoard._execute

    def watched(board, src, dst, count):
        runs.append(inside["depth"])
        return real_execute(board, src, dst, count)

    monkeypatch.setattr(FakePynqBoard, "_execute", watched)
    backend = loaded(max_batch=8)
    x = held_out[0]
    backend.infer(x[:8])  # a full batch: FINN's execute()
    backend.infer(x[:3])  # a short one: FINN's stages and execute_on_buffers(batch_size=3)
    step = backend.compute_step(x[:8])
    step()
    assert runs == [1, 1, 1] and inside["calls"] == 3


def test_a_compute_step_times_the_dma_run_only(loaded, held_out, monkeypatch):
    backend = loaded(max_batch=8)
    board, overlay = backend._board, backend._overlay
    counts: dict = {}
    for stage in ("fold_input", "pack_input", "copy_input_data_to_device", "copy_output_data_from_device",
                  "unpack_output"):
        inner = getattr(overlay, stage)

        def counted(*args, _inner=inner, _name=stage, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _inner(*args, **kwargs)

        monkeypatch.setattr(overlay, stage, counted)
    step = backend.compute_step(held_out[0][:8])
    staged = dict(counts)
    assert staged == {"fold_input": 1, "pack_input": 1, "copy_input_data_to_device": 1}
    board.events.clear()
    for _ in range(3):
        assert step() > 0
    assert counts == staged  # no packing or copying in any timed run
    kinds = {e[0] for e in board.events}
    assert kinds == {"read", "write", "execute"}  # registers and the run: no cache maintenance, no copies
    assert [e for e in board.events if e[0] == "execute"] == [("execute", 8)] * 3
    writes = [(e[1] & 0xFFFF, e[2]) for e in board.events if e[0] == "write"][:8]
    # FINN's order: odma0 then idma0, each address low/high, count, start
    assert [w[0] for w in writes] == [0x10, 0x14, 0x1C, 0x00] * 2 and writes[2][1] == 8


def test_a_short_batch_runs_only_its_samples(loaded, zoo_models, held_out):
    backend = loaded("int4", max_batch=16)
    x = held_out[0][:5]
    labels = backend.infer(x).argmax(1)
    np.testing.assert_array_equal(labels, ort_logits(zoo_models["int4"], x).argmax(1))
    assert ("execute", 5) in backend._board.events


def test_the_board_fails_where_hardware_would_hang(loaded):
    backend = loaded(max_batch=4)
    board, overlay = backend._board, backend._overlay
    overlay.odma0.write(0x1C, 4)
    overlay.odma0.write(0x00, 1)
    with pytest.raises(RuntimeError, match="never finish"):
        overlay.odma0.read(0x00)
    overlay.idma0.write(0x1C, 3)
    with pytest.raises(RuntimeError, match="hang"):
        overlay.idma0.write(0x00, 1)
    assert not any(e[0] == "execute" for e in board.events)


def test_buffers_keep_host_and_device_memory_apart(loaded):
    backend = loaded(max_batch=4)
    board = backend._board
    buf = pynq.allocate(shape=(4,), dtype=np.uint8)  # pynq's own allocate reaches the active (stand-in) device
    assert isinstance(buf, pynq.buffer.PynqBuffer) and buf.device is board
    buf[:] = 7
    device = board._device_bytes(buf.device_address, 4)
    assert not device.any()  # not flushed: the device sees the old bytes
    buf.flush()
    assert (device == 7).all()
    device[:] = 9
    assert (np.asarray(buf) == 7).all()  # not invalidated: the CPU sees its cached bytes
    buf.invalidate()
    assert (np.asarray(buf) == 9).all()


def test_pynqs_clocks_program_the_boards_registers(loaded):
    backend = loaded(max_batch=4)
    assert backend.describe().settings["fclk0_mhz"] == pytest.approx(100, abs=0.01)  # FINN's driver set 100 MHz
    Clocks.fclk0_mhz = 50
    assert Clocks.fclk0_mhz == pytest.approx(50, abs=0.01)
    pl0 = backend._board.registers[fake_pynq_board.CRL_APB + 0xC0]
    assert ((pl0 >> 8) & 0x3F) * ((pl0 >> 16) & 0x3F) == 30  # IOPLL 1500 MHz / 30: the divisors pynq wrote


def test_the_row_names_the_driver_its_io_shape_dict_and_simulated_timing(loaded, held_out):
    backend = loaded("int4", max_batch=32)
    desc = backend.describe()
    assert desc.device == SIMULATED_DEVICE and "not FPGA performance" in desc.device and desc.notes
    assert desc.runtime == "finn-plus-driver" and desc.version == "1.6.1"
    assert "FINNDMAOverlay" in desc.settings["driver"] and desc.settings["pynq"] == "4.0.0"
    io = desc.settings["io_shape_dict"]
    assert io["idt"] == ["UINT8"] and io["odt"] == ["UINT8"] and io["ishape_normal"] == [[1, 784]]
    assert desc.precision.startswith("int4 weights") and "UINT8 in, UINT8 out" in desc.precision
    assert desc.compute_dtype == "" and "simulated" in desc.settings["timing"]
    assert desc.settings["stand_in"]["stood_in"].startswith("pynq Device")
    assert desc.settings["ibuf_bytes"] == 32 * 784 and desc.settings["obuf_bytes"] == 32
    scores = backend.infer(held_out[0][:32])
    assert scores.shape == (32, 10) and set(np.unique(scores)) == {0.0, 1.0} and (scores.sum(1) == 1).all()


def test_a_batch_beyond_the_buffers_and_input_off_the_grid_are_refused(loaded, zoo_models, held_out):
    with pytest.raises(ModelError) as err:
        PynqBackend().load(zoo_models["int2"], DeploymentOptions(device="fake", max_batch=1_000_000))
    assert "max_batch" in assert_user_error(err.value)
    assert not isinstance(getattr(pynq.Device, "_active_device", None), FakePynqBoard)  # refused before any board
    backend = loaded(max_batch=2)
    with pytest.raises(DatasetError) as err:
        backend.infer(held_out[0][:2] * 0.5 + 0.001)
    assert "grid" in assert_user_error(err.value)


def test_the_fpga_path_loads_a_deployment_folder_with_the_same_driver(zoo_models, held_out, tmp_path, monkeypatch):
    """--device fpga on a FINN-shaped deployment, the stand-in as the device PYNQ drives (its probe stubbed: the
    stand-in is not on PYNQ's probe list)."""
    bit = build_stand_in(zoo_models["int2"], tmp_path / "deploy", PIXEL_SCALE)
    board = FakePynqBoard().activate()
    monkeypatch.setattr("sut.pynq.board_refusal", lambda _pynq: None)
    backend = PynqBackend()
    try:
        backend.load(bit.parent.parent, DeploymentOptions(device="fpga", max_batch=16, operating_mode="fclk-150"))
        desc = backend.describe()
        assert desc.device == f"fpga ({board.name})" and not desc.notes
        assert desc.settings["fclk0_mhz"] == pytest.approx(150, abs=0.01)  # the mode, read back from the registers
        x = held_out[0][:16]
        np.testing.assert_array_equal(backend.infer(x).argmax(1), ort_logits(zoo_models["int2"], x).argmax(1))
    finally:
        backend.close()
        board.deactivate()


# ---- the real CLI, with the stand-in --------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run([sys.executable, "-m", "mlperf_ext.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=PROJECT_ROOT)


def test_a_batch_beyond_the_buffers_is_refused_before_anything_runs(zoo_models, tmp_path):
    work = tmp_path / "work"
    proc = _cli("run", "--model", str(zoo_models["int2"]), "--dataset", "mnist", "--backend", REF, "--device", "fake",
                "--scenario", "Offline", "--batch", "1000000", "--workdir", str(work))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "max_batch" in lines[0] and "fix:" in lines[0]
    assert not (work / "runs").exists() or not any((work / "runs").iterdir())  # nothing half-written


def test_cli_four_scenarios_on_the_stand_in(brevitas, tmp_path):
    from mlperf_ext.store import ResultsStore
    from tiers.runner import layout

    work = tmp_path / "work"
    common = ["--model", str(brevitas["tfc-w1a1"]), "--dataset", "mnist", "--backend", REF, "--device", "fake",
              "--setting", "min_duration_ms=200", "--workdir", str(work)]
    # Server asks for half of what a loaded 2-core CI host sustained (482/s), over enough queries (about 500)
    # for LoadGen's early-stopping estimate at p99
    for extra in (["--scenario", "Offline", "--batch", "32", "--mode", "submission"],
                  ["--scenario", "SingleStream", "--mode", "submission"],
                  ["--scenario", "MultiStream", "--batch", "8"],
                  ["--scenario", "Server", "--batch", "8", "--setting", "server_target_qps=250",
                   "--setting", "min_duration_ms=2000"]):
        proc = _cli("run", *common, *extra)
        # exit 3 means no point ended ok: allowed only for a Server point that missed its bound, checked below
        allowed = (0, 3) if "Server" in extra else (0,)
        assert proc.returncode in allowed, proc.stdout + proc.stderr
    rows = {r["scenario"]: r for r in ResultsStore(layout.store_path(work)).rows()}
    assert set(rows) == {"Offline", "SingleStream", "MultiStream", "Server"}
    for scenario, row in rows.items():
        # a Server verdict is the host's tail latency against the bound: a busy host may miss it while the
        # path under test (FINN's driver through LoadGen) ran in full; every other one is VALID
        missed_bound = scenario == "Server" and row["status"] == "invalid" and any(
            why in (row["error"] or "") for why in ("latency", "early-stopping"))
        assert row["status"] == "ok" or missed_bound, (scenario, row.get("error"))
        assert row["callback_errors"] == 0 and row["sys_sample_count"] > 0
        assert row["runtime_device"] == SIMULATED_DEVICE and row["runtime_name"] == "finn-plus-driver"
        assert "simulated" in row["runtime_notes"]
        assert row["sys_throughput"] > 0 and row["compute_throughput"] > 0
    accuracy = read_metadata(brevitas["tfc-w1a1"])["accuracy"]
    for scenario in ("Offline", "SingleStream"):
        assert rows[scenario]["accuracy_total"] == 1000
        assert rows[scenario]["accuracy"] == accuracy  # labels equal qonnx's execution of the QONNX model
    # the CNV too, on its 32x32 input, in Offline with accuracy
    cnv = ["--model", str(brevitas["cnv-w2a2"]), "--dataset", "mnist32", "--backend", REF, "--device", "fake",
           "--scenario", "Offline", "--batch", "32", "--mode", "submission", "--setting", "min_duration_ms=200",
           "--workdir", str(tmp_path / "cnv")]
    proc = _cli("run", *cnv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = ResultsStore(layout.store_path(tmp_path / "cnv")).rows()
    assert row["status"] == "ok" and row["accuracy"] == read_metadata(brevitas["cnv-w2a2"])["accuracy"]
    assert row["runtime_precision"].startswith("w2a2 (2-bit weights, 2-bit activations; QONNX)")


# ---- a real board (skipped without one) -----------------------------------------------------------------

DEPLOYMENT_ENV = "MLPERF_EXT_FINN_DEPLOYMENT"  # a FINN MNIST deployment folder to test on the board


def _board_or_skip() -> None:
    from sut.pynq import board_refusal

    reason = board_refusal(pynq)
    if reason:
        pytest.skip(reason)


@pytest.mark.fpga
def test_board_is_found():
    _board_or_skip()
    PynqBackend.check_device("fpga")


@pytest.mark.fpga
def test_a_finn_deployment_on_the_board_runs_the_held_out_split(held_out):
    _board_or_skip()
    deployment = os.environ.get(DEPLOYMENT_ENV)
    if not deployment:
        pytest.skip(f"no deployment to test: set {DEPLOYMENT_ENV} to a FINN MNIST deployment folder")
    x, y = held_out
    backend = PynqBackend()
    backend.load(Path(deployment), DeploymentOptions(device="fpga", max_batch=100))
    labels = np.concatenate([backend.infer(x[i:i + 100]).argmax(1) for i in range(0, len(x), 100)])
    assert float((labels == y).mean()) > 0.5  # a trained MNIST model, far above chance
    assert backend.compute_step(x[:100])() > 0
    backend.close()
