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
