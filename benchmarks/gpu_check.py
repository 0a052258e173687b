"""The one GPU check: the `gpu` tests, the torch backend (benchmarks/gpu_torch.py: the MLP and ResNet-50 in
fp32/tf32/fp16/bf16, all four scenarios, SUT/native, NVML, harness capacity, level-0 efficiency), then ResNet-50
FP32 / FP16 / INT8 on TensorRT in all four scenarios through the real CLI, with the harness measured against a
plain TensorRT loop in the same run; each part is skipped, saying why, where its packages are missing.

What it prints (and writes to $OUT/gpu_check.log and $OUT/gpu_check.json):
1. the host: nvidia-smi, the versions of tensorrt, cuda-python, onnxruntime, nvidia-ml-py, LoadGen;
2. `pytest -m gpu` (the tests that skip on machines without a GPU), its summary line;
3. per variant and scenario, `mlperf-ext run ... --backend tensorrt --device cuda` (profile quick, short
   runs): system and compute figures, what executed (read back from the engine), the engine cache;
4. SUT/native: the SUT's system samples/s over a plain loop on the same engine at the same batch and
   streams (pinned copy, H2D, execute_async_v3, D2H, top-1; one thread per stream; no LoadGen, no adapter),
   both warmed up the same way (WARMUP_S of the same call), goal >= 0.95. Server's throughput is the
   target the search found, not a capacity, so its ratio is shown but not judged;
5. compute: the SUT's compute samples/s next to a trtexec-style measurement of the same engine file:
   trtexec itself (--loadEngine, --noDataTransfers) when it is on PATH, else this script's own loop of CUDA
   events around execute_async_v3 on resident buffers; the output says which;
6. power: an Offline FP32 run with --power-meter nvml:0 (samples/J), when mlperf_ext.power.nvml exists.

The zoo's INT8 recipe (ONNX Runtime QDQ with uint8, asymmetric activations) is refused by the TensorRT
backend (non-zero zero points); that refusal is run and shown, and the INT8 figures come from a symmetric
signed-int8 QDQ variant this script quantizes from the zoo's FP32 model with ONNX Runtime (said so in the
output).

Install first (the script installs nothing):   pip install -e ".[tensorrt,gpu,test]"
On a machine that reaches no package index, carry the missing wheels instead (docs/gpu.md says how).
Run:   PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py            (writes to $OUT, else ./gpu_check_out)
Each section checks what it needs and says "skipped: ..." instead of failing the rest; a budget
(--budget-s, default 540 s) stops starting new sections in time, and says what it did not run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_torch  # noqa: E402  (after the path)
from gpu_common import Budget, Report, _fmt, row_figures, run_cmd  # noqa: E402

SCENARIOS = ("Offline", "SingleStream", "MultiStream", "Server")
VARIANTS = ("fp32", "fp16", "int8")
WARMUP_S = 1.0
GOAL = 0.95
INPUT_NAME = "input"  # the zoo's standard architectures (mlperf_ext/zoo/archs.py)
CALIBRATION_SAMPLES = 16


def missing_modules() -> dict[str, str]:
    """Import name -> what is missing, for everything the sections need."""
    need = {"tensorrt": "tensorrt (extra 'tensorrt')", "cuda.bindings": "cuda-python (extra 'tensorrt')",
            "mlperf_loadgen": "mlcommons-loadgen (core)", "onnxruntime": "onnxruntime (core)",
            "pytest": "pytest (extra 'test')", "pynvml": "nvidia-ml-py (extra 'gpu')", "torch": "torch (extra 'torch')"}
    out = {}
    for module, what in need.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out[module] = what
    return out


# -- 1. host -----------------------------------------------------------------------------------------
def host_section(rep: Report) -> dict[str, str]:
    from importlib import metadata

    rep.say("== host")
    code, text = run_cmd(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                          "--format=csv,noheader"], 30)
    rep.say(f"nvidia-smi: {text.strip() if code == 0 else f'not available ({text.strip()[:200]})'}")
    rep.put("host", "nvidia_smi", text.strip() if code == 0 else None)
    versions = {}
    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "cuda-python", "cuda-bindings", "onnxruntime",
                 "onnxruntime-gpu", "nvidia-ml-py", "mlcommons-loadgen", "numpy", "onnx"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    rep.say("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    trtexec = shutil.which("trtexec")
    rep.say(f"trtexec: {trtexec or 'not on PATH'}")
    missing = missing_modules()
    for module, what in missing.items():
        rep.say(f"missing: {what} (import {module})")
    rep.put("host", "versions", versions)
    rep.put("host", "trtexec", trtexec)
    rep.put("host", "missing", missing)
    rep.put("host", "python", sys.version.split()[0])
    return missing


# -- 2. gpu tests ------------------------------------------------------------------------------------
def gpu_test_files() -> list[str]:
    """The test files that mark tests `gpu` (collecting only them: a module another extra lacks here cannot
    stop the GPU tests from running)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if "mark.gpu" in p.read_text(errors="replace"))


