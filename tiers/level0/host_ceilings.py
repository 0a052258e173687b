"""This machine as a platform: nominal peaks from the CPU's features, and measured ceilings.

Why: predictions for CPU rows need a ``host`` platform; nominal numbers from a spec formula and the
ceilings the installed runtimes actually reach show how much of the datasheet is reachable at all.

Nominal peak (TOP/s) = cores × max clock (GHz) × ops/cycle/core / 1000. Cores are the physical cores
among the usable CPUs (unique (physical id, core id) pairs in /proc/cpuinfo; SMT siblings share the
vector units), or the usable logical CPUs with a note where /proc/cpuinfo gives no core ids. Ops/cycle/
core come from the widest x86 unit the CPU reports (2 FMA ports assumed for AVX-512/AVX2, as on Xeon
Gold/Platinum; sources: Intel 64 and IA-32 Architectures Optimization Reference Manual, AMX and VNNI
chapters). Other ISAs (Arm NEON/SVE...) have no sourced entry, so their nominal peaks stay absent, as
they do when the clock cannot be read; the reason is stored in the host file.

=========  ===================================================================
fp32       AVX-512 FMA: 2 ports × 16 lanes × 2 = 64; AVX2 FMA: 32; SSE2: 8
fp16       AVX512-FP16 FMA: 2 × 32 × 2 = 128
bf16       AMX-BF16: 1024; AVX512-BF16 (vdpbf16ps): 2 × 32 × 2 = 128
int8       AMX-INT8: 2048; AVX512-VNNI (vpdpbusd): 2 × 64 × 2 = 256; AVX-VNNI: 128; AVX2: 64
=========  ===================================================================

Measured: the GEMM and convolution kernels of the level-1 kernel sweep (``tiers.micro.kernels``: one-node
ONNX models timed through the project's own backends at their compute boundary) in every precision (fp32,
fp16, bf16, int8, int4) on ONNX Runtime and OpenVINO, each with all threads on one stream and with one stream per
thread (a runtime's kernels do not scale alike: ORT's MatMulInteger ran 1.8x faster as two one-thread
streams than with two threads on one); the ceiling of a datatype is the fastest execution over the
shapes, runtimes and stream counts among the kernels that really executed in it, as the runtime reports
it (ORT's profiler kernels, OpenVINO's runtime model). A ceiling is a maximum, so it is the best run, as
STREAM reports its best: the median is a level-1 figure. A kernel that ran in another precision (an fp16
model upcast to fp32, a bf16/fp16 hint the CPU cannot honour, int4 weights under an int8 or fp32
computation) is listed with what ran and why, and gives no ceiling. ``--quick`` times the shapes at which
the kernel libraries peak (``kernels.GEMM_QUICK``, ``kernels.CONV_QUICK``: a CNN's deep 3x3 convolutions,
which ran faster than any GEMM in fp32 and bf16 on a 2-core EPYC) for less time; the full detect adds
DeepBench's default GEMM list and times every kernel longer. A test holds the zoo's models to these ceilings
(tests/tiers/level0/test_ceilings_hold.py), and benchmarks/ceilings_hold.py prints every ratio. Memory bandwidth: a
STREAM-like triad ``a = b + s·c`` over float64 arrays far larger than the last-level cache, one slice
per thread, counted as STREAM does: 3 × 8 bytes per element (the write-allocate read of ``a`` is not
counted).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mlperf_ext import host
from mlperf_ext.errors import ConfigError
from tiers.level0.platforms import HOST_PLATFORM_FILE

#: ops per cycle per core: (cpu flag, ops) in order of preference, per datatype (x86 only: sourced above)
OPS_PER_CYCLE = {
    "fp32": (("avx512f", 64), ("fma", 32), ("avx2", 32), ("sse2", 8)),
    "fp16": (("avx512_fp16", 128),),
    "bf16": (("amx_bf16", 1024), ("avx512_bf16", 128)),
    "int8": (("amx_int8", 2048), ("avx512_vnni", 256), ("avx_vnni", 128), ("avx2", 64)),
}


@dataclass
class HostSpec:
    cpu_model: str
    cores: int  # physical cores among the usable CPUs, or logical CPUs when unknown (see cores_source)
    clock_mhz: float | None
    simd: list[str]
    ops_per_cycle: dict[str, int]
    nominal_peak_tops: dict[str, float]
    logical_cpus: int = 0  # usable logical CPUs (sched_getaffinity): the threads the kernels run on
    cores_source: str = ""
    notes: list[str] = field(default_factory=list)  # why a nominal number is absent or approximate


@dataclass
class KernelCeiling:
    """One kernel (a GEMM or a convolution) of the kernel sweep as the host file records it."""

    runtime: str
    dtype: str  # the precision asked
    shape: str  # the kernel's shape, e.g. "M=1024 N=700 K=512" (tiers.micro.kernels)
    tops: float | None  # a ceiling of `dtype` (fastest execution): only when the runtime executed that precision
    error: str = ""  # why there is no ceiling (not run, refused, or another precision executed)
    ran_as: str = ""  # what executed, read back from the runtime
    form: str = ""  # the kernel's formulation, e.g. "QDQ MatMul", "MatMulInteger"
    streams: int = 1  # concurrent executions, the threads shared among them
    kind: str = "gemm"  # "gemm" or "conv"


@dataclass
class HostCeilings:
    spec: HostSpec
    kernels: list[KernelCeiling] = field(default_factory=list)
    triad_gbs: float | None = None
    triad_bytes: int = 0

    def measured_peak_tops(self) -> dict[str, float]:
        best: dict[str, float] = {}
        for g in self.kernels:
            if g.tops:
                best[g.dtype] = max(best.get(g.dtype, 0.0), g.tops)
        return best


def physical_cores(cpuinfo: str, usable: set[int]) -> int | None:
    """Unique (physical id, core id) pairs among the usable CPUs in /proc/cpuinfo text; None when any
    usable CPU's block lacks them (many ARM kernels, some VMs)."""
    pairs: set[tuple[str, str]] = set()
    seen: set[int] = set()
    for block in cpuinfo.split("\n\n"):
        fields_ = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields_[key.strip()] = value.strip()
        if "processor" not in fields_ or not fields_["processor"].isdigit():
            continue
        cpu = int(fields_["processor"])
        if cpu not in usable:
            continue
        if "physical id" not in fields_ or "core id" not in fields_:
            return None
        pairs.add((fields_["physical id"], fields_["core id"]))
        seen.add(cpu)
    return len(pairs) if pairs and seen == usable else None


