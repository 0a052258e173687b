"""PYNQ backend: a FINN-style dataflow accelerator on an FPGA overlay, driven through `sut.finn_driver`.

Devices (nothing falls back from one to the other):
- `fpga`: a real board through the `pynq` package (pip extra `pynq`). The model is the overlay: its `.bit`
  (recommended: the run's key then hashes the bitstream), its directory, or its `overlay.json`; the `.hwh`
  and the metadata sit next to the `.bit` (fields: `sut.finn_driver.OverlayMetadata`). `pynq.Overlay(bit)`
  downloads the bitstream, `pynq.allocate` gives the DMA buffers. A missing `pynq` or a host where PYNQ
  finds no device is refused with one line.
- `fake`: `sut.fake_overlay.FakeOverlay` on a zoo INT2/INT4 MLP ONNX file: the same driver code (packing,
  buffers, DMA calls, unpacking) around a numpy model of the accelerator. Its timing is the host running
  numpy, labelled as simulated in the row (device, settings and notes); it is never FPGA performance.

`runtime_module` is None on purpose: the fake needs no `pynq`, so `check_device` imports `pynq` only for
`fpga` (and names the extra when it is missing).

Paths (docs/architecture.md, "Definitions"):
- system, `infer`: quantize the host floats to the accelerator's input codes, fold, pack to its bit width,
  copy into the DMA buffer, run, copy out, unpack the top-1 labels. The harness reduces scores to top-1,
  so the labels are returned as one-hot float32 scores (argmax gives the label back unchanged).
- compute, `compute_step`: the batch is packed and copied into the input buffer once; each step times
  `FinnDriver.execute_on_buffers`: the batch-count write, both DMA transfers and their waits.

One accelerator pipeline per overlay, so one stream; host threads are not a setting of an overlay. The
operating mode `fclk-<MHz>` sets the Zynq PL clock 0 (`pynq.ps.Clocks.fclk0_mhz`, as FINN's driver does
for zynq-iodma) and the row reads it back. Power: the row says which PMBus rails PYNQ sees (the meter itself
is `mlperf_ext.power.pynq_pmbus`, `--power-meter pmbus`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_ext.errors import BackendUnavailable, ConfigError, ModelError
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
from sut.finn_driver import FinnDriver, OverlayMetadata
from sut.model_file import ModelInfo, multi_input_refusal, refuse_batch

DEVICES = ("fpga", "fake")
SIMULATED_DEVICE = "fake-overlay (simulated timing: not FPGA performance)"
SIMULATED_NOTE = ("simulated: the fake overlay's timings are the host CPU running a numpy model of the accelerator "
                  "inside the fake DMA wait; they say nothing about an FPGA")
_FCLK_RE = re.compile(r"^fclk-(\d+(?:\.\d+)?)$")
_BOARD_FIX = ("run on a PYNQ board (e.g. ZCU104, Ultra96, PYNQ-Z2) with its PYNQ image, or use --device fake for the "
              "simulated overlay")


@dataclass(frozen=True)
class OverlayModelInfo(ModelInfo):
    """sut.model_file.ModelInfo for an overlay (what the runner checks), with its declared metadata."""

    metadata: OverlayMetadata | None = None
    metadata_file: Path | None = None


def _is_onnx(path: Path) -> bool:
    return path.is_file() and path.suffix == ".onnx"


def inspect_overlay(path: Path | str) -> ModelInfo:
    """The model as this backend sees it: the ONNX view of an .onnx file (for the fake), else the overlay's
    declared input (host float32, as the driver quantizes it) from its metadata."""
    p = Path(path)
    if p.suffix == ".onnx":
        from sut.model_file import inspect_model

        return inspect_model(p)
    meta, found = OverlayMetadata.read(p)
    weights = meta.implements.get("weights")
    return OverlayModelInfo(path=p, input=TensorSpec("input", (None, *meta.ishape_normal), "float32"),
                            output_names=("label",), float_precision="fp32",
                            weight_types=(str(weights),) if weights else (), metadata=meta, metadata_file=found)


def import_pynq():
    try:
        import pynq
    except ImportError as exc:
        raise BackendUnavailable("pynq", "pynq", f"python module 'pynq' not importable: {exc}") from None
    return pynq


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
                          "(the simulated overlay)")
    return kind


def fclk_of(mode: str | None) -> float | None:
    """'fclk-100' -> 100.0; None -> None; anything else is refused by `supports`."""
    m = _FCLK_RE.match(mode or "")
    return float(m.group(1)) if m else None


class PynqBackend:
    """A FINN-style overlay (or its fake) behind the Backend protocol; one DMA pipeline, one stream."""

    name = "pynq"
    extra = "pynq"
    runtime_module = None  # the fake needs no pynq: check_device imports it for --device fpga only
    runtime_packages = ("pynq",)
    exec_precisions = (MODEL_PRECISION,)  # a bitstream computes in the precision it was built with
    runtime_option_values: dict[str, tuple] = {}

    inspect_model = staticmethod(inspect_overlay)

    def __init__(self) -> None:
        self._driver: FinnDriver | None = None
        self._overlay: Any = None
        self._device = ""
        self._info: ModelInfo | None = None
        self._metadata_file: Path | None = None
        self._runtime = ("", "")
        self._board: dict = {}

    # -- facts ---------------------------------------------------------------------------------
    @staticmethod
    def check_device(device: str) -> None:
        """`fake` always; `fpga` only with pynq importable and a device PYNQ finds."""
        if parse_device(device) == "fpga":
            reason = board_refusal(import_pynq())
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
            return (f"an overlay has one accelerator pipeline behind its DMA, so one stream, not {options.streams}; "
                    "fix: use --streams 1")
        if options.threads is not None:
            return "an overlay has no thread setting (the host stages are single-threaded numpy); fix: drop --threads"
        mode = options.operating_mode
        if mode and (device == "fake" or fclk_of(mode) is None):
            takes = "none (it has no clock)" if device == "fake" else "fclk-<MHz> (the PL clock 0)"
            return f"pynq --device {device} has no operating mode '{mode}' (it takes {takes}); fix: drop it"
        path = Path(model.path)
        if device == "fake":
            if not _is_onnx(path):
                return (f"--device fake simulates a zoo INT2/INT4 MLP ONNX file, not {path.name}; fix: pass the .onnx "
                        "variant, or --device fpga for an overlay")
            from sut.fake_overlay import mlp_refusal

            refusal = mlp_refusal(path)
            return f"{refusal}; fix: use a zoo INT2 or INT4 MLP variant (e.g. mlp-w256-int2)" if refusal else None
        if _is_onnx(path):
            return (f"--device fpga runs an overlay, not the ONNX file {path.name}; fix: pass the overlay's .bit (its "
                    ".hwh and overlay.json beside it), or --device fake to simulate this variant")
        return None

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        device = parse_device(options.device)
        info = inspect_overlay(model_path)
        refuse_batch(info, options.max_batch)
        reason = self.supports(info, options)
        if reason:
            raise ConfigError(reason)
        if device == "fake":
            from sut.fake_overlay import FakeOverlay

            overlay = FakeOverlay(model_path)
            meta, allocate = overlay.metadata, overlay.allocate
            self._runtime = ("fake-overlay", package_version("mlperf-ext") or "dev")
            self._board = {"board": "none (FakeOverlay)", "power_rails": "none: a fake overlay has no PMBus rails"}
        else:
            pynq = import_pynq()
            self.check_device(device)
            assert isinstance(info, OverlayModelInfo) and info.metadata is not None and info.metadata_file is not None
            meta = info.metadata
            self._metadata_file = info.metadata_file
            bit = meta.bitfile_path(info.metadata_file)
            try:
                overlay = pynq.Overlay(str(bit))
            except Exception as exc:  # noqa: BLE001 - PYNQ raises many types for a bitstream it cannot load
                raise ModelError(f"pynq cannot load overlay {bit} ({type(exc).__name__}: {exc}); fix: check the .bit "
                                 "and .hwh were built for this board") from None
            allocate = pynq.allocate
            self._runtime = ("pynq", getattr(pynq, "__version__", package_version("pynq") or "unknown"))
            self._board = self._read_board(pynq, fclk_of(options.operating_mode) or meta.fclk_mhz)
        self._overlay, self._device, self._info = overlay, device, info
        self._driver = FinnDriver(overlay, allocate, meta, options.max_batch)

    @staticmethod
    def _read_board(pynq: Any, fclk_mhz: float | None) -> dict:
        """Set the PL clock where asked (Zynq), and read back the board, the clock and the PMBus rails."""
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
        try:
            from mlperf_ext.power.pynq_pmbus import import_get_rails

            rails = import_get_rails()() or {}
            state["power_rails"] = sorted(rails) or "none: libsensors reports no rail"
        except Exception as exc:  # noqa: BLE001 - a missing pynq.pmbus or libsensors failures, many types
            state["power_rails"] = f"none readable ({type(exc).__name__}: {exc})"
        return state

    def _require(self) -> FinnDriver:
        if self._driver is None:
            raise RuntimeError("PynqBackend used before load()")
        return self._driver

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> BackendDescription:
        driver = self._require()
        meta = driver.metadata
        fake = self._device == "fake"
        settings = {
            "overlay": meta.name, "overlay_metadata": str(self._metadata_file) if self._metadata_file else "built in",
            "bitfile": meta.bitfile, "implements": meta.implements,
            "idt": meta.idt, "odt": meta.odt, "input_scale": meta.input_scale, "classes": meta.classes,
            "ishape_normal": list(meta.ishape_normal), "ishape_folded": list(meta.ishape_folded),
            "ishape_packed": list(meta.ishape_packed), "oshape_packed": list(meta.oshape_packed),
            "input_bytes_per_sample": meta.input_bytes, "output_bytes_per_sample": meta.output_bytes,
            "max_batch": meta.max_batch, "dma_batch": driver.batch_size,
            "ibuf_bytes": int(driver.ibuf.nbytes), "obuf_bytes": int(driver.obuf.nbytes),
            "dma": {"input": meta.input_dma, "output": meta.output_dma}, "batch_register": meta.batch_register,
            "streams": 1,
            "compute_boundary": "FinnDriver.execute_on_buffers: batch-count write, recv+send DMA transfer, both waits "
                                "(incl. PYNQ's own flush in transfer and invalidate in wait); input pre-packed in the "
                                "DMA buffer",
            "system_path": "quantize + fold + pack + copy in + DMA + copy out + unpack; labels as one-hot scores",
            "timing": ("simulated: numpy model of the accelerator on the host CPU, inside the fake DMA wait; not FPGA "
                       "performance") if fake else "the accelerator's, host clock around the DMA run",
            **self._board,
        }
        if fake:
            acc = self._overlay.accelerator
            precision = (f"{acc.precision()} weights x uint8 input codes, float32 activations (numpy model of the "
                         "accelerator; simulated)")
            compute_dtype = ""  # the host's numpy, not an accelerator datatype level 0 could predict against
        else:
            weights = meta.implements.get("weights", "unknown")
            precision = f"{weights} weights, {meta.idt} input (declared by the overlay's metadata)"
            compute_dtype = str(meta.implements.get("compute_dtype", weights if weights != "unknown" else ""))
        device = SIMULATED_DEVICE if fake else f"fpga ({self._board.get('board', 'unknown')})"
        return BackendDescription(runtime=self._runtime[0], version=self._runtime[1], device=device,
                                  providers=[f"{meta.input_dma} (AXI DMA)"], settings=settings, precision=precision,
                                  compute_dtype=compute_dtype, notes=[SIMULATED_NOTE] if fake else [])

    def input_spec(self) -> TensorSpec:
        self._require()
        assert self._info is not None
        return self._info.input

    # -- system path ---------------------------------------------------------------------------
    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        driver = self._require()
        labels = driver.execute(batch)
        classes = driver.metadata.classes
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise RuntimeError(f"the accelerator returned label {int(labels.max())} outside 0..{classes - 1}")
        scores = np.zeros((len(labels), classes), np.float32)
        scores[np.arange(len(labels)), labels] = 1.0
        return scores

    # -- compute path --------------------------------------------------------------------------
    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        """Pack and copy `batch` into the input buffer once; each step runs the accelerator on it. A later
        `infer` overwrites the buffer, so steps are for use before the next system-path batch (as the runner
        uses them)."""
        driver = self._require()
        n = driver.stage(batch)  # packed and resident in the DMA buffer: outside every timed run
        run = driver.execute_on_buffers

        def step() -> float:
            return run(n)

        return step

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
        free = getattr(self._overlay, "free", None)
        if callable(free):
            free()
        self._driver, self._overlay = None, None