def pytest_section(rep: Report, budget: Budget, timeout: float) -> None:
    files = gpu_test_files()
    rep.say(f"== pytest -m gpu {' '.join(files)}")
    code, text = run_cmd([sys.executable, "-m", "pytest", "-m", "gpu", "-rs", "-q", "-p", "no:cacheprovider", *files],
                         min(timeout, max(budget.left() - 60, 30)))
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    summary = lines[-1] if lines else "(no output)"
    for line in lines[-25:]:
        rep.say("  " + line)
    rep.say(f"pytest -m gpu: exit {code}: {summary}")
    rep.put("pytest_gpu", "exit", code)
    rep.put("pytest_gpu", "summary", summary)
    rep.put("pytest_gpu", "tail", lines[-40:])


# -- models and data ---------------------------------------------------------------------------------
def symmetric_int8(fp32_path: Path, out: Path) -> Path:
    """Signed int8 QDQ with symmetric activations and weights (zero points 0), which TensorRT imports,
    calibrated as the zoo calibrates ResNet-50 (16 random N(0,1) images: speed only). Biases stay fp32
    (QuantizeBias off): TensorRT's quantized types are INT8, FP8, INT4 and FP4, not ORT's int32 biases."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mlperf_ext.zoo.archs import calibration_inputs

    calib = calibration_inputs(CALIBRATION_SAMPLES)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{INPUT_NAME: calib[i:i + 4]} for i in range(0, len(calib), 4)])

        def get_next(self):
            return next(self._it, None)

    pre = out.with_name(out.stem + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    pre.unlink(missing_ok=True)
    return out


def prepare(rep: Report, work: Path, variants: list[str], samples: int) -> tuple[dict[str, Path], Path]:
    """Zoo ResNet-50 variants (plus the symmetric INT8), and a .npy dataset of random images."""
    import numpy as np

    from mlperf_ext.zoo.registry import build

    rep.say("== models and data")
    models_dir = work / "models"
    names = [f"resnet50-{v}" for v in variants]
    start = time.perf_counter()
    paths = dict(zip(variants, build(names, models_dir, progress=lambda m: rep.say("  zoo: " + m))))
    if "int8" in variants:
        paths["int8-zoo"] = paths.pop("int8")
        sym = models_dir / "resnet50-int8-sym.onnx"
        if not sym.is_file():
            symmetric_int8(paths["fp32"] if "fp32" in paths else build(["resnet50-fp32"], models_dir)[0], sym)
        paths["int8"] = sym
        rep.say(f"  int8: TensorRT runs {sym.name} (symmetric signed int8 QDQ built here from the zoo's fp32); "
                f"the zoo's {paths['int8-zoo'].name} is run to show its refusal")
    rep.say(f"  models ready in {time.perf_counter() - start:.1f} s")
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "samples.npy").is_file():
        x = np.random.default_rng(0).standard_normal((samples, 3, 224, 224), dtype=np.float32)
        np.save(data_dir / "samples.npy", x)
    rep.put("models", "paths", {k: str(v) for k, v in paths.items()})
    return paths, data_dir


# -- 3. the SUT through the CLI ------------------------------------------------------------------------
def backend_ref() -> str:
    from sut.registry import names

    return "tensorrt" if "tensorrt" in names() else "sut.tensorrt:TensorRtBackend"


def cli_run(model: Path, data: Path, scenario: str, batch: int, streams: int, workdir: Path, timeout: float,
            env: dict, power: str | None = None, backend: str | None = None,
            device: str = "cuda") -> tuple[int, str, object]:
    """One point through `mlperf-ext run`; returns (exit, output tail, the stored PointResult or None)."""
    from mlperf_ext.store import ResultsStore
    from tiers.runner.layout import store_path

    cmd = [sys.executable, "-m", "mlperf_ext.cli", "run", "--model", str(model), "--dataset", str(data),
           "--backend", backend or backend_ref(), "--device", device, "--scenario", scenario, "--profile", "quick",
           "--workdir", str(workdir), "--timeout", str(int(timeout)), "--force"]
    if scenario != "SingleStream":
        cmd += ["--batch", str(batch), "--streams", str(streams)]
    if power:
        cmd += ["--power-meter", power]
    code, text = run_cmd(cmd, timeout + 60, env)
    results = ResultsStore(store_path(workdir)).results() if store_path(workdir).is_file() else []
    return code, text, results[-1] if results else None


def zoo_int8_refusal(rep: Report, models: dict[str, Path], data: Path, work: Path, batch: int, streams: int,
                     env: dict, timeout: float) -> None:
    """The zoo's INT8 (asymmetric QDQ) through the CLI: a refused row, with the backend's reason."""
    if "int8-zoo" not in models:
        return
    code, text, result = cli_run(models["int8-zoo"], data, "Offline", batch, streams, work / "runs" / "int8-zoo",
                                 timeout, env)
    fig = row_figures(result)
    rep.say(f"  zoo int8 (asymmetric QDQ), Offline: {fig['status']}: {fig.get('error') or text.strip()[-300:]}")
    rep.put("sut", "int8-zoo Offline", fig)


def sut_section(rep: Report, budget: Budget, models: dict[str, Path], data: Path, work: Path, batch: int,
                streams: int, scenario: str, env: dict, timeout: float) -> dict:
    """Every variant in one scenario through `mlperf-ext run`."""
    rows: dict = {}
    for variant in [v for v in VARIANTS if v in models]:
        need = 120 if scenario == "Server" else 60
        if not budget.allows(need):
            rep.skip(f"SUT {variant} {scenario}", f"budget: {budget.left():.0f} s left, about {need} s needed")
            continue
        start = time.perf_counter()
        code, text, result = cli_run(models[variant], data, scenario, batch, streams,
                                     work / "runs" / f"{variant}-{scenario}", timeout, env)
        fig = row_figures(result)
        fig["exit"], fig["wall_s"] = code, round(time.perf_counter() - start, 1)
        if fig["status"] != "ok":
            fig["output_tail"] = text.strip().splitlines()[-15:]
        rows[(variant, scenario)] = fig
        rep.put("sut", f"{variant} {scenario}", fig)
        rep.say(f"  {variant:<5} {scenario:<12} {fig['status']:<8} system {_fmt(fig['sys_throughput'])}/s "
                f"(p90 {_fmt(fig['sys_lat_p90_ms'], '.3f')} ms)  compute {_fmt(fig['compute_throughput'])}/s "
                f"(mean {_fmt(fig['compute_lat_mean_ms'], '.3f')} ms)  ran: {fig['precision']}  "
                f"cache hit: {(fig['engine_cache'] or {}).get('hit')}  [{fig['wall_s']} s]")
        if fig["status"] != "ok":
            for line in fig.get("output_tail", [])[-6:]:
                rep.say("      " + line)
    return rows


# -- 4./5. native loops on the same engine file --------------------------------------------------------
class Engine:
    """A deserialized engine with `streams` contexts, CUDA streams, pinned and device buffers: the plain way."""

    def __init__(self, path: Path, batch: int, streams: int):
        import ctypes

        import numpy as np
        import tensorrt as trt
        from cuda.bindings import runtime as rt

        def ok(result):
            err, *values = result
            if int(err) != 0:
                raise RuntimeError(f"CUDA error {err}")
            return values[0] if len(values) == 1 else (values or None)

        self.rt, self.ok, self.batch = rt, ok, batch
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{path} does not deserialize")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.slots = []
        for _ in range(streams):
            ctx = self.engine.create_execution_context()
            shape = tuple(self.engine.get_tensor_shape(self.input))
            ctx.set_input_shape(self.input, (batch, *shape[1:]))
            stream = ok(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking))
            bufs = {}
            for name in names:
                shp = tuple(int(d) for d in ctx.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
                nbytes = int(np.prod(shp)) * dtype.itemsize
                host = int(ok(rt.cudaMallocHost(nbytes)))
                dev = int(ok(rt.cudaMalloc(nbytes)))
                view = np.frombuffer((ctypes.c_byte * nbytes).from_address(host), dtype=dtype).reshape(shp)
                ctx.set_tensor_address(name, dev)
                bufs[name] = (host, dev, nbytes, view)
            out = next(n for n in names if n != self.input)
            self.slots.append({"ctx": ctx, "stream": stream, "bufs": bufs, "out": out,
                               "start": ok(rt.cudaEventCreate()), "end": ok(rt.cudaEventCreate())})

    def system(self, k: int, x):
        """Pinned copy, H2D, execute, D2H, sync, top-1: what the SUT's system path does per batch."""
        rt, ok, s = self.rt, self.ok, self.slots[k]
        host, dev, nbytes, view = s["bufs"][self.input]
        view[:] = x
        ok(rt.cudaMemcpyAsync(dev, host, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, s["stream"]))
        if not s["ctx"].execute_async_v3(int(s["stream"])):
            raise RuntimeError("execute_async_v3 failed")
        ohost, odev, onbytes, oview = s["bufs"][s["out"]]
        ok(rt.cudaMemcpyAsync(ohost, odev, onbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, s["stream"]))
        ok(rt.cudaStreamSynchronize(s["stream"]))
        return oview.reshape(oview.shape[0], -1).argmax(axis=1)

    def gpu_step(self, k: int) -> float:
        """CUDA events around execute_async_v3 on resident buffers: seconds of GPU compute time."""
        rt, ok, s = self.rt, self.ok, self.slots[k]
        ok(rt.cudaEventRecord(s["start"], s["stream"]))
        s["ctx"].execute_async_v3(int(s["stream"]))
        ok(rt.cudaEventRecord(s["end"], s["stream"]))
        ok(rt.cudaEventSynchronize(s["end"]))
        return ok(rt.cudaEventElapsedTime(s["start"], s["end"])) * 1e-3

    def close(self) -> None:
        rt = self.rt
        for s in self.slots:
            rt.cudaStreamSynchronize(s["stream"])
            s["ctx"] = None
            for host, dev, _n, _v in s["bufs"].values():
                rt.cudaFreeHost(host)
                rt.cudaFree(dev)
            rt.cudaEventDestroy(s["start"])
            rt.cudaEventDestroy(s["end"])
            rt.cudaStreamDestroy(s["stream"])
        self.slots, self.engine = [], None


