"""PyTorch backend: a torch.export program (or an ONNX file through onnx2torch) on the CPU or a CUDA GPU.

System path (`infer`): the host array in, the first output back on the host. On the CPU the array is read in
place (`torch.from_numpy`). On CUDA each stream has its own `torch.cuda.Stream`, a pinned input buffer and a
pinned output buffer: host array -> pinned -> H2D -> run -> D2H into pinned -> the stream synchronised.

Compute path (`compute_step`): the batch is placed once where the device reads it, in the dtype that
executes; one step is one forward. On the CPU `time.perf_counter_ns` brackets it. On CUDA a pair of CUDA
events is recorded on the stream's own `torch.cuda.Stream` around it and the end event is synchronised, so
the seconds are the device's; every stream runs at once, as the runner calls them.

Precision: `--exec-precision fp32|tf32|fp16|bf16` casts the module's floating-point weights and its input to
that dtype (`model` keeps the stored one). TF32 is off unless `tf32` is asked: PyTorch's default lets cuDNN
convolutions run fp32 on TF32 tensor cores (`torch.backends.cudnn.allow_tf32` is True), which
would make an fp32 row's level 0 predict against the wrong peak. What executed is read back at load: one
forward under a `TorchDispatchMode` records every aten op that ran with its inputs' dtypes and devices;
the compute-heavy ones (convolutions, matrix products) name the precision, an fp32 one on CUDA with its TF32
switch on reads as `tf32`, and a heavy op that ran on the CPU when CUDA was asked is refused as a fallback.

Options: `compile=default|reduce-overhead|max-autotune` wraps the module in `torch.compile` with static shapes;
`cuda_graphs=on` captures one CUDA graph per stream. Both run every batch at the loaded batch size (a short
batch is padded, as a static-shape deployment runs it), compile in `load` so no compilation is timed, and
are recorded in the row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_ext.errors import ConfigError, ModelError
from sut.base import (
    MODEL_PRECISION,
    BackendDescription,
    ComputeStep,
    DeploymentOptions,
    TensorSpec,
    check_exec_precision,
    check_runtime_options,
    split_device,
)
from sut.model_file import ModelInfo, first_line, multi_input_refusal, refuse_batch
from sut.precision import HeavyOp, dtype_name, summarize
from sut.torch_model import inspect, open_model, require_torch, torch_dtype_name

#: --exec-precision -> the torch dtype name the weights and input are cast to ("model": keep the stored one)
CAST_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
#: aten ops that carry a model's arithmetic, split by the TF32 switch that governs them on CUDA
CONV_OPS = frozenset({"aten.conv1d", "aten.conv2d", "aten.conv3d", "aten.convolution", "aten._convolution",
                      "aten.conv_transpose1d", "aten.conv_transpose2d", "aten.conv_transpose3d"})
MATMUL_OPS = frozenset({"aten.linear", "aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.matmul",
                        "aten.einsum", "aten.scaled_dot_product_attention"})
_CUDA_FIX = "run on a host with an NVIDIA GPU and a CUDA build of torch, or use --device cpu"


def parse_device(device: str) -> tuple[str, int]:
    """'cuda:1' -> ('cuda', 1); 'cpu' -> ('cpu', 0); anything else is bad input."""
    return split_device(device, "torch", ("cpu", "cuda"))


def tf32_switches(torch) -> dict[str, str]:
    """The CUDA TF32 switches as torch reports them: 'tf32' or 'ieee' for matrix products and for cuDNN."""
    return {"matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee",
            "conv": "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"}


def set_tf32(torch, allowed: bool) -> None:
    """Turn CUDA's TF32 on for fp32 matrix products and cuDNN (convolutions, RNNs), or off for both.

    Through the flags torch has had since 1.7: torch 2.13 keeps its newer `fp32_precision` values in step with
    them, while setting only the newer ones leaves the older cuDNN flag on, which torch.export's own check of
    it then calls "a mix of the legacy and new APIs" and refuses."""
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed


def executed_ops(torch, module, x) -> list[tuple[str, str, str]]:
    """(aten op, dtype of its first tensor input, its device type) for every op one forward of `module` ran."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: list[tuple[str, str, str]] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if first is not None:
                self.ops.append((str(func.overloadpacket), torch_dtype_name(first.dtype), first.device.type))
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), Recorder() as recorder:
        module(x)
    return recorder.ops