def host_spec(cpu_model: str, logical_cpus: int, physical: int | None, clock_mhz: float | None,
              flags: set[str], simd: list[str]) -> HostSpec:
    """The nominal peaks from what was detected (pure: tests pass a hand-made machine)."""
    notes = []
    if physical:
        cores, source = physical, "physical cores: unique (physical id, core id) of usable CPUs in /proc/cpuinfo"
    else:
        cores, source = logical_cpus, "logical CPUs: /proc/cpuinfo gives no core ids (SMT siblings counted)"
        notes.append("nominal peaks count logical CPUs, an overestimate where SMT is on")
    opc: dict[str, int] = {}
    for dt, table in OPS_PER_CYCLE.items():
        for flag, ops in table:
            if flag in flags:
                opc[dt] = ops
                break
    if not opc:
        notes.append("no sourced ops/cycle for this CPU's SIMD units (x86 table only): nominal peaks absent")
    if clock_mhz:
        peaks = {dt: cores * clock_mhz / 1000 * ops / 1000 for dt, ops in opc.items()}
    else:
        peaks = {}
        notes.append("CPU clock not readable (no cpufreq cpuinfo_max_freq, no 'cpu MHz'): nominal peaks absent")
    return HostSpec(cpu_model, cores, clock_mhz, simd, opc, peaks, logical_cpus, source, notes)


