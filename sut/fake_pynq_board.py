"""`FakePynqBoard`: a stand-in for a Zynq UltraScale+ board (a ZCU104) under the real `pynq` package.

It stands in for the hardware only, at PYNQ's own device layer: it is a `pynq.Device` (the class PYNQ's
`EmbeddedDevice` and `XrtDevice` also derive from, `pynq/pl_server/device.py`, github.com/Xilinx/PYNQ) made the
active device, so everything above it is real and unmodified:

| layer | what runs |
|---|---|
| FINN's runtime driver | `finn_plus_driver.overlays.dma.FINNDMAOverlay` (fold, pack, copy, IODMA registers, poll) |
| `pynq.Overlay`, `DefaultIP`, `_IPMap` | real: reads the design's IP from the `.hwh` |
| `.hwh` parsing | real: `pynqmetadata` (`Metadata` -> `RuntimeMetadataParser`), as `EmbeddedDevice` parses it |
| `pynq.MMIO`, `pynq.registers`, `pynq.ps.Clocks` | real: register reads and writes reach the board through `read_registers`/`write_registers` (the device's `REGISTER_RW` capability) |
| `pynq.allocate`, `PynqBuffer.flush`/`invalidate` | real: the buffer object is PYNQ's; its memory and cache maintenance are the board's |
| **the device** | **stood in**: memory, registers, the accelerator's execution (this module) |

What the board implements:
- **memory**: contiguous DMA-able buffers with a device copy apart from the host copy. Buffers are cacheable as
  FINN's driver allocates them on Zynq, so only `flush()` moves host bytes to the device and only `invalidate()`
  moves device bytes back: a driver that skips its cache maintenance reads stale data here as on a board. The
  capacity is `CMA_BYTES`, this stand-in's setting, not a board's figure.
- **the PS clock registers** `pynq.ps.Clocks` programs (CRL_APB/CRF_APB: IOPLL 1500 MHz, APLL 1200 MHz from the
  33.333 MHz reference, PL clock 0 at IOPLL/15 = 100 MHz at power-on), so `Clocks.fclk0_mhz` reads back what was
  set. The clock changes nothing in the simulated timing.
- **FINN's IODMA cores** (`idma0`, `odma0`; the HLS `ap_ctrl_hs` register block FINN's driver programs, offsets as
  `FINNDMAOverlay.execute_on_buffers` writes them): 0x10/0x14 buffer address low/high, 0x1C sample count, 0x00
  control: bit 0 ap_start (write 1), bit 1 ap_done (cleared when read), bit 2 ap_idle. Once both the output and
  the input DMA are started, the accelerator reads `count` packed samples from the input buffer's device memory,
  runs the network bit-exactly on them (`sut.fake_accelerator`: a QONNX network, or a zoo INT2/INT4 MLP; integer
  accumulations exact, the packed stream decoded with its own codec) and writes the packed labels to the output buffer's device memory, then both cores report done
  and idle. A job real hardware would hang on (a poll with nothing started, counts that disagree) raises instead.
- **the bitstream** this board "programs" is a stand-in `.bit`: JSON naming the ONNX network it implements (and
  its sha256) and the stream types; `build_stand_in` writes it with a FINN-shaped `.hwh` and `io_shape_dict.json`.

**Timing is simulated**: the network runs on the host CPU inside the register write that starts the second DMA,
so an interval measured through this board is numpy's time, never FPGA performance. Every register access and
cache operation is appended to `events`, so tests can see which code drove the board.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.pl_server.device import Device

from sut.fake_accelerator import (
    CMA_BYTES,
    DataType,
    load_accelerator,
    pack_bits,
    packed_bytes,
    stand_in_max_batch,
    unpack_bits,
)

BITSTREAM_FORMAT = "mlperf-ext-fake-pynq-bitstream/1"
DDR_BASE = 0x1000_0000
IODMA_BASES = {"idma0": 0xA000_0000, "odma0": 0xA001_0000}
IODMA_SPAN = 0x1_0000
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
#: the Zynq UltraScale+ clock registers pynq.ps.Clocks reads (pynq.ps ZU_CRL_REGISTERS / ZU_CRF_REGISTERS)
CRL_APB, CRF_APB = 0xFF5E_0000, 0xFD1A_0000
REF_CLK_MHZ = 33.333


def _pll(fbdiv: int, div2: int) -> int:
    return (fbdiv << 8) | (div2 << 16)  # PRE_SRC 0 (the PS reference clock)


def _pl_ref(div0: int, div1: int) -> int:
    return (1 << 24) | (div1 << 16) | (div0 << 8)  # CLKACT, SRCSEL 0 (IOPLL)


#: power-on values of the clock registers (ZCU104-like: IOPLL 33.333*90/2, APLL 33.333*72/2, PL0 = IOPLL/15)
POWER_ON_REGISTERS = {
    CRL_APB + 0x20: _pll(90, 1),  # IOPLL_CTRL
    CRL_APB + 0xC0: _pl_ref(15, 1),  # PL0_REF_CTRL
    CRL_APB + 0xC4: _pl_ref(15, 1), CRL_APB + 0xC8: _pl_ref(15, 1), CRL_APB + 0xCC: _pl_ref(15, 1),
    CRF_APB + 0x20: _pll(72, 1),  # APLL_CTRL
    CRF_APB + 0x60: 1 << 8,  # ACPU_CTRL: APLL / 1
}


class IodmaCore:
    """One FINN IODMA core's AXI-lite registers."""

    def __init__(self, name: str, base: int):
        self.name, self.base = name, base
        self.address = 0
        self.count = 0
        self.started = False
        self.done = False

    def status(self) -> int:
        return (AP_START if self.started else 0) | (AP_DONE if self.done else 0) | (0 if self.started else AP_IDLE)


