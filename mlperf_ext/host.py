"""Host metadata stored with every result (pyperf-style): what machine and software produced a number."""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from importlib import metadata


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    flags = _cpuinfo_field("flags") or _cpuinfo_field("Features") or ""
    return set(flags.split())


def package_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


#: distributions whose versions make a number reproducible
TRACKED_PACKAGES = ("mlcommons-loadgen", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino",
                    "tensorrt", "ai-edge-litert", "tflite-runtime", "pynq", "torch")


@lru_cache(maxsize=1)
def host_metadata() -> dict:
    """CPU, core counts, OS, Python and runtime versions of this machine."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": {name: v for name in TRACKED_PACKAGES if (v := package_version(name))},
    }


#: SIMD/matrix extensions that set a CPU's peak ops per cycle (x86 and Arm flag names)
SIMD_FLAGS = ("sse2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
              "avx512_fp16", "amx_bf16", "amx_int8", "amx_fp16", "amx_tile", "neon", "asimd", "asimddp", "sve", "sve2")


def cpu_simd_features() -> list[str]:
    """The SIMD/matrix extensions this CPU reports, in SIMD_FLAGS order."""
    flags = cpu_flags()
    return [f for f in SIMD_FLAGS if f in flags]


def cpu_clock_mhz() -> float | None:
    """Maximum core clock in MHz: cpufreq's cpuinfo_max_freq when exposed, else /proc/cpuinfo 'cpu MHz'."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as fh:
            return int(fh.read().strip()) / 1000.0
    except (OSError, ValueError):
        pass
    mhz = _cpuinfo_field("cpu MHz")
    try:
        return float(mhz) if mhz else None
    except ValueError:
        return None