def detect() -> HostSpec:
    """CPU model, usable cores, clock, SIMD features and the nominal peaks they imply."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return host_spec(host.cpu_model(), len(usable), physical_cores(cpuinfo, set(usable)), host.cpu_clock_mhz(),
                     host.cpu_flags(), host.cpu_simd_features())


def kernel_ceilings(shapes: Sequence, threads: int | None = None, budget_s: float = 0.3,
                    runtimes: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
                    streams: Sequence[int] = (1,)) -> list[KernelCeiling]:
    """The kernel sweep's GEMMs and convolutions of `shapes` as host-file rows; a runtime that is not installed
    is one row (dtype "-") with the reason."""
    from tiers.micro import kernels  # level 1's sweep: imported only when measuring

    result = kernels.sweep(shapes, kernels.RUNTIMES if runtimes is None else runtimes,
                           kernels.PRECISIONS if precisions is None else precisions, threads, budget_s,
                           streams=streams)
    rows = [KernelCeiling(r.runtime, r.precision, r.shape, r.ceiling_tops, r.reason, r.executed, r.form, r.streams,
                          r.kind) for r in result.results]
    rows += [KernelCeiling(runtime, "-", "", None, why) for runtime, why in result.unavailable.items()]
    return rows


def triad_bandwidth(n_elements: int, threads: int, repeats: int = 3) -> float:
    """STREAM-like triad GB/s (best of repeats), 24 bytes counted per element."""
    a = np.zeros(n_elements)
    b = np.ones(n_elements)
    c = np.full(n_elements, 2.0)
    s = 3.0
    chunk = 1 << 16  # 512 KB temporaries stay in L2, so only a, b, c move through memory
    bounds = np.linspace(0, n_elements, threads + 1, dtype=np.int64)

    def work(lo: int, hi: int) -> None:
        tmp = np.empty(chunk)
        for i in range(lo, hi, chunk):
            j = min(i + chunk, hi)
            t = tmp[: j - i]
            np.multiply(c[i:j], s, out=t)
            np.add(b[i:j], t, out=a[i:j])

    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats + 1):  # the first pass faults the pages in
            t0 = time.perf_counter()
            list(pool.map(lambda r: work(*r), zip(bounds[:-1], bounds[1:], strict=True)))
            dt = time.perf_counter() - t0
            best = max(best, 3 * 8 * n_elements / dt / 1e9)
    if not np.allclose(a[:: max(1, n_elements // 7)], 1.0 + s * 2.0):
        raise RuntimeError("triad produced wrong values")
    return best


def ceiling_shapes(quick: bool) -> tuple:
    """The kernels a ceiling is taken over: the GEMMs and convolutions at which the kernel libraries peak, and
    for the full detect DeepBench's default GEMMs too."""
    from tiers.micro import kernels  # level 1's sweep: imported only when measuring

    peak = kernels.GEMM_QUICK + kernels.CONV_QUICK
    return peak if quick else tuple(dict.fromkeys(peak + kernels.GEMM_DEFAULT))