def _threads(fn, streams: int, seconds: float) -> tuple[list[list], float]:
    """fn(k) repeated on `streams` threads for `seconds` after a common start; (results per stream, wall)."""
    out: list[list] = [[] for _ in range(streams)]
    barrier = threading.Barrier(streams + 1)

    def work(k: int) -> None:
        barrier.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            out[k].append(fn(k))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return out, time.perf_counter() - start


def native_system(engine_path: Path, data: Path, batch: int, streams: int, seconds: float) -> dict:
    import numpy as np

    x = np.load(data / "samples.npy", mmap_mode="r")
    batches = [np.ascontiguousarray(x[i:i + batch]) for i in range(0, len(x) - batch + 1, batch)]
    eng = Engine(engine_path, batch, streams)
    try:
        counters = [0] * streams

        def one(k: int):
            counters[k] += 1
            return eng.system(k, batches[counters[k] % len(batches)])

        _threads(one, streams, WARMUP_S)
        done, wall = _threads(one, streams, seconds)
    finally:
        eng.close()
    n = sum(len(d) for d in done)
    return {"samples_per_s": batch * n / wall, "executions": n, "wall_s": wall}


def event_loop(engine_path: Path, data: Path, batch: int, streams: int, seconds: float) -> dict:
    """GPU-event compute timing on the same engine, every stream at once (as the SUT's compute timing)."""
    import numpy as np

    x = np.ascontiguousarray(np.load(data / "samples.npy", mmap_mode="r")[:batch])
    eng = Engine(engine_path, batch, streams)
    try:
        for k in range(streams):
            eng.system(k, x)  # the batch is now resident in every stream's input buffer
        _threads(eng.gpu_step, streams, WARMUP_S)
        times, wall = _threads(eng.gpu_step, streams, seconds)
    finally:
        eng.close()
    flat = [t for part in times for t in part]
    fps = batch / statistics.fmean(flat) if streams == 1 else batch * len(flat) / wall
    return {"method": "own loop: CUDA events around execute_async_v3 (no data transfers)", "samples_per_s": fps,
            "gpu_ms_mean": 1e3 * statistics.fmean(flat), "gpu_ms_p50": 1e3 * statistics.median(flat),
            "executions": len(flat)}


