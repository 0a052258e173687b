"""PYNQ backend: a FINN accelerator on an FPGA, driven by FINN's own runtime driver through the real `pynq`.

The driver is `finn_plus_driver.overlays.dma.FINNDMAOverlay` (PyPI `finn-plus-driver` 1.6.1, the maintained
fork's runtime driver, a subclass of `pynq.Overlay`): it folds, packs and copies a batch, programs the
accelerator's IODMA cores and polls them, and unpacks the result. `finn-plus-driver` is chosen over
`finn-examples` because `finn-examples` (0.0.7.post0, 2024) downloads its bitstreams while it installs and does
not install off a board, and it is unmaintained; `finn-plus-driver` installs anywhere and carries the same
`zynq-iodma` protocol. Both it and `pynq` 4.0 pin numpy < 2, so the extra `pynq` lives in its own environment
(`make finn-env`: `.venv/finn`), as the report's Chromium does; `mlperf-ext` runs whole there.

Devices (nothing falls back from one to the other):
- `fpga`: a board PYNQ finds. The model is a FINN deployment (`sut.finn_package`: its folder, its `.bit`, or
  its io_shape_dict file); the `.hwh` sits beside the `.bit`.
- `fake`: `sut.fake_pynq_board.FakePynqBoard`, a pynq Device standing in for the board under the same pynq and
  the same FINN driver, on the network it is "programmed" with: a QONNX model (the zoo's Brevitas TFC,
  `tfc-w1a1-qonnx.onnx`) or a zoo INT2/INT4 MLP (a FINN-shaped deployment is
  written for it, `build_stand_in`). Its timing is the host running numpy, labelled simulated in the row.

Paths (docs/architecture.md, "Definitions"):
- system, `infer`: host floats -> the input codes (x / input_scale, checked on the grid: this project's glue),
  then FINN's `execute` (fold, pack, copy in, run, copy out, unpack). A short batch runs the same driver stages
  with `execute_on_buffers(batch_size=n)`, the driver's own way to run fewer samples than its buffers hold. The
  labels come back as one-hot float32 scores (the harness reduces scores to top-1).
- compute, `compute_step`: the batch is folded, packed and copied in once; each step times FINN's
  `execute_on_buffers` (IODMA programming, the run, the poll until done).

One accelerator pipeline, so one stream; no host threads. The operating mode `fclk-<MHz>` sets the PL clock 0
through `pynq.ps.Clocks` after the driver loads (FINN's driver sets 100 MHz for zynq-iodma) and the row reads it
back. Power: the row says which PMBus rails PYNQ sees (`mlperf_ext.power.pynq_pmbus`, `--power-meter pmbus`).
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_ext.errors import BackendUnavailable, ConfigError, DatasetError, ModelError
from mlperf_ext.host import package_version
from sut.base import (
    MODEL_PRECISION,
    BackendDescription,
    ComputeStep,
    DeploymentOptions,
    TensorSpec,
    check_exec_precision,
    check_runtime_options,
)
from sut.fake_accelerator import DataType
from sut.finn_package import FinnPackage
from sut.model_file import ModelInfo, multi_input_refusal, refuse_batch

DEVICES = ("fpga", "fake")
DRIVER = "finn_plus_driver.overlays.dma.FINNDMAOverlay"
SIMULATED_DEVICE = "FakePynqBoard (simulated timing: not FPGA performance)"
SIMULATED_NOTE = ("simulated: FakePynqBoard stands in for the board under the real pynq and FINN's driver; its "
                  "timings are the host CPU running a numpy model of the accelerator, never FPGA performance")
#: what is real and what is stood in for on --device fake (recorded in the row)
FAKE_LAYERS = {"real": ["finn_plus_driver FINNDMAOverlay", "pynq.Overlay/DefaultIP", "pynqmetadata .hwh parser",
                        "pynq.MMIO", "pynq.allocate/PynqBuffer", "pynq.ps.Clocks"],
               "stood_in": "pynq Device (FakePynqBoard: memory, registers, the accelerator's execution)"}
#: how far host input may sit from the input code grid (x / input_scale) before it is refused
INPUT_GRID_TOLERANCE = 1e-3
_FCLK_RE = re.compile(r"^fclk-(\d+(?:\.\d+)?)$")
_BOARD_FIX = ("run on a PYNQ board (e.g. ZCU104, Ultra96, PYNQ-Z2) with its PYNQ image, or use --device fake for the "
              "simulated board")
_ENV_FIX = ("pynq 4.0 and finn-plus-driver pin numpy<2: install them in their own environment (make finn-env, then "
            "run .venv/finn/bin/mlperf-ext)")


def _is_onnx(path: Path) -> bool:
    return path.is_file() and path.suffix == ".onnx"


def inspect_overlay(path: Path | str) -> ModelInfo:
    """The model as this backend sees it: the ONNX view of an .onnx file (for the fake), else the FINN
    deployment's input (host float32, as the glue quantizes it) from its io_shape_dict."""
    p = Path(path)
    if p.suffix == ".onnx":
        from sut.fake_accelerator import is_qonnx, stand_in_max_batch
        from sut.model_file import inspect_model

        info = inspect_model(p)
        if is_qonnx(p):  # FINN's models are traced at batch 1; the stand-in streams any number of samples
            info = replace(info, input=replace(info.input, shape=(None, *info.input.shape[1:])))
        return replace(info, max_batch=stand_in_max_batch(math.prod(int(d or 1) for d in info.input.shape[1:])))
    package = FinnPackage.read(p)
    return ModelInfo(path=p, input=TensorSpec("input", (None, *package.sample_shape), "float32"),
                     output_names=("label",), float_precision="fp32", weight_types=(), max_batch=package.max_batch)