def executed_precision(ops: list[tuple[str, str, str]], switches: dict[str, str], on_cuda: bool,
                       stored: str) -> tuple[str, str]:
    """(what executed, compute dtype) from the recorded ops: an fp32 product on CUDA with its TF32 switch on
    ran as tf32; weights stored in a narrower float and run in fp32 were upcast."""
    heavy = []
    for op, dtype, _device in ops:
        if op not in CONV_OPS and op not in MATMUL_OPS:
            continue
        compute = dtype_name(dtype)
        family = "conv" if op in CONV_OPS else "matmul"
        if compute == "fp32" and on_cuda and switches.get(family) == "tf32":
            compute = "tf32"
        heavy.append(HeavyOp(op.removeprefix("aten."), compute))
    suffix = ""
    if stored in ("fp16", "bf16") and heavy and all(h.compute in ("fp32", "tf32") for h in heavy):
        suffix = f"{stored} weights upcast"
    return summarize(heavy, suffix)


def pad_to(batch: np.ndarray, size: int) -> np.ndarray:
    """`batch` with zero rows appended up to `size` (a static-shape module takes no other batch)."""
    if len(batch) == size:
        return batch
    if len(batch) > size:
        raise ModelError(f"batch of {len(batch)} handed to a module loaded for batch {size}; fix: use --batch "
                         f"{len(batch)} or more")
    pad = np.zeros((size - len(batch), *batch.shape[1:]), dtype=batch.dtype)
    return np.concatenate([batch, pad])


def first_output(out):
    """The first output of a module that may return a tuple, list or dict of them."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


class _CudaLane:
    """One CUDA stream's resources: its torch.cuda.Stream, pinned host buffers and (cuda_graphs) its graph."""

    def __init__(self, torch, device, stream, pinned_in):
        self.torch, self.device, self.stream, self.pinned_in = torch, device, stream, pinned_in
        self.pinned_out = None
        self.graph = None
        self.static_in = None
        self.static_out = None

    def host_out(self, out):
        """A pinned host buffer for `out`'s rows (made once, at the largest batch seen)."""
        if self.pinned_out is None or self.pinned_out.shape[1:] != out.shape[1:] or len(self.pinned_out) < len(out) \
                or self.pinned_out.dtype != out.dtype:
            self.pinned_out = self.torch.empty((max(len(out), len(self.pinned_in)), *out.shape[1:]),
                                               dtype=out.dtype, pin_memory=True)
        return self.pinned_out[: len(out)]


