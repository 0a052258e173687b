"""The torch part of the one GPU check (benchmarks/gpu_check.py runs it first; it also runs alone).

What it measures, every figure into the check's JSON (section "torch"):
1. the torch backend through the real CLI (`mlperf-ext run spec.yaml`, profile quick): the MLP
   (784-1024-1024-1024-10, random weights, as a torch.export program holding the ONNX model's weights) on the
   built-in `mnist` samples, and ResNet-50 (the zoo's, random weights, through onnx2torch where it imports) on
   random images; in fp32, tf32, fp16 and bf16; Offline first, then SingleStream, MultiStream and Server, Server
   at half the Offline throughput of the same precision (a claim taken from a measurement, for a quick VALID
   check; section 4 searches one). Each row: VALID or not, system and compute samples/s, what executed;
2. SUT/native: each Offline row's system samples/s over a plain torch loop on the same model, batch, streams
   and precision (one thread per stream, each with its own CUDA stream: pinned copy, H2D, forward, D2H,
   synchronise, top-1), both warmed up alike; goal >= 0.95;
3. power: the MLP and ResNet-50 in fp16 Offline with `--power-meter nvml:0` (samples/J over an idle baseline);
4. harness capacity on a fast device: the MLP in fp16 at batch 1024 in Offline (against its native loop), and
   in Server with no target, so the runner searches one;
5. level 0: `mlperf-ext efficiency` over every row, against the platform the rows name (`--platform`), so each
   efficiency is measured compute over the roofline at the precision that executed; a row above 100 % is
   reported as such.

Sections 1-4 run model by model, the MLP first (with its capacity section), so the MLP gives every kind of
figure even where ResNet-50 then runs out of budget; section 5 comes last.

With `--device cpu` every section runs on the CPU (power is skipped there), so the script is tested where no GPU
is. Usage: python benchmarks/gpu_torch.py [--device cuda] [--platform h100-sxm] [--budget-s 300]
       [--torch-precisions fp32,fp16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_common import Budget, Report, _fmt, row_figures, run_cmd  # noqa: E402  (after the path)

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
SCENARIOS = ("Offline", "SingleStream", "MultiStream", "Server")
MODELS = ("mlp", "resnet50")
#: the sections after the rows and their SUT/native, which --torch-skip can leave out (a short rerun, a CPU test)
OPTIONAL_SECTIONS = ("power", "capacity", "efficiency")
SEARCH_BATCH = 1024
#: the catalog platform of a GPU, by the name its driver gives (torch.cuda.get_device_name, without "NVIDIA "). Exact
#: names only: an H100 PCIe or NVL, an A100 40GB or PCIe, an L40S have other peaks or bandwidths than the entries
MODEL_PLATFORMS = {"H100 80GB HBM3": "h100-sxm", "H200": "h200-sxm", "A100-SXM4-80GB": "a100-sxm", "L4": "l4"}


def platform_of_gpu(name: str) -> str | None:
    """The catalog platform of the GPU with this name, or None where the catalog has no entry for that board."""
    return MODEL_PLATFORMS.get(name.strip().removeprefix("NVIDIA").strip())


def gpu_name(device: str) -> str | None:
    """The name the driver gives the GPU (None for the CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(torch.device(device).index or 0)


def detect_platform(device: str) -> str | None:
    """The catalog platform for the device: the GPU's by its name (None if the catalog lacks it), 'host' for the
    CPU (whose ceilings are measured)."""
    return "host" if not device.startswith("cuda") else platform_of_gpu(gpu_name(device))


# -- models and data ---------------------------------------------------------------------------------
def prepare(rep: Report, work: Path, samples: int, names: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """(model name -> file, model name -> dataset) for the names asked: the MLP program, and ResNet-50's ONNX where
    onnx2torch imports."""
    import numpy as np
    import onnx
    from backend_overhead import _mlp, torch_program

    from mlperf_ext.errors import BackendUnavailable
    from mlperf_ext.zoo.archs import build_resnet50
    from sut.torch_model import onnx2torch_module

    models_dir, data_dir = work / "models", work / "data"
    models_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, Path] = {}
    datasets: dict[str, str] = {}
    if "mlp" in names:  # first: run() measures the models in this order
        models["mlp"], datasets["mlp"] = torch_program(_mlp(models_dir / "mlp.onnx")), "mnist"
    if "resnet50" in names:
        try:
            onnx2torch_module()
            path = models_dir / "resnet50.onnx"
            if not path.is_file():
                onnx.save(build_resnet50(seed=0), path)
            if not (data_dir / "samples.npy").is_file():
                np.save(data_dir / "samples.npy",
                        np.random.default_rng(0).standard_normal((samples, 3, 224, 224), dtype=np.float32))
            models["resnet50"], datasets["resnet50"] = path, str(data_dir)
        except BackendUnavailable as exc:
            rep.skip("torch resnet50", str(exc))
    rep.put("torch", "models", {k: str(v) for k, v in models.items()})
    return models, datasets


# -- the CLI -----------------------------------------------------------------------------------------
def run_spec(entries: list[dict], work: Path, timeout: float, env: dict) -> tuple[int, str, list]:
    """`mlperf-ext run` over a spec of these grids; returns (exit, output tail, the stored rows)."""
    from mlperf_ext.store import ResultsStore
    from tiers.runner.layout import store_path

    work.mkdir(parents=True, exist_ok=True)
    spec = work / "spec.yaml"
    spec.write_text(json.dumps(entries))  # JSON is YAML
    code, text = run_cmd([sys.executable, "-m", "mlperf_ext.cli", "run", str(spec), "--workdir", str(work),
                          "--force"], timeout, env)
    rows = ResultsStore(store_path(work)).results() if store_path(work).is_file() else []
    return code, text, rows


def grid(model: Path, dataset: str, args, **extra) -> dict:
    entry = {"models": [str(model)], "dataset": dataset, "backends": ["torch"], "devices": [args.device],
             "batch": args.batch, "streams": args.streams, "profile": "quick", "timeout_s": int(args.point_timeout)}
    if args.platform:
        entry["platform"] = args.platform
    entry.update(extra)
    return entry


def figures(row) -> dict:
    fig = row_figures(row)
    fig.update({"scenario": row.point.scenario, "exec_precision": row.point.exec_precision,
                "runtime_settings": row.runtime.settings if row.runtime else None})
    return fig


def scenario_section(rep: Report, budget: Budget, name: str, model: Path, dataset: str, args, env: dict) -> dict:
    """Offline in every precision, then the other three scenarios; returns precision -> Offline row figures."""
    rep.say(f"== torch {name}: {', '.join(args.precisions)} x {', '.join(args.scenarios)} on {args.device}")
    offline: dict[str, dict] = {}
    if "Offline" in args.scenarios:
        code, text, rows = run_spec([grid(model, dataset, args, scenarios=["Offline"], exec_precisions=args.precisions)],
                                    args.work / "runs" / f"{name}-offline", budget.left(), env)
        for row in rows:
            offline[row.point.exec_precision] = figures(row)
        if not rows:
            rep.say(f"  no rows (exit {code}): {text.strip()[-600:]}")
    entries = []
    for precision in args.precisions:
        others = [s for s in args.scenarios if s in ("SingleStream", "MultiStream")]
        if others:
            entries.append(grid(model, dataset, args, scenarios=others, exec_precisions=[precision]))
        target = (offline.get(precision) or {}).get("sys_throughput")
        if "Server" in args.scenarios and target:
            entries.append(grid(model, dataset, args, scenarios=["Server"], exec_precisions=[precision],
                                settings={"server_target_qps": round(target / 2, 1)}))
    found: dict[str, dict] = {f"{p} Offline": f for p, f in offline.items()}
    if entries and budget.allows(30):
        code, text, rows = run_spec(entries, args.work / "runs" / f"{name}-others", budget.left(), env)
        found.update({f"{row.point.exec_precision} {row.point.scenario}": figures(row) for row in rows})
        if not rows:
            rep.say(f"  no rows (exit {code}): {text.strip()[-600:]}")
    rep.say(f"  {'precision':9} {'scenario':12} {'status':8} {'valid':5} {'system/s':>11} {'compute/s':>11} executed")
    for key, fig in found.items():
        precision, scenario = key.split(" ", 1)
        rep.say(f"  {precision:9} {scenario:12} {fig['status']:8} {str(fig['sys_valid']):5} "
                f"{_fmt(fig['sys_throughput']):>11} {_fmt(fig['compute_throughput']):>11} {fig['precision']}"
                + (f"  [{fig['error']}]" if fig.get("error") else ""))
    rep.put("torch", f"{name} rows", found)
    return offline


# -- SUT/native --------------------------------------------------------------------------------------
def native_loop(model: Path, dataset: str, device: str, precision: str, batch: int, streams: int,
                seconds: float) -> float:
    """Samples/s of a plain torch loop: one thread per stream, each on its own CUDA stream with pinned buffers
    (copy into pinned, H2D, forward, D2H, synchronise, top-1); on the CPU the forward on the host array."""
    import numpy as np
    import torch

    from mlperf_ext.datasets import open_dataset
    from sut.torch import CAST_DTYPES, set_tf32
    from sut.torch_model import open_model

    set_tf32(torch, precision == "tf32")
    module = open_model(model)[1]
    dtype = getattr(torch, CAST_DTYPES[precision])
    target = torch.device(device)
    module = module.to(dtype).to(target)
    if target.type == "cuda":  # the weights were copied on the current stream; the threads use streams of their own
        torch.cuda.synchronize(target)
    data = open_dataset(dataset)
    x = data.load(np.arange(min(len(data), batch * 8)) % len(data))
    batches = [np.ascontiguousarray(x[i:i + batch]) for i in range(0, len(x) - batch + 1, batch)] or [x[:batch]]
    done = [0] * streams
    stop = threading.Event()

    def work(k: int) -> None:
        cuda = target.type == "cuda"
        lane = torch.cuda.Stream(target) if cuda else None
        pinned = torch.empty(batches[0].shape, dtype=torch.float32, pin_memory=cuda)
        j = 0
        with torch.inference_mode():
            while not stop.is_set():
                host = batches[j % len(batches)]
                if cuda:
                    with torch.cuda.stream(lane):
                        pinned.copy_(torch.from_numpy(host))
                        out = module(pinned.to(target, non_blocking=True).to(dtype))
                        top1 = out.argmax(dim=1).cpu()  # D2H on the stream, synchronised
                else:
                    top1 = module(torch.from_numpy(host).to(dtype)).argmax(dim=1)
                top1.numpy()
                done[k] += len(host)
                j += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    time.sleep(seconds / 3)  # warm-up, not counted
    start_counts, start = list(done), time.perf_counter()
    time.sleep(seconds)
    counted, elapsed = sum(done) - sum(start_counts), time.perf_counter() - start
    stop.set()
    for t in threads:
        t.join()
    return counted / elapsed


def native_section(rep: Report, budget: Budget, name: str, model: Path, dataset: str, offline: dict, args,
                   batch: int | None = None, label: str = "") -> None:
    rep.say(f"  -- SUT/native, {name}{label}: the Offline system samples/s over a plain torch loop (goal >= 0.95)")
    for precision, fig in offline.items():
        if not budget.allows(args.seconds * 2 + 10) or fig.get("sys_throughput") is None:
            rep.skip(f"torch native {name} {precision}", f"no Offline figure or budget ({budget.left():.0f} s left)")
            continue
        loop = native_loop(model, dataset, args.device, precision, batch or args.batch, args.streams, args.seconds)
        ratio = fig["sys_throughput"] / loop
        rep.say(f"  {precision:5} SUT {_fmt(fig['sys_throughput'])}/s, native {_fmt(loop)}/s, SUT/native {ratio:.3f} "
                f"{'OK' if ratio >= 0.95 else 'BELOW GOAL'}")
        rep.put("torch", f"{name}{label} native {precision}", {"sut": fig["sys_throughput"], "native": loop,
                                                                "ratio": ratio})


# -- power, capacity, level 0 -------------------------------------------------------------------------
def power_section(rep: Report, budget: Budget, name: str, model: Path, dataset: str, args, env: dict) -> None:
    if not args.device.startswith("cuda"):
        rep.skip(f"torch power {name}", "NVML measures a GPU; --device is the CPU")
        return
    if not budget.allows(60):
        rep.skip(f"torch power {name}", f"about 60 s needed, {budget.left():.0f} s left")
        return
    code, text, rows = run_spec([grid(model, dataset, args, scenarios=["Offline"], exec_precisions=["fp16"],
                                      power="nvml:0")], args.work / "runs" / f"{name}-power", budget.left(), env)
    fig = figures(rows[-1]) if rows else {"status": f"no row (exit {code}): {text.strip()[-300:]}"}
    rep.put("torch", f"{name} power fp16 Offline", fig)
    rep.say(f"  power {name} fp16 Offline: {_fmt(fig.get('power_samples_per_j'), ',.2f')} samples/J (average "
            f"{_fmt(fig.get('power_avg_w'))} W, idle {_fmt(fig.get('power_idle_w'))} W); {fig.get('power_note')}")


def capacity_section(rep: Report, budget: Budget, model: Path, dataset: str, args, env: dict) -> None:
    rep.say(f"== harness capacity: the MLP in fp16 at batch {SEARCH_BATCH} in Offline, and Server at a searched target")
    if not budget.allows(90):
        rep.skip("torch capacity", f"about 90 s needed, {budget.left():.0f} s left")
        return
    code, text, rows = run_spec([grid(model, dataset, args, scenarios=["Offline"], exec_precisions=["fp16"],
                                      batch=SEARCH_BATCH),
                                 grid(model, dataset, args, scenarios=["Server"], exec_precisions=["fp16"])],
                                args.work / "runs" / "capacity", budget.left(), env)
    found = {row.point.scenario: figures(row) for row in rows}
    for scenario, fig in found.items():
        rep.say(f"  {scenario:8} b{fig['batch']}: {fig['status']} valid {fig['sys_valid']} system "
                f"{_fmt(fig['sys_throughput'])}/s compute {_fmt(fig['compute_throughput'])}/s"
                + (f", searched target {_fmt(fig['search_target_qps'])}" if fig.get("search_target_qps") else ""))
    if not rows:
        rep.say(f"  no rows (exit {code}): {text.strip()[-600:]}")
    rep.put("torch", "capacity rows", found)
    if "Offline" in found:
        native_section(rep, budget, "mlp", model, dataset, {"fp16": found["Offline"]}, args, batch=SEARCH_BATCH,
                       label=f" b{SEARCH_BATCH}")


def efficiency_section(rep: Report, budget: Budget, args, env: dict) -> None:
    from tiers.level0.platforms import HOST_PLATFORM_FILE

    rep.say(f"== level 0: efficiency of every torch row against platform '{args.platform}'")
    if not args.platform:
        rep.skip("torch efficiency", f"the catalog has no entry for this GPU ({args.gpu_name!r}): pass --platform "
                                     "with a catalog name (mlperf-ext platforms list) that matches it")
        return
    measured: Path | None = None  # the host's ceilings, measured once and copied to each run directory
    for runs in sorted((args.work / "runs").iterdir()):
        if args.platform == "host":  # the host's ceilings are measured, not in the catalog
            if measured is None:
                if not budget.allows(30):
                    rep.skip("torch efficiency", f"measuring the host's ceilings needs about 30 s "
                                                 f"({budget.left():.0f} s left)")
                    return
                run_cmd([sys.executable, "-m", "mlperf_ext.cli", "platforms", "detect", "--quick", "--workdir",
                         str(runs)], 300, env)
                measured = runs / HOST_PLATFORM_FILE
            elif measured.is_file():
                shutil.copyfile(measured, runs / HOST_PLATFORM_FILE)
        code, text = run_cmd([sys.executable, "-m", "mlperf_ext.cli", "efficiency", "--workdir", str(runs),
                              "--csv", str(runs / "efficiency.csv")], 120, env)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        rep.say(f"  {runs.name}: exit {code}")
        for line in lines[-12:]:
            rep.say("    " + line)
        csv = runs / "efficiency.csv"
        if csv.is_file():
            import pandas as pd

            rep.put("torch", f"efficiency {runs.name}", pd.read_csv(csv).to_dict(orient="records"))


# -- main --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, to run the check without a GPU")
    parser.add_argument("--platform", help="catalog platform of the rows (default: from the GPU's name, or host)")
    parser.add_argument("--torch-precisions", default=",".join(PRECISIONS), help="fp32,tf32,fp16,bf16")
    parser.add_argument("--torch-scenarios", default=",".join(SCENARIOS),
                        help="LoadGen scenarios for the torch rows (all four)")
    parser.add_argument("--torch-samples", type=int, default=256, help="random 3x224x224 images for ResNet-50")
    parser.add_argument("--torch-models", default=",".join(MODELS),
                        help="mlp,resnet50 (both); ResNet-50 on a CPU of few cores takes minutes a point")
    parser.add_argument("--torch-skip", default="", help=f"sections to leave out, of {','.join(OPTIONAL_SECTIONS)}")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Unknown names in the torch lists end the script at once (exit 2), before anything runs."""
    for flag, given, known in (("--torch-precisions", args.torch_precisions, PRECISIONS),
                               ("--torch-scenarios", args.torch_scenarios, SCENARIOS),
                               ("--torch-models", args.torch_models, MODELS),
                               ("--torch-skip", args.torch_skip, OPTIONAL_SECTIONS)):
        bad = [k for k in given.split(",") if k and k not in known]
        if bad:
            parser.error(f"unknown {flag} {', '.join(bad)}; choose from {', '.join(known)}")


def run(rep: Report, budget: Budget, args) -> None:
    """Every torch section, in order, within the budget (on a copy of the arguments, as gpu_check's own
    --scenarios are TensorRT's)."""
    args = argparse.Namespace(**vars(args))
    args.precisions = [p for p in args.torch_precisions.split(",") if p]
    args.scenarios = [s for s in args.torch_scenarios.split(",") if s]
    args.models = [m for m in args.torch_models.split(",") if m]
    args.skip = [k for k in args.torch_skip.split(",") if k]
    args.gpu_name = gpu_name(args.device)
    args.platform = args.platform or detect_platform(args.device)
    rep.put("torch", "device", {"device": args.device, "gpu": args.gpu_name, "platform": args.platform})
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    models, datasets = prepare(rep, args.work, args.torch_samples, args.models)

    def optional(section: str, what: str, run_section, *section_args) -> None:
        """A section --torch-skip may leave out: run it, or record that it was left out."""
        if section in args.skip:
            rep.skip(what, "--torch-skip")
        else:
            run_section(rep, budget, *section_args)

    # model by model, each with all of its sections: the MLP (first, and fast) gives every kind of figure even
    # if ResNet-50 then runs out of budget
    for name, model in models.items():
        dataset = datasets[name]
        offline = scenario_section(rep, budget, name, model, dataset, args, env)
        native_section(rep, budget, name, model, dataset, offline, args)
        optional("power", f"torch power {name}", power_section, name, model, dataset, args, env)
        if name == "mlp":
            optional("capacity", "torch capacity", capacity_section, model, dataset, args, env)
    optional("efficiency", "torch efficiency", efficiency_section, args, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check_out"))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlperf-ext-gpu-torch")
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--point-timeout", type=float, default=240.0)
    add_arguments(parser)
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    rep, budget = Report(args.out), Budget(args.budget_s)
    run(rep, budget, args)
    rep.say(f"== done; {budget.left():.0f} s of the budget left; figures {rep.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
