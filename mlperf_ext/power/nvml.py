"""NVIDIA GPU power through NVML (`nvidia-ml-py`, imported as `pynvml`; pip extra `gpu`).

Prefers `nvmlDeviceGetTotalEnergyConsumption` (mJ since the driver was loaded, Volta and newer): a
counter, so the window's energy is exact between readings. Without it, samples
`nvmlDeviceGetPowerUsage` (mW); NVML's documentation says that on Ampere (except GA100) and newer this
is a 1-second average, on older parts instantaneous, which is why the counter comes first. Sources:
NVML API reference (docs.nvidia.com/deploy/nvml-api, nvmlDeviceGetTotalEnergyConsumption,
nvmlDeviceGetPowerUsage). The board's power is the GPU's alone, not the host's.

This machine has no NVIDIA driver: only the refusals are tested here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mlperf_ext.errors import BackendUnavailable, ConfigError
from mlperf_ext.power.base import COUNTER_INTERVAL_S, ENERGY, POWER, POWER_INTERVAL_S, Domain, SamplingMeter

NO_GPU_FIX = "fix: run on a host with an NVIDIA GPU and driver, or choose another --power-meter"


def import_pynvml():
    try:
        import pynvml
    except ImportError as exc:
        raise BackendUnavailable("nvml power meter", "gpu", f"nvidia-ml-py: {exc}") from None
    return pynvml


class NvmlMeter(SamplingMeter):
    """One GPU's energy counter, or its sampled power where the counter is not supported."""

    def __init__(self, device_index: int = 0, interval_s: float | None = None,
                 clock: Callable[[], float] = time.time):
        pynvml = import_pynvml()
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise ConfigError(f"NVML cannot start ({exc}): no NVIDIA driver or GPU on this host; {NO_GPU_FIX}") \
                from None
        self._nvml = pynvml
        try:
            count = pynvml.nvmlDeviceGetCount()
            if not 0 <= device_index < count:
                raise ConfigError(f"no NVIDIA GPU {device_index} (this host has {count}); fix: use "
                                  f"--power-meter nvml:N with N in 0..{count - 1}")
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            gpu = pynvml.nvmlDeviceGetName(self._handle)
            gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
                self._counter = True
            except pynvml.NVMLError as exc:
                if getattr(exc, "value", None) != pynvml.NVML_ERROR_NOT_SUPPORTED:
                    raise
                self._counter = False
        except pynvml.NVMLError as exc:
            pynvml.nvmlShutdown()
            raise ConfigError(f"NVML cannot read GPU {device_index} ({exc}); {NO_GPU_FIX}") from None
        except ConfigError:
            pynvml.nvmlShutdown()
            raise
        domain = f"gpu{device_index}"
        if self._counter:
            self.default_interval_s = COUNTER_INTERVAL_S
            self.method = "energy counter (NVML total energy consumption)"
            domains = [Domain(domain, ENERGY, scale=1e-3)]  # mJ, 64-bit: no wrap in practice
        else:
            self.default_interval_s = POWER_INTERVAL_S
            self.method = "sampled power (NVML power usage; a 1-s average on Ampere and newer)"
            domains = [Domain(domain, POWER, scale=1e-3)]  # mW
        super().__init__(interval_s, clock)  # reads default_interval_s, chosen above
        self._domains = domains
        self._domain = domain
        self.name = f"nvml:{device_index} ({gpu})"

    def read_raw(self) -> dict[str, float]:
        if self._counter:
            return {self._domain: float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))}
        return {self._domain: float(self._nvml.nvmlDeviceGetPowerUsage(self._handle))}

    def close(self) -> None:
        if getattr(self, "_nvml", None) is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None