class FakePynqBoard(Device):
    """A pynq Device whose memory, registers and accelerator are simulated (see the module docstring)."""

    def __init__(self, name: str = "FakePynqBoard (ZCU104 stand-in)"):
        super().__init__("fake_pynq_board0")
        self.name = name
        self.arch = "aarch64"  # Zynq UltraScale+: pynq.ps.Clocks drives the CRL_APB/CRF_APB registers
        self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False, "CALLABLE": False}
        self.events: list[tuple] = []
        self.registers: dict[int, int] = dict(POWER_ON_REGISTERS)
        self.cores: dict[int, IodmaCore] = {}
        self.accelerator: Any = None  # sut.fake_accelerator.MlpAccelerator or sut.fake_qonnx.QonnxAccelerator
        self.stream: dict = {}
        self._memory: dict[int, np.ndarray] = {}  # base address -> device bytes
        self._next = DDR_BASE
        self._previous_active: Any = None

    # -- becoming the board PYNQ drives ---------------------------------------------------------
    def activate(self) -> FakePynqBoard:
        """Make this the active pynq device; pynq.ps.Clocks forgets a board it met before (one board per
        process, as on hardware)."""
        from pynq.ps import Clocks

        self._previous_active = getattr(Device, "_active_device", None)
        Device.active_device = self
        if getattr(Clocks, "device", None) is not self and hasattr(Clocks, "_real_instance"):
            del Clocks._real_instance
        Clocks.set_device(self)
        return self

    def deactivate(self) -> None:
        if getattr(Device, "_active_device", None) is self:
            if self._previous_active is None:
                del Device._active_device
            else:
                Device.active_device = self._previous_active

    # -- the bitstream and its metadata (pynq.Overlay calls these) -------------------------------
    def get_bitfile_metadata(self, bitfile_name: str, partial: bool = False):
        """The design's IP as PYNQ reads it on an embedded board: pynqmetadata's parser over the `.hwh`."""
        from pynqmetadata.frontends import Metadata
        from pynqmetadata.views.runtime import RuntimeMetadataParser

        parser = RuntimeMetadataParser(Metadata(input=Path(bitfile_name).with_suffix(".hwh")))
        parser.refresh_hierarchy_dict()
        return parser

    def download(self, bitstream, parser=None) -> None:
        """Program the fabric: read the stand-in bitstream, load its network, map the IODMA cores of the design."""
        path = Path(bitstream.bitfile_name)
        try:
            spec = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise RuntimeError(f"FakePynqBoard cannot program {path}: not a stand-in bitstream ({exc}); a real .bit "
                               "needs a real board") from None
        if spec.get("format") != BITSTREAM_FORMAT:
            raise RuntimeError(f"FakePynqBoard cannot program {path}: format {spec.get('format')!r}")
        network = path.parent / spec["network"]
        digest = hashlib.sha256(network.read_bytes()).hexdigest()
        if digest != spec["sha256"]:
            raise RuntimeError(f"the network {network} changed since {path} was built (sha256 differs)")
        self.accelerator = load_accelerator(network, spec.get("pixel_scale", 1.0))
        self.stream = spec["stream"]
        self.cores = {}
        for name, ip in (parser.ip_dict if parser is not None else {}).items():
            if name in IODMA_BASES:
                self.cores[int(ip["phys_addr"])] = IodmaCore(name, int(ip["phys_addr"]))
        if set(c.name for c in self.cores.values()) != set(IODMA_BASES):
            raise RuntimeError(f"{path.with_suffix('.hwh')} maps no idma0/odma0 IODMA cores")
        self.events.append(("download", path.name))
        self.post_download(bitstream, parser, self.name)

    # -- memory (pynq.allocate and PynqBuffer call these) ----------------------------------------
    def allocate(self, shape, dtype, cacheable: bool = True, **_kwargs) -> PynqBuffer:
        nbytes = int(np.dtype(dtype).itemsize * math.prod(shape if isinstance(shape, tuple | list) else (shape,)))
        used = self._next - DDR_BASE
        if used + nbytes > CMA_BYTES:
            raise RuntimeError(f"FakePynqBoard: out of contiguous memory ({nbytes} bytes asked, "
                               f"{CMA_BYTES - used} of {CMA_BYTES} free)")
        base = self._next
        self._next += -(-nbytes // 4096) * 4096
        self._memory[base] = np.zeros(nbytes, np.uint8)
        buf = PynqBuffer(shape, dtype, device=self, device_address=base, bo=base, coherent=not cacheable)
        buf.fill(0)
        self.events.append(("allocate", base, nbytes))
        return buf

    @staticmethod
    def _host(vaddr: int, nbytes: int) -> np.ndarray:
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(vaddr))

    def flush(self, bo: int, offset: int, vaddr: int, nbytes: int) -> None:
        self._memory[bo][offset:offset + nbytes] = self._host(vaddr, nbytes)
        self.events.append(("flush", bo, nbytes))

    def invalidate(self, bo: int, offset: int, vaddr: int, nbytes: int) -> None:
        self._host(vaddr, nbytes)[:] = self._memory[bo][offset:offset + nbytes]
        self.events.append(("invalidate", bo, nbytes))

    def _device_bytes(self, address: int, nbytes: int) -> np.ndarray:
        for base, mem in self._memory.items():
            if base <= address and address + nbytes <= base + mem.size:
                return mem[address - base:address - base + nbytes]
        raise RuntimeError(f"DMA of {nbytes} bytes at {address:#x} leaves every allocated buffer (a board would fault)")

    # -- registers (pynq.MMIO calls these) -------------------------------------------------------
    def _core(self, address: int) -> tuple[IodmaCore | None, int]:
        base = address & ~(IODMA_SPAN - 1)
        return self.cores.get(base), address - base

    def read_registers(self, address: int, length: int) -> bytes:
        core, offset = self._core(address)
        if core is None:
            value = self.registers.get(address, 0)
        elif offset == 0x00:
            if core.started and core.name == "odma0" and not self._input_started():
                raise RuntimeError("polling odma0 with no input DMA started: the accelerator would never finish")
            value = core.status()
            core.done = False  # ap_done clears when read
        else:
            value = {0x10: core.address & 0xFFFF_FFFF, 0x14: core.address >> 32, 0x1C: core.count}.get(offset, 0)
        self.events.append(("read", address, value))
        return int(value).to_bytes(length, "little")

    def write_registers(self, address: int, data: bytes) -> None:
        value = int.from_bytes(data, "little")
        self.events.append(("write", address, value))
        core, offset = self._core(address)
        if core is None:
            self.registers[address] = value
        elif offset == 0x10:
            core.address = (core.address & ~0xFFFF_FFFF) | value
        elif offset == 0x14:
            core.address = (core.address & 0xFFFF_FFFF) | (value << 32)
        elif offset == 0x1C:
            core.count = value
        elif offset == 0x00 and value & AP_START:
            if core.started:
                raise RuntimeError(f"{core.name} started while running")
            core.started, core.done = True, False
            self._run_if_ready()

    def _input_started(self) -> bool:
        return any(c.started for c in self.cores.values() if c.name == "idma0")

    def _run_if_ready(self) -> None:
        idma = next(c for c in self.cores.values() if c.name == "idma0")
        odma = next(c for c in self.cores.values() if c.name == "odma0")
        if not (idma.started and odma.started):
            return
        if idma.count != odma.count:
            raise RuntimeError(f"idma0 streams {idma.count} samples but odma0 waits for {odma.count}: the "
                               "accelerator would hang")
        self._execute(idma.address, odma.address, idma.count)
        for core in (idma, odma):
            core.started, core.done = False, True

    def _execute(self, src: int, dst: int, count: int) -> None:
        """The accelerator: packed input stream in device memory -> network -> packed labels in device memory."""
        assert self.accelerator is not None
        s = self.stream
        idt, odt = DataType.parse(s["idt"]), DataType.parse(s["odt"])
        folded = tuple(s["ishape_folded"][1:])
        in_bytes = math.prod(folded[:-1]) * packed_bytes(folded[-1], idt.bits)
        raw = self._device_bytes(src, count * in_bytes).reshape(count, *folded[:-1], -1)
        codes = unpack_bits(raw, idt, folded[-1]).reshape(count, -1)
        labels = self.accelerator.labels(codes).astype(np.int64)
        out = pack_bits(labels.reshape(count, 1), odt).reshape(-1)
        self._device_bytes(dst, out.size)[:] = out
        self.events.append(("execute", count))