def import_finn() -> tuple[Any, Any]:
    """(pynq, FINNDMAOverlay), or one line naming the extra and its environment."""
    try:
        import pynq
        from finn_plus_driver.overlays.dma import FINNDMAOverlay
    except ImportError as exc:
        raise BackendUnavailable("pynq", "pynq", f"{exc}; {_ENV_FIX}") from None
    return pynq, FINNDMAOverlay


def board_refusal(pynq: Any) -> str | None:
    """Why PYNQ cannot drive a board here (None when it finds one)."""
    try:
        devices = list(pynq.Device.devices)
    except Exception as exc:  # noqa: BLE001 - PYNQ's probes raise OSError, RuntimeError, XRT errors...
        return f"PYNQ could not probe for devices ({type(exc).__name__}: {exc})"
    if not devices:
        return "PYNQ finds no device here (pynq.Device.devices is empty: not a PYNQ board, or XRT not set up)"
    return None


def parse_device(device: str) -> str:
    kind = device.lower()
    if kind not in DEVICES:
        raise ConfigError(f"pynq has no device '{device}'; fix: use --device fpga (a PYNQ board) or --device fake "
                          "(the simulated board)")
    return kind


def fclk_of(mode: str | None) -> float | None:
    """'fclk-100' -> 100.0; None -> None; anything else is refused by `supports`."""
    m = _FCLK_RE.match(mode or "")
    return float(m.group(1)) if m else None