def trtexec_run(trtexec: str, engine_path: Path, batch: int, streams: int, seconds: float) -> dict:
    cmd = [trtexec, f"--loadEngine={engine_path}", f"--shapes={INPUT_NAME}:{batch}x3x224x224",
           f"--infStreams={streams}", "--noDataTransfers", f"--warmUp={int(WARMUP_S * 1000)}",
           f"--duration={max(1, int(seconds))}"]
    code, text = run_cmd(cmd, seconds + 120)
    qps = re.search(r"Throughput:\s*([\d.]+)\s*qps", text)
    gpu = re.search(r"GPU Compute Time:.*?mean = ([\d.]+) ms", text)
    if code != 0 or not qps:
        raise RuntimeError(f"trtexec exit {code}: {text.strip().splitlines()[-1:] or ['no output']}")
    return {"method": f"trtexec {' '.join(cmd[1:])}", "samples_per_s": float(qps.group(1)) * batch,
            "gpu_ms_mean": float(gpu.group(1)) if gpu else None}


def engine_file(fig: dict) -> Path | None:
    cache = fig.get("engine_cache") or {}
    if cache.get("dir") and cache.get("key"):
        path = Path(cache["dir"]) / f"{cache['key']}.engine"
        return path if path.is_file() else None
    return None