def measure(quick: bool = True, threads: int | None = None) -> HostCeilings:
    """Detect the host and measure kernel and triad ceilings (quick: about 25 seconds in all on 2 cores)."""
    spec = detect()
    threads = threads or spec.logical_cpus or spec.cores
    res = HostCeilings(spec)
    res.kernels = kernel_ceilings(ceiling_shapes(quick), threads, 0.15 if quick else 0.5, streams=(1, threads) if threads > 1 else (1,))
    # 0.8 GB (quick) or 1.6 GB in all: above the LLC a VM reports (up to hundreds of MB)
    res.triad_bytes = 3 * 8 * ((1 << 25) if quick else (1 << 26))
    res.triad_gbs = triad_bandwidth(res.triad_bytes // 24, threads, repeats=2 if quick else 5)
    return res


def host_platform_entry(c: HostCeilings) -> dict:
    """The ``host`` platform in catalog format: base = nominal peaks, mode ``measured`` = measured ceilings.

    The measured mode replaces the peaks wholesale (``replace_peak_tops``): a datatype no runtime ran is
    absent there (no cell, or it runs on its carrier), never a nominal number in disguise. Without
    nominal peaks (clock unreadable, no sourced ops/cycle) there is no ``nominal`` mode and the base holds
    the measured ceilings; ``nominal_formula.notes`` says why. No nominal DRAM bandwidth is readable from
    inside a VM, so the base bandwidth is the measured triad too.
    """
    measured = {k: round(v, 4) for k, v in c.measured_peak_tops().items() if round(v, 4) > 0}
    if not measured:
        errors = "; ".join(f"{g.runtime} {g.dtype}: {g.error}" for g in c.kernels if g.error)[:300] or "none ran"
        raise ConfigError(f"no kernel ran on this host ({errors}), so there are no measured ceilings to write; "
                          "fix: check that onnxruntime (pip install onnxruntime) runs on this CPU and retry "
                          "'mlperf-ext platforms detect'")
    if not c.triad_gbs or round(c.triad_gbs, 2) <= 0:
        raise ConfigError("the memory-bandwidth triad gave no result; fix: retry 'mlperf-ext platforms detect' "
                          "on an idle machine")
    bandwidth = round(c.triad_gbs, 2)
    nominal = {k: round(v, 4) for k, v in c.spec.nominal_peak_tops.items() if round(v, 4) > 0}
    measured_mode = {"peak_tops": measured, "replace_peak_tops": True, "memory_bandwidth_gbs": bandwidth}
    modes = {"nominal": {}, "measured": measured_mode} if nominal else {"measured": measured_mode}
    notes = list(c.spec.notes) + ([] if nominal else ["no nominal mode: the base holds the measured ceilings"])
    return {
        "name": "host", "kind": "cpu",
        "description": f"{c.spec.cpu_model}, {c.spec.cores} cores ({c.spec.cores_source}), "
                       f"{c.spec.logical_cpus} usable logical CPUs, {c.spec.clock_mhz} MHz, "
                       f"SIMD: {' '.join(c.spec.simd)}",
        "peak_tops": nominal or measured,
        "memory_bandwidth_gbs": bandwidth,
        "modes": modes,
        "nominal_formula": {"cores": c.spec.cores, "cores_source": c.spec.cores_source,
                            "clock_mhz": c.spec.clock_mhz, "ops_per_cycle": c.spec.ops_per_cycle,
                            "formula": "cores x clock_GHz x ops_per_cycle / 1000 (TOP/s)",
                            **({"notes": notes} if notes else {})},
        "measured_with": {"kernels": [{"kind": g.kind, "runtime": g.runtime, "dtype": g.dtype, "shape": g.shape,
                                       **({"form": g.form} if g.form else {}), "streams": g.streams,
                                       "tops": None if g.tops is None else round(g.tops, 4),
                                       **({"ran_as": g.ran_as} if g.ran_as else {}),
                                       **({"error": g.error} if g.error else {})} for g in c.kernels],
                          "triad": {"bytes_per_iteration": c.triad_bytes, "gbs": bandwidth}},
        "source": "mlperf-ext platforms detect: nominal from CPU flags (docs/level0.md), measured on this machine: "
                  "GEMM and convolution kernels of tiers.micro.kernels, STREAM-like triad",
    }


def write_host_platform(c: HostCeilings, workdir: str | Path) -> Path:
    """Write the host file atomically; raises ConfigError (nothing written) when there is nothing to write."""
    entry = host_platform_entry(c)
    path = Path(workdir) / HOST_PLATFORM_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"platforms": [entry]}, sort_keys=False))
    tmp.replace(path)
    return path
