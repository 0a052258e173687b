"""Does the harness slow the runtime? Offline samples/s through the SUT (LoadGen + adapter + backend)
divided by a plain loop over a runtime session with the same model, batch and threads.

Models: an MLP (784-1024-1024-1024-10) and ResNet-50 v1.5 (random weights: speed only), on ONNX
Runtime, OpenVINO and torch (`--backends`; torch runs the MLP as a torch.export program holding the same
weights, and ResNet-50 only where onnx2torch imports). Three variants, each measurement in its own process (LoadGen runs one test per
process), their order rotating from round to round:
  - `sut`: the harness (the objects tiers.runner.child wires together);
  - `bare`: the same plain runtime call inside the cheapest Python LoadGen SUT (the batches run in the
    issue callback, completed through reused responses): what LoadGen itself costs any Python SUT;
  - `loop`: the plain runtime call in a loop, no LoadGen.
Printed: each variant's median, SUT/loop (goal >= 0.95) and SUT/bare as ratios of medians, and the
range of SUT/loop paired within each round (the host's noise: on a small shared VM one round's pair can
differ by 10 % either way). Every variant warms up the same way (WARMUP_S seconds of the same batches
through its own call) before timing, and a LoadGen run judged INVALID stops the script.

Usage: python benchmarks/backend_overhead.py [--rounds 5] [--threads 2] [--seconds 3] [--only mlp]
       [--backends onnxruntime,openvino,torch]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {"mlp": {"batch": 64, "samples": 1024}, "resnet50": {"batch": 8, "samples": 64}}
WARMUP_S = 0.5


def warm_up(step, batches) -> float:
    """Run `step` over the batches for WARMUP_S; returns the samples/s it reached (a sizing hint only)."""
    done, k, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < WARMUP_S:
        done += len(step(batches[k % len(batches)]))
        k += 1
    return done / (time.perf_counter() - start)


def _mlp(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    sizes = [784, 1024, 1024, 1024, 10]
    nodes, inits, x = [], [], "input"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        inits += [numpy_helper.from_array((rng.standard_normal((n_in, n_out)) * 0.03).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{i}")]
        out = "logits" if i == len(sizes) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [out if out == "logits" else f"g{i}"]))
        if out != "logits":
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        x = out
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 784])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def prepare(directory: Path) -> dict[str, Path]:
    import onnx

    from mlperf_ext.zoo.archs import build_resnet50

    paths = {"mlp": _mlp(directory / "mlp.onnx"), "resnet50": directory / "resnet50.onnx"}
    onnx.save(build_resnet50(seed=0), paths["resnet50"])
    return paths


def torch_program(onnx_mlp: Path) -> Path:
    """The ONNX MLP as a torch.export program: nn.Linear layers holding the same weights (Gemm's W is in x out)."""
    import onnx
    import torch
    from onnx import numpy_helper

    from sut.torch_model import export_program

    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in onnx.load(onnx_mlp).graph.initializer}
    layers = []
    for i in range(len(weights) // 2):
        linear = torch.nn.Linear(*weights[f"w{i}"].shape)
        linear.weight.data, linear.bias.data = weights[f"w{i}"].T.contiguous(), weights[f"b{i}"]
        layers += [linear, torch.nn.ReLU()]
    module = torch.nn.Sequential(*layers[:-1]).eval()
    return export_program(module, torch.zeros(2, 784), onnx_mlp.with_stem(f"{onnx_mlp.stem}-torch").with_suffix(".pt2"),
                          onnx_twin=onnx_mlp)


def backend_paths(backend: str, paths: dict[str, Path]) -> dict[str, Path]:
    """The model files a backend measures: torch reads the MLP as a program, ResNet-50's ONNX where onnx2torch
    imports (it is skipped, saying why, elsewhere)."""
    if backend != "torch":
        return paths
    from mlperf_ext.errors import BackendUnavailable
    from sut.torch_model import onnx2torch_module

    out = {"mlp": torch_program(paths["mlp"])} if "mlp" in paths else {}
    if "resnet50" in paths:
        try:
            onnx2torch_module()
            out["resnet50"] = paths["resnet50"]
        except BackendUnavailable as exc:
            print(f"torch resnet50: skipped ({exc})", flush=True)
    return out


def samples_for(model_path: Path, count: int):
    import numpy as np

    from sut.torch_model import inspect

    shape = tuple(d or 1 for d in inspect(model_path).input.shape[1:])
    return np.random.default_rng(1).random((count, *shape), dtype=np.float32)


def plain_step(backend_name: str, model_path: Path, threads: int):
    """The plain runtime call with top-1, as a user of the runtime writes it: batch -> classes."""
    if backend_name == "onnxruntime":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def step(x):
            return session.run(None, {name: x})[0].argmax(axis=1)
        return step
    if backend_name == "torch":
        import torch

        from sut.torch_model import open_model

        torch.set_num_threads(threads)
        module = open_model(model_path)[1]

        def step(x):
            with torch.inference_mode():
                return module(torch.from_numpy(x)).argmax(dim=1).numpy()
        return step
    import openvino as ov

    compiled = ov.Core().compile_model(str(model_path), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def step(x):  # the cheapest plain call sequence (the dict form costs ~20 us more per call)
        request.set_input_tensor(ov.Tensor(x, shared_memory=True))
        request.infer()
        return request.get_output_tensor(0).data.argmax(axis=1)
    return step


def offline_settings(outdir: Path, seconds: float, rate: float):
    import mlperf_loadgen as lg

    settings = lg.TestSettings()
    (outdir / "user.conf").write_text("")
    settings.FromConfig(str(outdir / "user.conf"), "bench", "Offline")
    settings.scenario = lg.TestScenario.Offline
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(seconds * 1000)
    settings.offline_expected_qps = 3 * rate  # a hint only: sizes the query to outlast min_duration
    return settings


def valid_throughput(outdir: Path, variant: str) -> float:
    from mlperf_ext.logs import parse_run_dir

    result = parse_run_dir(outdir)
    if not result.valid:
        raise SystemExit(f"the {variant} run was INVALID ({'; '.join(result.invalid_reasons)}): no ratio from it")
    return result.throughput


def run_bare(backend_name: str, model_path: Path, batch: int, threads: int, seconds: float, count: int) -> float:
    """The plain call inside the cheapest Python LoadGen SUT: the query's samples run in batches in the issue
    callback (a slice of the samples where LoadGen's indices are consecutive, else a take), each batch
    completed through responses built once whose ids are set."""
    import mlperf_loadgen as lg
    import numpy as np

    data = samples_for(model_path, count)
    step = plain_step(backend_name, model_path, threads)
    rate = warm_up(step, _batches(data, batch))
    payload = np.zeros(batch, dtype="<i4")
    responses = [lg.QuerySampleResponse(0, payload.ctypes.data + 4 * k, 4) for k in range(batch)]
    set_id = lg.QuerySampleResponse.id.fset

    def issue(ids, indices):
        for start in range(0, len(ids), batch):
            part, rows = ids[start:start + batch], indices[start:start + batch]
            n = len(part)
            x = data[rows[0]:rows[0] + n] if rows[-1] - rows[0] == n - 1 else data[rows]
            payload[:n] = step(x)
            done = responses[:n]
            for _ in map(set_id, done, part):
                pass
            lg.QuerySamplesComplete(done)

    outdir = Path(tempfile.mkdtemp())
    settings = offline_settings(outdir, seconds, rate)
    sut = lg.ConstructFastSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(count, count, lambda _i: None, lambda _i: None)
    log, out = lg.LogSettings(), lg.LogOutputSettings()
    out.outdir = str(outdir)
    log.log_output = out
    lg.StartTestWithLogSettings(sut, qsl, settings, log, str(outdir / "audit.config"))
    lg.DestroyQSL(qsl)
    lg.DestroyFastSUT(sut)
    return valid_throughput(outdir, "bare")


def run_sut(backend_name: str, model_path: Path, batch: int, threads: int, seconds: float, count: int) -> float:
    """Offline through the harness (the same objects tiers.runner.child wires together)."""

    from mlperf_ext import loadgen
    from mlperf_ext.datasets import ArrayDataset
    from mlperf_ext.qsl import SampleLibrary
    from scenarios import DispatchConfig, get_scenario
    from sut.adapter import SutAdapter
    from sut.base import DeploymentOptions
    from sut.registry import create_backend

    backend = create_backend(backend_name)
    backend.load(model_path, DeploymentOptions(threads=threads, max_batch=batch))
    data = samples_for(model_path, count)
    library = SampleLibrary(ArrayDataset("synthetic", data))
    rate = warm_up(backend.infer, _batches(data, batch))
    outdir = Path(tempfile.mkdtemp())
    settings = offline_settings(outdir, seconds, rate)
    errors = loadgen.CallbackErrors()
    adapter = SutAdapter(backend, library, errors)
    dispatcher = get_scenario("Offline").make_dispatcher(adapter.run_batch, DispatchConfig(batch=batch))
    loadgen.LoadGenTest.of(dispatcher, library, errors).run(settings, outdir)
    dispatcher.close()
    assert errors.count == 0, errors.first
    return valid_throughput(outdir, "SUT")


def _batches(data, batch: int) -> list:
    import numpy as np

    return [np.ascontiguousarray(data[i:i + batch]) for i in range(0, len(data) - batch + 1, batch)]


def run_loop(backend_name: str, model_path: Path, batch: int, threads: int, seconds: float, count: int) -> float:
    """A plain loop over a runtime session: same model, batch and threads; no LoadGen, no adapter."""

    batches = _batches(samples_for(model_path, count), batch)
    step = plain_step(backend_name, model_path, threads)
    warm_up(step, batches)
    done, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step(batches[k % len(batches)])
        done += batch
        k += 1
    return done / (time.perf_counter() - start)


def measure(kind: str, backend: str, model: str, path: Path, threads: int, seconds: float) -> float:
    cfg = MODELS[model]
    proc = subprocess.run([sys.executable, __file__, "--child", kind, backend, str(path), str(cfg["batch"]),
                           str(threads), str(seconds), str(cfg["samples"])], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {backend} {model} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


VARIANTS = {"sut": run_sut, "bare": run_bare, "loop": run_loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", default="mlp,resnet50", help="which models to measure")
    parser.add_argument("--backends", default="onnxruntime,openvino", help="which backends to measure")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, backend, path, batch, threads, seconds, count = args.child
        print(VARIANTS[kind](backend, Path(path), int(batch), int(threads), float(seconds), int(count)))
        return
    models = args.only.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {m: p for m, p in prepare(Path(tmp)).items() if m in models}
        print(f"{'backend':<12} {'model':<9} {'batch':>5} {'SUT/s':>10} {'bare/s':>10} {'loop/s':>10} "
              f"{'SUT/loop':>8} {'SUT/bare':>8}  SUT/loop paired per round")
        for backend in args.backends.split(","):
            for model, path in backend_paths(backend, paths).items():
                found: dict[str, list[float]] = {kind: [] for kind in VARIANTS}
                for round_no in range(args.rounds):
                    kinds = list(VARIANTS)
                    for kind in kinds[round_no % 3:] + kinds[:round_no % 3]:
                        found[kind].append(measure(kind, backend, model, path, args.threads, args.seconds))
                sut, bare, loop = (statistics.median(found[k]) for k in VARIANTS)
                paired = [a / b for a, b in zip(found["sut"], found["loop"])]
                verdict = "OK" if sut / loop >= 0.95 else "BELOW GOAL"
                print(f"{backend:<12} {model:<9} {MODELS[model]['batch']:>5} {sut:>10,.1f} {bare:>10,.1f} "
                      f"{loop:>10,.1f} {sut / loop:>8.3f} {sut / bare:>8.3f}  {min(paired):.3f}-{max(paired):.3f}"
                      f"  (SUT/loop goal >= 0.95) {verdict}", flush=True)


if __name__ == "__main__":
    main()