def native_section(rep: Report, budget: Budget, rows: dict, data: Path, seconds: float) -> None:
    rep.say("  -- SUT / native (system) and compute vs trtexec-style, on the same engine files")
    trtexec = shutil.which("trtexec")
    for (variant, scenario), fig in rows.items():
        if fig.get("status") != "ok":
            continue
        if not budget.allows(4 * seconds + 20):
            rep.skip(f"native {variant} {scenario}", f"budget: {budget.left():.0f} s left")
            continue
        path = engine_file(fig)
        if path is None:
            rep.skip(f"native {variant} {scenario}", "the row names no engine file in the cache")
            continue
        batch = fig.get("batch") or 1
        # MultiStream and SingleStream issue one query at a time: their plain loop runs one stream
        streams = (fig.get("streams") or 1) if scenario in ("Offline", "Server") else 1
        entry: dict = {"engine": str(path), "batch": batch, "streams": streams}
        try:
            entry["native"] = native_system(path, data, batch, streams, seconds)
            ratio = (fig["sys_throughput"] or 0) / entry["native"]["samples_per_s"]
            entry["sut_over_native"] = ratio
            judged = scenario != "Server"
            verdict = ("OK" if ratio >= GOAL else "BELOW GOAL") if judged else "not judged (Server: a target)"
            rep.say(f"  {variant:<5} {scenario:<12} batch {batch} streams {streams}: SUT {_fmt(fig['sys_throughput'])}"
                    f"/s, native {_fmt(entry['native']['samples_per_s'])}/s, ratio {ratio:.3f} (goal >= {GOAL}) "
                    f"{verdict}")
        except Exception as exc:  # noqa: BLE001 - report and go on with the next one
            entry["native_error"] = f"{type(exc).__name__}: {exc}"
            rep.say(f"  {variant} {scenario}: native loop failed: {entry['native_error']}")
        comp_streams = fig.get("streams") or 1
        try:
            style = (trtexec_run(trtexec, path, batch, comp_streams, seconds) if trtexec
                     else event_loop(path, data, batch, comp_streams, seconds))
        except Exception as exc:  # noqa: BLE001 - trtexec of another version cannot load the engine, ...
            style = {"error": f"{type(exc).__name__}: {exc}"}
            if trtexec:
                try:
                    style = {**event_loop(path, data, batch, comp_streams, seconds), "trtexec_error": style["error"]}
                except Exception as exc2:  # noqa: BLE001
                    style = {"error": f"{style['error']}; own loop: {exc2}"}
        entry["trtexec_style"] = style
        if "samples_per_s" in style and fig.get("compute_throughput"):
            entry["compute_over_trtexec_style"] = fig["compute_throughput"] / style["samples_per_s"]
            rep.say(f"  {'':<5} {'':<12} compute: SUT {_fmt(fig['compute_throughput'])}/s vs "
                    f"{_fmt(style['samples_per_s'])}/s ({style['method'][:60]}), ratio "
                    f"{entry['compute_over_trtexec_style']:.3f}; GPU ms mean SUT {_fmt(fig['compute_lat_mean_ms'], '.3f')}"
                    f" vs {_fmt(style.get('gpu_ms_mean'), '.3f')}")
        else:
            rep.say(f"  {'':<5} {'':<12} compute comparison failed: {style.get('error')}")
        rep.put("native", f"{variant} {scenario}", entry)