# ---------------------------------------------------------------------------------------------- the stand-in package

def _fold(features: int) -> int:
    """The stream word (SIMD) a FINN build would pick for a vector of `features`: its largest divisor <= 64."""
    return max(d for d in range(1, min(features, 64) + 1) if features % d == 0)


def build_stand_in(onnx_path: Path | str, out_dir: Path | str, pixel_scale: float) -> Path:
    """Write a FINN-shaped deployment for a QONNX network or a zoo INT2/INT4 MLP: bitfile/finn-accel.{bit,hwh},
    io_shape_dict.json.

    Returns the `.bit`. The io_shape_dict is what FINN would generate for a UINT8 image in and a UINT8 label out.
    """
    onnx_path, out = Path(onnx_path), Path(out_dir)
    accelerator = load_accelerator(onnx_path, pixel_scale)
    features, simd = accelerator.in_features, _fold(accelerator.in_features)
    odt = "UINT8" if accelerator.classes <= 256 else "UINT16"
    normal = [1, *getattr(accelerator, "input_shape", (features,))]  # a QONNX network's own input layout
    io = {"idt": ["UINT8"], "odt": [odt],
          "ishape_normal": [normal], "ishape_folded": [[1, features // simd, simd]],
          "ishape_packed": [[1, features // simd, simd]],
          "oshape_normal": [[1, 1]], "oshape_folded": [[1, 1, 1]],
          "oshape_packed": [[1, 1, packed_bytes(1, DataType.parse(odt).bits)]],
          "platform": "zynq-iodma", "input_scale": pixel_scale, "classes": accelerator.classes,
          "max_batch": stand_in_max_batch(features)}
    bitdir = out / "bitfile"
    bitdir.mkdir(parents=True, exist_ok=True)
    network = bitdir / "network.onnx"
    network.write_bytes(onnx_path.read_bytes())
    stream = {k: v[0] for k, v in io.items() if isinstance(v, list)}
    bit = bitdir / "finn-accel.bit"
    bit.write_text(json.dumps({"format": BITSTREAM_FORMAT, "network": network.name, "pixel_scale": pixel_scale,
                               "sha256": hashlib.sha256(network.read_bytes()).hexdigest(), "stream": stream}))
    bit.with_suffix(".hwh").write_text(finn_hwh(list(IODMA_BASES.items())))
    (out / "io_shape_dict.json").write_text(json.dumps(io, indent=1))
    return bit


def _iodma_module(name: str, base: int) -> str:
    regs = "".join(
        f"""
            <REGISTER NAME="{reg}">
              <PROPERTY NAME="DESCRIPTION" VALUE="{what}"/>
              <PROPERTY NAME="ADDRESS_OFFSET" VALUE="{offset:#x}"/>
              <PROPERTY NAME="SIZE" VALUE="32"/>
              <PROPERTY NAME="ACCESS" VALUE="read-write"/>
              <PROPERTY NAME="IS_ENABLED" VALUE="true"/>
              <PROPERTY NAME="RESET_VALUE" VALUE="0x0"/>
            </REGISTER>"""
        for reg, offset, what in (("CTRL", 0x00, "ap_start ap_done ap_idle"), ("in0_V_1", 0x10, "buffer address low"),
                                  ("in0_V_2", 0x14, "buffer address high"), ("numReps", 0x1C, "samples")))
    return f"""
    <MODULE FULLNAME="/{name}" HWVERSION="1.0" INSTANCE="{name}" IPTYPE="PERIPHERAL" IS_ENABLE="1" MODCLASS="PERIPHERAL" MODTYPE="{name}" VLNV="xilinx_finn:finn:{name}:1.0">
      <ADDRESSBLOCKS>
        <ADDRESSBLOCK ACCESS="read-write" INTERFACE="s_axi_control" NAME="Reg" RANGE="{IODMA_SPAN}" USAGE="register">
          <REGISTERS>{regs}
          </REGISTERS>
        </ADDRESSBLOCK>
      </ADDRESSBLOCKS>
      <PARAMETERS>
        <PARAMETER NAME="C_S_AXI_CONTROL_BASEADDR" VALUE="{base:#x}"/>
        <PARAMETER NAME="C_S_AXI_CONTROL_HIGHADDR" VALUE="{base + IODMA_SPAN - 1:#x}"/>
      </PARAMETERS>
      <PORTS>
        <PORT CLKFREQUENCY="100000000" DIR="I" NAME="ap_clk" SIGIS="clk" SIGNAME="zynq_ultra_ps_e_0_pl_clk0">
          <CONNECTIONS>
            <CONNECTION INSTANCE="zynq_ultra_ps_e_0" PORT="pl_clk0"/>
          </CONNECTIONS>
        </PORT>
      </PORTS>
      <BUSINTERFACES>
        <BUSINTERFACE BUSNAME="axi_interconnect_0_{name}" DATAWIDTH="32" NAME="s_axi_control" TYPE="SLAVE" VLNV="xilinx.com:interface:aximm:1.0">
          <PORTMAPS/>
        </BUSINTERFACE>
      </BUSINTERFACES>
    </MODULE>"""


def finn_hwh(cores: list[tuple[str, int]]) -> str:
    """A Vivado hardware handoff for FINN's zynq-iodma shell on a ZCU104: the PS and the IODMA cores it maps.

    Written by this project in the `.hwh` schema Vivado emits (EDKSYSTEM/MODULES/MEMORYMAP), carrying only what
    PYNQ reads: the PS, its PL clocks, and each core's register block and address.
    """
    clocks = "".join(
        f"""
        <PARAMETER NAME="PSU__FPGA_PL{i}_ENABLE" VALUE="{int(i == 0)}"/>
        <PARAMETER NAME="PSU__CRL_APB__PL{i}_REF_CTRL__SRCSEL" VALUE="IOPLL"/>
        <PARAMETER NAME="PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR0" VALUE="15"/>
        <PARAMETER NAME="PSU__CRL_APB__PL{i}_REF_CTRL__DIVISOR1" VALUE="1"/>
        <PARAMETER NAME="PSU__CRL_APB__PL{i}_REF_CTRL__ACT_FREQMHZ" VALUE="100"/>"""
        for i in range(4))
    ranges = "".join(
        f"""
        <MEMRANGE ADDRESSBLOCK="Reg" BASENAME="C_S_AXI_CONTROL_BASEADDR" BASEVALUE="{base:#x}" HIGHNAME="C_S_AXI_CONTROL_HIGHADDR" HIGHVALUE="{base + IODMA_SPAN - 1:#x}" INSTANCE="{name}" IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_HPM0_FPD" MEMTYPE="REGISTER" SLAVEBUSINTERFACE="s_axi_control"/>"""
        for name, base in cores)
    modules = "".join(_iodma_module(name, base) for name, base in cores)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<EDKSYSTEM EDWVERSION="1.2" TIMESTAMP="stand-in" VIVADOVERSION="2022.2">
  <SYSTEMINFO ARCH="zynquplus" DEVICE="xczu7ev" NAME="finn_design" PACKAGE="ffvc1156" SPEEDGRADE="-2"/>
  <EXTERNALPORTS/>
  <EXTERNALINTERFACES/>
  <MODULES>{modules}
    <MODULE FULLNAME="/zynq_ultra_ps_e_0" HWVERSION="3.4" INSTANCE="zynq_ultra_ps_e_0" IPTYPE="PERIPHERAL" IS_ENABLE="1" IS_PL="FALSE" MODTYPE="zynq_ultra_ps_e" VLNV="xilinx.com:ip:zynq_ultra_ps_e:3.4">
      <PARAMETERS>{clocks}
      </PARAMETERS>
      <PORTS>
        <PORT CLKFREQUENCY="100000000" DIR="O" NAME="pl_clk0" SIGIS="clk" SIGNAME="zynq_ultra_ps_e_0_pl_clk0"/>
      </PORTS>
      <BUSINTERFACES>
        <BUSINTERFACE BUSNAME="zynq_ultra_ps_e_0_M_AXI_HPM0_FPD" DATAWIDTH="128" NAME="M_AXI_HPM0_FPD" TYPE="MASTER" VLNV="xilinx.com:interface:aximm:1.0">
          <PORTMAPS/>
        </BUSINTERFACE>
      </BUSINTERFACES>
      <MEMORYMAP>{ranges}
      </MEMORYMAP>
    </MODULE>
  </MODULES>
</EDKSYSTEM>
"""