class PynqBackend:
    """A FINN accelerator (or its stand-in board) behind the Backend protocol; one DMA pipeline, one stream."""

    name = "pynq"
    extra = "pynq"
    runtime_module = None  # pynq and the FINN driver live in their own environment: import_finn names it
    runtime_packages = ("pynq", "finn-plus-driver")
    exec_precisions = (MODEL_PRECISION,)  # a bitstream computes in the precision it was built with
    runtime_option_values: dict[str, tuple] = {}

    inspect_model = staticmethod(inspect_overlay)

    def __init__(self) -> None:
        self._overlay: Any = None
        self._package: FinnPackage | None = None
        self._board: Any = None  # the FakePynqBoard on --device fake
        self._device = ""
        self._info: ModelInfo | None = None
        self._state: dict = {}
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._idt: DataType | None = None
        self._full: np.ndarray | None = None

    # -- facts ---------------------------------------------------------------------------------
    @staticmethod
    def check_device(device: str) -> None:
        """`fake` with the FINN environment; `fpga` only where PYNQ also finds a board."""
        kind = parse_device(device)
        pynq, _ = import_finn()
        if kind == "fpga":
            reason = board_refusal(pynq)
            if reason:
                raise ConfigError(f"{reason}; fix: {_BOARD_FIX}")

    @classmethod
    def supports(cls, model: ModelInfo, options: DeploymentOptions) -> str | None:
        check_runtime_options(cls, options.runtime_options)
        reason = check_exec_precision(cls, options) or multi_input_refusal(cls.name, model)
        if reason:
            return reason
        device = parse_device(options.device)
        if options.streams != 1:
            return (f"an accelerator has one pipeline behind its DMA, so one stream, not {options.streams}; "
                    "fix: use --streams 1")
        if options.threads is not None:
            return "an accelerator has no thread setting (FINN's driver packs on one host thread); fix: drop --threads"
        mode = options.operating_mode
        if mode and (device == "fake" or fclk_of(mode) is None):
            takes = "none (its timing is simulated)" if device == "fake" else "fclk-<MHz> (the PL clock 0)"
            return f"pynq --device {device} has no operating mode '{mode}' (it takes {takes}); fix: drop it"
        path = Path(model.path)
        if device == "fake":
            if not _is_onnx(path):
                return (f"--device fake programs its stand-in board with a QONNX network or a zoo INT2/INT4 MLP, not "
                        f"{path.name}; fix: pass the .onnx variant, or --device fpga for a FINN deployment")
            from sut.fake_accelerator import accelerator_refusal

            refusal = accelerator_refusal(path)
            return (f"{refusal}; fix: pass a QONNX network (e.g. tfc-w1a1-qonnx.onnx) or a zoo INT2/INT4 MLP "
                    "(e.g. mlp-w256-int2)") if refusal else None
        if _is_onnx(path):
            return (f"--device fpga runs a FINN deployment, not the ONNX file {path.name}; fix: pass the deployment "
                    "folder (bitfile/ and driver/), or --device fake to simulate this variant")
        return None

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        device = parse_device(options.device)
        info = inspect_overlay(model_path)
        refuse_batch(info, options.max_batch)
        reason = self.supports(info, options)
        if reason:
            raise ConfigError(reason)
        pynq, overlay_cls = import_finn()
        board = None
        if device == "fake":
            from sut.fake_accelerator import PIXEL_SCALE
            from sut.fake_pynq_board import FakePynqBoard, build_stand_in

            self._workdir = tempfile.TemporaryDirectory(prefix="mlperf-ext-finn-")
            package = FinnPackage.read(build_stand_in(model_path, self._workdir.name, PIXEL_SCALE))
            board = FakePynqBoard().activate()
        else:
            self.check_device(device)
            package = FinnPackage.read(model_path)
        try:
            overlay = overlay_cls(str(package.bitfile), package.platform, package.driver_dict(),
                                  batch_size=options.max_batch, device=board,
                                  runtime_weight_dir=str(package.runtime_weight_dir) + "/")
        except (AssertionError, FileNotFoundError, RuntimeError, OSError, ValueError, KeyError) as exc:
            self._release(board)
            raise ModelError(f"FINN's driver cannot load {package.bitfile} ({type(exc).__name__}: {exc}); fix: check "
                             "the .bit, .hwh and io_shape_dict come from one FINN build for this board") from None
        self._overlay, self._package, self._board, self._device, self._info = overlay, package, board, device, info
        self._idt = DataType.parse(package.idt)
        # the codes of one DMA batch, reused: FINN's driver folds and packs the whole buffer on every call
        self._full = np.zeros(overlay.ishape_normal(), _codes_dtype(self._idt))
        self._state = self._read_board(pynq, fclk_of(options.operating_mode), board)

    def _release(self, board: Any) -> None:
        if board is not None:
            board.deactivate()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    @staticmethod
    def _read_board(pynq: Any, fclk_mhz: float | None, board: Any) -> dict:
        """Set the PL clock where asked, and read back the board, the clock and the PMBus rails."""
        state: dict = {}
        try:
            state["board"] = str(pynq.Device.active_device.name)
        except Exception as exc:  # noqa: BLE001
            state["board"] = f"unknown ({type(exc).__name__})"
        try:
            from pynq.ps import Clocks

            if fclk_mhz:
                Clocks.fclk0_mhz = fclk_mhz
            state["fclk0_mhz"] = float(Clocks.fclk0_mhz)
        except Exception as exc:  # noqa: BLE001 - Alveo has no PS clocks
            if fclk_mhz:
                raise ConfigError(f"cannot set the PL clock to {fclk_mhz} MHz on this device ({type(exc).__name__}: "
                                  f"{exc}); fix: drop the fclk operating mode (Zynq boards only)") from None
            state["fclk0_mhz"] = None
        if board is not None:
            state["power_rails"] = "none: the stand-in board has no PMBus rails"
            return state
        try:
            from mlperf_ext.power.pynq_pmbus import import_get_rails

            rails = import_get_rails()() or {}
            state["power_rails"] = sorted(rails) or "none: libsensors reports no rail"
        except Exception as exc:  # noqa: BLE001 - a missing pynq.pmbus or libsensors failures, many types
            state["power_rails"] = f"none readable ({type(exc).__name__}: {exc})"
        return state

    def _require(self) -> tuple[Any, FinnPackage]:
        if self._overlay is None or self._package is None:
            raise RuntimeError("PynqBackend used before load()")
        return self._overlay, self._package

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> BackendDescription:
        overlay, package = self._require()
        fake = self._device == "fake"
        settings = {
            "driver": f"{DRIVER} (finn-plus-driver {package_version('finn-plus-driver') or 'unknown'})",
            "pynq": package_version("pynq") or "unknown",
            "io_shape_dict": package.describe(), "bitfile": str(package.bitfile), "hwh": str(package.hwh),
            "dma_batch": int(overlay.batch_size), "streams": 1,
            "ibuf_bytes": int(overlay.ibuf_packed_device[0].nbytes),
            "obuf_bytes": int(overlay.obuf_packed_device[0].nbytes),
            "compute_boundary": "FINNDMAOverlay.execute_on_buffers: IODMA address/count/start writes, the run, the "
                                "poll of odma0 until done; input folded, packed and copied in beforehand",
            "system_path": "quantize (x / input_scale) + FINNDMAOverlay.execute (fold, pack, copy in, run, copy out, "
                           "unpack); a short batch: the same stages with execute_on_buffers(batch_size=n); labels "
                           "as one-hot scores",
            "timing": ("simulated: numpy model of the accelerator on the host CPU, inside the register write that "
                       "starts the DMA; not FPGA performance") if fake else "the accelerator's, host clock around "
                                                                            "the DMA run",
            **self._state,
        }
        streams = f"{package.idt} in, {package.odt} out (io_shape_dict)"
        if fake:
            settings["stand_in"] = FAKE_LAYERS
            acc = self._board.accelerator
            precision = f"{acc.executed()}; stream {streams} (numpy model; simulated)"
        else:
            precision = f"stream {streams}; weights and activations as the bitstream was built"
        device = SIMULATED_DEVICE if fake else f"fpga ({self._state.get('board', 'unknown')})"
        return BackendDescription(runtime="finn-plus-driver", version=package_version("finn-plus-driver") or "unknown",
                                  device=device, providers=[f"{DRIVER} on {package.platform}"], settings=settings,
                                  # fake: the host's numpy; fpga: the io_shape_dict names no compute datatype
                                  precision=precision, compute_dtype="",
                                  notes=[SIMULATED_NOTE] if fake else [], simulated=fake)

    def input_spec(self) -> TensorSpec:
        self._require()
        assert self._info is not None
        return self._info.input

    # -- the glue: host floats -> the codes FINN's driver packs ----------------------------------
    def _codes(self, batch: np.ndarray) -> np.ndarray:
        overlay, package = self._require()
        n = len(batch)
        if n > overlay.batch_size:
            raise ConfigError(f"a batch of {n} exceeds the driver's buffers of {overlay.batch_size}; fix: raise --batch")
        x = np.asarray(batch, np.float64).reshape(n, *package.sample_shape) / package.input_scale
        codes = np.rint(x)
        dtype = self._idt
        if n and (np.abs(x - codes).max() > INPUT_GRID_TOLERANCE or codes.min() < dtype.min or codes.max() > dtype.max):
            raise DatasetError(f"input is off the accelerator's {package.idt} grid (x / {package.input_scale:g} must "
                               f"be an integer in {dtype.min}..{dtype.max}); fix: feed the dataset the accelerator was "
                               "built for, or set input_scale in its io_shape_dict")
        full = self._full
        full[:n] = codes  # rows past n keep older codes: the run covers n samples only
        return full

    def _stage(self, batch: np.ndarray) -> int:
        """Fold, pack and copy a batch into the input buffer with FINN's own stages; returns its rows."""
        overlay, _ = self._require()
        full = self._codes(batch)
        overlay.copy_input_data_to_device(overlay.pack_input(overlay.fold_input(full)))
        return len(batch)

    # -- system path ---------------------------------------------------------------------------
    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        overlay, package = self._require()
        n = len(batch)
        if n == overlay.batch_size:
            out = overlay.execute(self._codes(batch))
        else:
            self._stage(batch)
            overlay.execute_on_buffers(batch_size=n)
            overlay.copy_output_data_from_device(overlay.obuf_packed[0])
            out = overlay.unfold_output(overlay.unpack_output(overlay.obuf_packed[0]))
        labels = np.asarray(out).reshape(overlay.batch_size)[:n].astype(np.int64)
        classes = package.label_count
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise RuntimeError(f"the accelerator returned label {int(labels.max())} outside 0..{classes - 1}")
        scores = np.zeros((n, classes), np.float32)
        scores[np.arange(n), labels] = 1.0
        return scores

    # -- compute path --------------------------------------------------------------------------
    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        """Stage `batch` in the input buffer once; each step runs FINN's execute_on_buffers on it. A later
        `infer` overwrites the buffer, so steps are for use before the next system-path batch (as the runner
        uses them)."""
        overlay, _ = self._require()
        n = self._stage(batch)
        run, clock = overlay.execute_on_buffers, time.perf_counter

        def step() -> float:
            start = clock()
            run(batch_size=n)
            return clock() - start

        return step

    def close(self) -> None:
        self._overlay, self._package = None, None
        self._release(self._board)
        self._board = None


def _codes_dtype(dtype: DataType) -> Any:
    """uint8/int8 where they hold the codes: FINN's packer has a fast path for them (its throughput_test)."""
    if dtype.bits <= 8:
        return np.int8 if dtype.signed else np.uint8
    return np.int64