# -- 6. power ------------------------------------------------------------------------------------------
def power_section(rep: Report, budget: Budget, models: dict, data: Path, work: Path, batch: int, streams: int,
                  env: dict, timeout: float) -> None:
    rep.say("  -- power: Offline fp32 with --power-meter nvml:0")
    if importlib.util.find_spec("mlperf_ext.power.nvml") is None:
        rep.skip("power", "no NVML meter module (mlperf_ext.power.nvml)")
        return
    if "fp32" not in models or not budget.allows(60):
        rep.skip("power", f"needs the fp32 model and about 60 s (left: {budget.left():.0f} s)")
        return
    code, text, result = cli_run(models["fp32"], data, "Offline", batch, streams, work / "runs" / "fp32-power",
                                 timeout, env, power="nvml:0")
    fig = row_figures(result)
    rep.put("power", "fp32 Offline nvml", fig)
    if fig["status"] != "ok":
        rep.say(f"  {fig['status']}: {fig.get('error') or text.strip()[-300:]}")
        return
    rep.say(f"  {_fmt(fig['power_samples_per_j'], ',.2f')} samples/J (average {_fmt(fig['power_avg_w'])} W, idle "
            f"{_fmt(fig['power_idle_w'])} W; system {_fmt(fig['sys_throughput'])}/s); {fig['power_note']}")