class TorchBackend:
    """One torch module, shared by all streams; on CUDA each stream has its own torch.cuda.Stream."""

    name = "torch"
    extra = "torch"
    runtime_module = "torch"
    runtime_packages = ("torch", "onnx2torch", "torchvision")
    exec_precisions = (MODEL_PRECISION, *CAST_DTYPES)
    runtime_option_values = {"compile": COMPILE_MODES, "cuda_graphs": ("off", "on")}
    inspect_model = staticmethod(inspect)

    def __init__(self) -> None:
        self._torch: Any = None
        self._module: Any = None
        self._run: Callable | None = None
        self._info: ModelInfo | None = None
        self._options: DeploymentOptions | None = None
        self._device: Any = None
        self._dtype: Any = None
        self._made_by = ""
        self._lanes: list[_CudaLane] = []
        self._static_batch: int | None = None
        self._precision = ("", "")

    # -- facts ---------------------------------------------------------------------------------
    @staticmethod
    def check_device(device: str) -> None:
        """Refuse, before anything runs, a CUDA device this torch cannot reach (no CUDA build, no GPU)."""
        kind, index = parse_device(device)
        if kind == "cpu":
            return
        torch = require_torch()
        if torch.version.cuda is None:
            raise ConfigError(f"torch {torch.__version__} here is a CPU build, so --device {device} cannot run; "
                              f"fix: {_CUDA_FIX}")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not 0 <= index < count:
            raise ConfigError(f"no CUDA GPU {index} visible to torch {torch.__version__} (it counts {count}); fix: "
                              + (f"use --device cuda:N with N in 0..{count - 1}" if count else _CUDA_FIX))

    @classmethod
    def supports(cls, model: ModelInfo, options: DeploymentOptions) -> str | None:
        check_runtime_options(cls, options.runtime_options)
        reason = check_exec_precision(cls, options) or multi_input_refusal(cls.name, model)
        if reason:
            return reason
        kind, _ = parse_device(options.device)
        runtime = options.runtime_options
        if kind == "cpu" and options.exec_precision == "tf32":
            return ("torch --device cpu cannot execute in tf32 (TF32 is an NVIDIA tensor-core format); fix: use "
                    "--exec-precision fp32 or bf16 on the CPU, or --device cuda")
        if kind == "cpu" and runtime.get("cuda_graphs") == "on":
            return "cuda_graphs=on needs --device cuda; fix: drop the option on the CPU"
        if runtime.get("cuda_graphs") == "on" and runtime.get("compile") == "reduce-overhead":
            return ("compile=reduce-overhead captures CUDA graphs itself; fix: use it or cuda_graphs=on, not both")
        return None

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        torch = require_torch()
        kind, index = parse_device(options.device)
        info, module, self._made_by = open_model(model_path)
        refuse_batch(info, options.max_batch)
        reason = self.supports(info, options)
        if reason:
            raise ConfigError(reason)
        self.check_device(options.device)
        self._torch, self._info, self._options = torch, info, options
        self._device = torch.device(kind, index) if kind == "cuda" else torch.device("cpu")
        if options.threads is not None:  # per calling thread: each stream's forward runs with this many
            torch.set_num_threads(max(1, options.threads // options.streams))
        set_tf32(torch, options.exec_precision == "tf32")
        for p in module.parameters():
            p.requires_grad_(False)
        cast = CAST_DTYPES.get(options.exec_precision)
        if cast is not None:
            module = module.to(getattr(torch, cast))
        self._module = module.to(self._device)
        self._dtype = getattr(torch, cast) if cast else self._input_dtype(info)
        probe = self._resident(np.zeros(self._sample_shape(info.fixed_batch or 1), dtype=info.input.dtype))
        try:
            ops = executed_ops(torch, self._module, probe)
        except Exception as exc:  # a dtype or device the module's ops cannot take
            raise ModelError(f"torch cannot run {info.path.name} in {options.exec_precision} on {options.device}: "
                             f"{first_line(exc)}; fix: use --exec-precision model, or another device") from exc
        self._refuse_cpu_fallback(ops)
        self._precision = executed_precision(ops, tf32_switches(torch), kind == "cuda", info.float_precision)
        self._run = self._prepare_run()

    def _input_dtype(self, info: ModelInfo):
        """The dtype the module's input is handed in: the model's own, bfloat16 from its torch name."""
        return getattr(self._torch, info.input.dtype)

    def _sample_shape(self, n: int) -> tuple[int, ...]:
        assert self._info is not None
        return (n, *(d if d is not None else 1 for d in self._info.input.shape[1:]))

    def _refuse_cpu_fallback(self, ops: list[tuple[str, str, str]]) -> None:
        if self._device.type != "cuda":
            return
        on_cpu = [op for op, _dtype, device in ops if device == "cpu" and (op in CONV_OPS or op in MATMUL_OPS)]
        if on_cpu:
            raise ConfigError(f"torch ran {len(on_cpu)} compute-heavy op(s) on the CPU although --device "
                              f"{self._options.device} was asked ({', '.join(on_cpu[:3])}): the model keeps tensors "
                              "on the CPU; fix: export it without device-pinned constants, or use --device cpu")

    def _prepare_run(self) -> Callable:
        """The forward every path calls: eager, compiled, or (cuda_graphs) replaying a captured graph."""
        torch, options = self._torch, self._options
        mode = options.runtime_options.get("compile", "off")
        graphs = options.runtime_options.get("cuda_graphs", "off") == "on"
        module = self._module
        if mode != "off" or graphs:
            self._static_batch = options.max_batch
        if mode != "off":
            module = torch.compile(module, mode=None if mode == "default" else mode, dynamic=False)
        self._lanes = self._make_lanes() if self._device.type == "cuda" else []
        rows = self._static_batch or self._info.fixed_batch or 1
        x = self._resident(np.zeros(self._sample_shape(rows), dtype=self._info.input.dtype))
        try:
            with torch.inference_mode():
                module(x)  # compiles (static shapes) and lets cuDNN pick its kernels before anything is timed
                if graphs:
                    for lane in self._lanes:
                        self._capture(lane, module, x)
        except Exception as exc:
            raise ModelError(f"torch could not prepare {self._info.path.name} (compile={mode}, cuda_graphs="
                             f"{'on' if graphs else 'off'}): {first_line(exc)}; fix: drop that option") from exc
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return module

    def _make_lanes(self) -> list[_CudaLane]:
        torch = self._torch
        size = self._static_batch or self._options.max_batch
        return [_CudaLane(torch, self._device, torch.cuda.Stream(self._device),
                          torch.empty(self._sample_shape(size), dtype=self._input_dtype(self._info), pin_memory=True))
                for _ in range(self._options.streams)]

    def _capture(self, lane: _CudaLane, module, x) -> None:
        """One CUDA graph of a forward at the static batch, on the lane's stream, with its own input buffer."""
        torch = self._torch
        lane.static_in = x.clone()
        lane.stream.wait_stream(torch.cuda.current_stream(self._device))  # the clone ran on the current stream
        with torch.cuda.stream(lane.stream):
            for _ in range(3):  # warm-up on the capturing stream, as torch.cuda.graph asks
                module(lane.static_in)
        lane.stream.synchronize()
        lane.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(lane.graph, stream=lane.stream):
            lane.static_out = first_output(module(lane.static_in))

    def _resident(self, batch: np.ndarray):
        """The batch where the device reads it, in the dtype that executes."""
        x = self._torch.from_numpy(np.ascontiguousarray(batch)).to(self._device)
        return x.to(self._dtype) if x.dtype != self._dtype else x

    def _require(self):
        if self._run is None:
            raise RuntimeError("TorchBackend used before load()")
        return self._run

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> BackendDescription:
        self._require()
        torch, options, info = self._torch, self._options, self._info
        cuda = self._device.type == "cuda"
        weight_dtypes = sorted({torch_dtype_name(p.dtype) for p in self._module.parameters()})
        settings = {
            "model_format": self._made_by,
            "exec_precision": options.exec_precision,
            "parameter_dtypes": weight_dtypes,
            "input_dtype": torch_dtype_name(self._dtype),
            "model_float_precision": info.float_precision,
            "tf32": tf32_switches(torch) if cuda else "n/a (cpu)",
            "intra_op_threads": torch.get_num_threads(),
            "inter_op_threads": torch.get_num_interop_threads(),
            "streams": options.streams,
            "cuda_streams": len(self._lanes),
            "compile": options.runtime_options.get("compile", "off"),
            "cuda_graphs": options.runtime_options.get("cuda_graphs", "off"),
            "static_batch": self._static_batch,
            "compute_boundary": ("CUDA events around one forward on the stream's torch.cuda.Stream, input resident "
                                 "on the device" if cuda else "perf_counter around one forward, input resident"),
        }
        providers = ["cpu"]
        if cuda:
            settings.update({"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                             "cudnn_benchmark": torch.backends.cudnn.benchmark})
            providers = [f"cuda:{self._device.index or 0} {torch.cuda.get_device_name(self._device)}"]
        notes = []
        if self._static_batch:
            notes.append(f"static shapes: every batch runs at {self._static_batch} (a short batch is padded)")
        if settings["compile"] != "off":
            notes.append("the precision was read from an eager forward before torch.compile; the compiled kernels take "
                         "the same dtypes and TF32 switches")
        text, dtype = self._precision
        return BackendDescription(runtime="torch", version=torch.__version__, device=options.device,
                                  providers=providers, settings=settings, precision=text, compute_dtype=dtype,
                                  notes=notes)

    def input_spec(self) -> TensorSpec:
        self._require()
        return self._info.input

    # -- system path ---------------------------------------------------------------------------
    def _fit(self, batch: np.ndarray) -> np.ndarray:
        size = self._static_batch or self._info.fixed_batch
        return pad_to(batch, size) if size else batch

    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        run, n = self._require(), len(batch)
        torch = self._torch
        if self._lanes:
            return self._infer_cuda(self._lanes[stream], self._fit(batch), n)
        with torch.inference_mode():
            out = first_output(run(self._resident(self._fit(batch))))
            if out.dtype == torch.bfloat16:  # numpy has no bfloat16
                out = out.float()
            return out[:n].numpy()

    def _infer_cuda(self, lane: _CudaLane, batch: np.ndarray, n: int) -> np.ndarray:
        torch = self._torch
        rows = len(batch)
        with torch.inference_mode(), torch.cuda.stream(lane.stream):
            host = lane.pinned_in[:rows]
            host.copy_(torch.from_numpy(batch))
            if lane.graph is not None:
                lane.static_in.copy_(host, non_blocking=True)
                lane.graph.replay()
                out = lane.static_out
            else:
                x = host.to(self._device, non_blocking=True)
                out = first_output(self._run(x.to(self._dtype) if x.dtype != self._dtype else x))
            if out.dtype == torch.bfloat16:
                out = out.float()
            back = lane.host_out(out[:n])
            back.copy_(out[:n], non_blocking=True)
            lane.stream.synchronize()
        return back.numpy()  # read by the adapter before this stream runs again

    # -- compute path --------------------------------------------------------------------------
    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        run = self._require()
        torch = self._torch
        x = self._resident(self._fit(batch))
        if not self._lanes:
            clock = time.perf_counter_ns

            def step() -> float:
                with torch.inference_mode():
                    start = clock()
                    run(x)
                    return (clock() - start) * 1e-9

            step.keep_alive = x
            return step
        lane = self._lanes[stream]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if lane.graph is not None:
            lane.static_in.copy_(x)
            forward = lane.graph.replay
        else:
            def forward():
                run(x)
        # x (and the graph's copy of it) were written on the current stream; PyTorch orders nothing across
        # streams for us ("CUDA semantics": with non-default streams synchronisation is the user's), so the lane
        # waits for them once, here, before any step is timed
        lane.stream.wait_stream(torch.cuda.current_stream(self._device))

        def cuda_step() -> float:
            with torch.inference_mode(), torch.cuda.stream(lane.stream):
                start.record(lane.stream)
                forward()
                end.record(lane.stream)
            end.synchronize()
            return start.elapsed_time(end) * 1e-3

        cuda_step.keep_alive = x
        return cuda_step

    def close(self) -> None:
        self._run = None
        self._module = None
        self._lanes = []