# -- main --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Install: pip install -e \".[tensorrt,gpu,test]\"; results go to $OUT.")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check_out"),
                        help="where gpu_check.log and gpu_check.json go (default: $OUT, else ./gpu_check_out)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlperf-ext-gpu-check",
                        help="models, data, engine cache and run directories (kept out of $OUT; default: "
                             "mlperf-ext-gpu-check in the system's temporary directory)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="stop starting sections after this (540)")
    parser.add_argument("--batch", type=int, default=8, help="batch for MultiStream, Server, Offline (8)")
    parser.add_argument("--streams", type=int, default=2, help="streams for MultiStream, Server, Offline (2)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds of each native loop (2)")
    parser.add_argument("--samples", type=int, default=256, help="random 3x224x224 images in the dataset (256)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="resnet50 variants (fp32,fp16,int8)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="LoadGen scenarios (all four)")
    parser.add_argument("--point-timeout", type=float, default=240.0, help="seconds per CLI point (240)")
    parser.add_argument("--skip-pytest", action="store_true", help="do not run pytest -m gpu")
    parser.add_argument("--torch-budget-s", type=float, default=330.0,
                        help="seconds of the budget the torch sections may use (330); TensorRT's get the rest")
    gpu_torch.add_arguments(parser)
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    bad = [v for v in args.variants if v not in VARIANTS] + [s for s in args.scenarios if s not in SCENARIOS]
    if bad:
        parser.error(f"unknown variant or scenario: {', '.join(bad)}")
    gpu_torch.check_arguments(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rep, budget = Report(args.out), Budget(args.budget_s)
    rep.data["args"] = {k: str(v) for k, v in vars(args).items()}
    missing = host_section(rep)
    if not args.skip_pytest:
        pytest_section(rep, budget, timeout=240)
    if "torch" in missing or "mlperf_loadgen" in missing:
        rep.skip("torch sections", "missing " + ", ".join(missing[m] for m in ("torch", "mlperf_loadgen") if m in missing))
    else:
        gpu_torch.run(rep, Budget(min(args.torch_budget_s, budget.left())), args)
    needs = [m for m in ("tensorrt", "cuda.bindings", "mlperf_loadgen", "onnxruntime") if m in missing]
    if needs:
        rep.skip("TensorRT's SUT, native and power sections", "missing " + ", ".join(missing[m] for m in needs))
        rep.save()
        return 1
    env = dict(os.environ, MLPERF_EXT_TENSORRT_CACHE=str(args.work / "engines"), PYTHONUNBUFFERED="1")
    os.environ["MLPERF_EXT_TENSORRT_CACHE"] = env["MLPERF_EXT_TENSORRT_CACHE"]
    models, data = prepare(rep, args.work, args.variants, args.samples)
    # Offline first (every variant, its native comparison, then power), then the other scenarios
    for scenario in sorted(args.scenarios, key=SCENARIOS.index):
        rep.say(f"== SUT: {scenario}, mlperf-ext run --backend tensorrt --device cuda (profile quick)")
        if scenario == "Offline":
            zoo_int8_refusal(rep, models, data, args.work, args.batch, args.streams, env, args.point_timeout)
        rows = sut_section(rep, budget, models, data, args.work, args.batch, args.streams, scenario, env,
                           args.point_timeout)
        native_section(rep, budget, rows, data, args.seconds)
        if scenario == "Offline":
            power_section(rep, budget, models, data, args.work, args.batch, args.streams, env, args.point_timeout)
    rep.say(f"== done; {budget.left():.0f} s of the budget left; log {rep.log_path}, figures {rep.json_path}")
    rep.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
