"""Coral backend: TFLite models on LiteRT's CPU path (XNNPACK, threads) or on a Coral Edge TPU.

Runtime: `ai_edge_litert.interpreter` (LiteRT, the successor of tflite-runtime), else
`tflite_runtime.interpreter` (the runtime option `interpreter` picks one explicitly). Google's pycoral is a
thin wrapper over the same interpreter and `load_delegate` (github.com/google-coral/pycoral,
pycoral/utils/edgetpu.py: make_interpreter loads `libedgetpu.so.1` with `{'device': ...}`), so it is not
needed; when Google's pycoral is importable it is used only to read back the Edge TPU runtime version and the
TPUs it sees. The PyPI package named `pycoral` is another project (a coral-reef atlas CLI) and is never
imported as this one.

Devices: `cpu` is LiteRT's own CPU path: the default op resolver applies the XNNPACK delegate (runtime option
`xnnpack`: auto/on/off), `num_threads` per stream. `edgetpu[:usb|:pci][:N]` loads the Edge TPU delegate
(`load_delegate('libedgetpu.so.1', {'device': 'usb:0'})`, pycoral's device strings). A delegate that does not
load is refused with one line; nothing falls back to the CPU. A model must match its device: an
`*_edgetpu.tflite` (edgetpu_compiler's output, holding `edgetpu-custom-op`) runs only on the Edge TPU, and a
model without that op is refused there, since every op of it would silently run on the CPU.

Models: full-integer TFLite flatbuffers. Inputs are float32 on the host and quantized with the input tensor's
scale and zero point before `set_tensor` (as pycoral's examples/classify_image.py does); int8 outputs are
dequantized. Both are on the system path. A dynamic batch (shape signature -1) is resized per stream when the
batch size changes (counted in the row); a fixed one is padded.

Timing: the system path `infer` is quantize + `set_tensor` + `invoke` + `get_tensor` + dequantize. The compute
path sets the quantized batch once per step, then times `invoke()` alone with `time.perf_counter_ns`; outputs
stay in the interpreter. On the Edge TPU `invoke()` includes the transfer of the input and output over
USB/PCIe (the runtime does it inside invoke).

Streams: one interpreter per stream, each with its share of the threads; on the Edge TPU every stream loads
its own delegate on the same device (executions serialize on one TPU; the row says so).

Operating modes: the Edge TPU's clock is the libedgetpu build installed (`libedgetpu1-max`: maximum clock,
`libedgetpu1-std`: reduced; coral.ai/docs/accelerator/get-started, "Install the Edge TPU runtime"); it cannot
be switched at run time. The platform catalog's coral-edgetpu fast/slow modes pass
`edgetpu-max`/`edgetpu-std`; the backend reads which Debian package owns the libedgetpu mapped into the
process and refuses a mismatch. The row records the build found (`n/a` on the CPU).

What executed is read back from the interpreter: each compute-heavy op's operand types (FULLY_CONNECTED with
int8 activations and int8 weights is int8), which ops XNNPACK's DELEGATE node took (from the tensors at the
partition's boundary), and, on the Edge TPU, how many ops edgetpu_compiler mapped into `edgetpu-custom-op`.
"""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from mlperf_ext.errors import BackendUnavailable, ConfigError, ModelError
from mlperf_ext.zoo.tflite import (
    EDGETPU_CUSTOM_OP,
    HEAVY_OPS,
    TensorQuant,
    TfliteGraph,
    is_tflite,
    read_tflite,
)
from sut.base import (
    MODEL_PRECISION,
    BackendDescription,
    ComputeStep,
    DeploymentOptions,
    TensorSpec,
    check_exec_precision,
    check_runtime_options,
)
from sut.model_file import ModelInfo, check_model_path, first_line, fit_batch, refuse_batch
from sut.precision import HeavyOp, dtype_name, summarize

#: runtime option `interpreter` -> (distribution, module that has Interpreter and load_delegate)
INTERPRETERS = {
    "ai-edge-litert": ("ai-edge-litert", "ai_edge_litert.interpreter"),
    "tflite-runtime": ("tflite-runtime", "tflite_runtime.interpreter"),
}
#: the Edge TPU runtime's library per OS (pycoral/utils/edgetpu.py, _EDGETPU_SHARED_LIB)
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(
    platform.system(), "libedgetpu.so.1"
)
#: DeploymentOptions.operating_mode (tiers/runner/modes.py backend_hint) -> the libedgetpu build it needs
CLOCK_MODES = {"edgetpu-max": "max", "edgetpu-std": "std"}
#: Coral's Debian packages of the two builds (coral.ai docs, "Install the Edge TPU runtime")
LIBEDGETPU_PACKAGES = {"libedgetpu1-max": "max", "libedgetpu1-std": "std"}
DPKG_INFO = Path("/var/lib/dpkg/info")
DPKG_STATUS = Path("/var/lib/dpkg/status")
PROC_MAPS = Path("/proc/self/maps")
EDGETPU_FIX = (
    "install the Edge TPU runtime (apt-get install libedgetpu1-std, or libedgetpu1-max for the maximum "
    "clock, from Coral's package repository), plug in the Edge TPU, or use --device cpu"
)


# ---------------------------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class Device:
    kind: str  # "cpu" | "edgetpu"
    edgetpu: str | None = None  # the delegate's 'device' option ("usb", "usb:0", "pci:1", ":0"); None = first


def parse_device(device: str) -> Device:
    """cpu, edgetpu, edgetpu:usb, edgetpu:usb:1, edgetpu:pci:0, edgetpu:0 (pycoral's device strings)."""
    text = device.lower()
    if text in ("cpu", "cpu:0"):
        return Device("cpu")
    kind, _, rest = text.partition(":")
    if kind != "edgetpu":
        raise ConfigError(
            f"coral has no device '{device}'; fix: use --device cpu or --device edgetpu[:usb|:pci][:N]"
        )
    if not rest:
        return Device("edgetpu")
    bus, _, index = rest.partition(":")
    if bus.isdigit() and not index:
        return Device("edgetpu", f":{bus}")
    if bus in ("usb", "pci") and (not index or index.isdigit()):
        return Device("edgetpu", rest)
    raise ConfigError(
        f"'{device}' is not an Edge TPU device; fix: use edgetpu, edgetpu:N, edgetpu:usb[:N] or "
        "edgetpu:pci[:N]"
    )


def find_interpreter(choice: str = "auto") -> str:
    """The `interpreter` option value to use (auto: ai-edge-litert, else tflite-runtime), found without
    importing it; BackendUnavailable naming the extra when it is not installed."""
    names = list(INTERPRETERS) if choice == "auto" else [choice]
    for name in names:
        if importlib.util.find_spec(INTERPRETERS[name][1].partition(".")[0]) is not None:
            return name
    wanted = " or ".join(INTERPRETERS[n][0] for n in names)
    raise BackendUnavailable("coral", "coral", f"no TFLite interpreter: {wanted} is not installed")


def interpreter_module(choice: str = "auto"):
    """(option value, module with Interpreter and load_delegate) of the interpreter to use."""
    name = find_interpreter(choice)
    return name, importlib.import_module(INTERPRETERS[name][1])


def google_pycoral():
    """Google's pycoral.utils.edgetpu when it is installed, else None. The PyPI package named 'pycoral'
    (another project) has no utils/edgetpu.py, so it is recognised without importing it."""
    spec = importlib.util.find_spec("pycoral")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not any((Path(loc) / "utils" / "edgetpu.py").is_file() for loc in locations):
        return None
    try:
        return importlib.import_module("pycoral.utils.edgetpu")
    except Exception:  # noqa: BLE001 - pycoral pins an old tflite_runtime; unusable means absent here
        return None


# ----------------------------------------------------------------------------------------- the Edge TPU clock


def libedgetpu_build(maps: Path = PROC_MAPS, dpkg_info: Path = DPKG_INFO) -> tuple[str | None, str]:
    """('max' | 'std' | None, evidence): the Debian package owning the libedgetpu mapped into this process."""
    try:
        lines = maps.read_text().splitlines()
    except OSError as exc:
        return None, f"cannot read {maps} ({exc.strerror})"
    loaded = sorted({line.split()[-1] for line in lines if "libedgetpu" in line and "/" in line})
    if not loaded:
        return None, "no libedgetpu is mapped into this process"
    mapped = {str(Path(p).resolve()) for p in loaded}
    for package, clock in LIBEDGETPU_PACKAGES.items():
        for listing in sorted(dpkg_info.glob(f"{package}.list")) + sorted(
            dpkg_info.glob(f"{package}:*.list")
        ):
            try:
                owned = [ln for ln in listing.read_text().splitlines() if "libedgetpu" in ln]
            except OSError:
                continue
            if mapped & {str(Path(f).resolve()) for f in owned} or mapped & set(owned):
                return clock, f"{loaded[0]} belongs to the Debian package {listing.stem}"
    return None, (
        f"{loaded[0]} belongs to neither libedgetpu1-max nor libedgetpu1-std (no {dpkg_info}/"
        f"libedgetpu1-*.list names it)"
    )


def package_version(package: str, status: Path = DPKG_STATUS) -> str | None:
    """A Debian package's installed version from dpkg's status file, or None."""
    try:
        stanzas = status.read_text().split("\n\n")
    except OSError:
        return None
    for stanza in stanzas:
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" ")
        )
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields.get("Version")
    return None


# ---------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class TfliteModelInfo(ModelInfo):
    """sut.model_file.ModelInfo of a TFLite file (what the runner checks), with the graph it was read from."""

    graph: TfliteGraph | None = None

    @property
    def edgetpu_ops(self) -> int:
        return sum(1 for op in self.graph.ops if op == EDGETPU_CUSTOM_OP) if self.graph else 0


def _host_spec(tensor) -> TensorSpec:
    """The input as the host feeds it: float32 when the model's input is quantized (the backend does that)."""
    shape = tuple(None if d < 0 else d for d in tensor.signature)
    return TensorSpec(tensor.name, shape, "float32" if tensor.quant.quantized else tensor.quant.dtype)


def inspect_tflite(path: Path | str) -> ModelInfo:
    """The model as this backend sees it: a TfliteModelInfo for a TFLite file; for an ONNX file the ONNX view
    (so `supports` can refuse it with the way to convert it); ModelError for anything else."""
    p = check_model_path(path)
    with p.open("rb") as fh:
        head = fh.read(8)
    if not is_tflite(head):
        from sut.model_file import inspect_model

        try:
            return inspect_model(p)
        except ModelError as exc:
            raise ModelError(
                f"model file {p} is neither a TFLite flatbuffer (no 'TFL3' identifier) nor an ONNX model; "
                "fix: pass a .tflite file"
            ) from exc
    try:
        graph = read_tflite(p.read_bytes())
    except ModelError as exc:
        raise ModelError(f"model file {p}: {exc}") from exc
    if len(graph.inputs) != 1 or not graph.outputs:
        raise ModelError(
            f"model {p} has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; fix: use a "
            "model with one input tensor"
        )
    ops = tuple(sorted({op: graph.ops.count(op) for op in graph.ops}.items()))
    weights = tuple(graph.constant_types)
    floats = [t for t in graph.constant_types if t.startswith("float")]
    precision = {"float16": "fp16", "float64": "fp64"}.get(floats[0], "fp32") if floats else "fp32"
    return TfliteModelInfo(
        path=p,
        input=_host_spec(graph.inputs[0]),
        output_names=tuple(t.name for t in graph.outputs),
        float_precision=precision,
        weight_types=weights,
        op_counts=ops,
        graph=graph,
    )


# ---------------------------------------------------------------------------------------------- read-back


def delegated_ops(ops: list[dict]) -> set[int]:
    """Indices of the original ops inside DELEGATE partitions, found from the tensors at the partitions'
    boundaries: forward, an op whose inputs all are partition inputs or made inside; backward, only those
    whose outputs reach a partition output."""
    delegates = [op for op in ops if op.get("op_name") == "DELEGATE"]
    if not delegates:
        return set()
    inside = {int(t) for d in delegates for t in d["inputs"]}
    outputs = {int(t) for d in delegates for t in d["outputs"]}
    made: set[int] = set()
    taken = []
    for op in ops:
        if op.get("op_name") == "DELEGATE":
            continue
        ins = [int(t) for t in op["inputs"] if int(t) >= 0]
        if ins and all(t in inside or t in made for t in ins):
            taken.append(op)
            made |= {int(t) for t in op["outputs"]}
    kept: set[int] = set()
    needed = set(outputs)
    for op in reversed(taken):
        if any(int(t) in needed for t in op["outputs"]):
            kept.add(int(op["index"]))
            needed |= {int(t) for t in op["inputs"]}
    return kept


def executed_precision(ops: list[dict]) -> tuple[str, str]:
    """(what executed, compute dtype) from the interpreter's op details (operand types of each heavy op)."""
    heavy: list[HeavyOp] = []
    dynamic = False
    for op in ops:
        name = op.get("op_name", "")
        types = [dtype_name(np.dtype(t).name) for t in op.get("operand_types", [])]
        if (
            name == EDGETPU_CUSTOM_OP
        ):  # the Edge TPU computes in 8-bit integers only (coral.ai model requirements)
            heavy.append(HeavyOp(name, "int8"))
        elif name in HEAVY_OPS and len(types) >= 2:
            activations, weights = types[0], types[1]
            if (
                activations in ("fp32", "fp16") and weights == "int8"
            ):  # hybrid: activations quantized at run time
                dynamic = True
                heavy.append(HeavyOp(name, "int8"))
            else:
                heavy.append(HeavyOp(name, activations, weights if weights != activations else None))
    return summarize(heavy, "dynamic-range: float activations quantized at run time" if dynamic else "")


def _ops_details(interpreter) -> list[dict]:
    """The interpreter's nodes (op name, tensor indices, operand types). tflite-runtime 2.14 gives no
    operand types: they are filled in from the tensors' own types."""
    getter = getattr(interpreter, "_get_ops_details", None)
    try:
        ops = [dict(op) for op in getter()] if getter is not None else []
    except Exception:  # noqa: BLE001 - an old runtime without op details: the row says "unknown"
        return []
    if any(op.get("operand_types") is None for op in ops):
        types = {int(t["index"]): t["dtype"] for t in interpreter.get_tensor_details()}
        for op in ops:
            if op.get("operand_types") is None:
                op["operand_types"] = [types[int(i)] for i in op["inputs"] if int(i) in types]
    return ops


def _share(threads: int | None, streams: int) -> list[int]:
    """num_threads per stream interpreter: `threads` (or the usable CPUs) shared out, at least one each."""
    total = threads if threads is not None else len(os.sched_getaffinity(0))
    share, extra = divmod(max(total, streams), streams)
    return [share + (1 if k < extra else 0) for k in range(streams)]


@dataclass
class _Stream:
    """One interpreter and what its input/output need."""

    interpreter: object
    input_index: int
    output_index: int
    qin: TensorQuant
    qout: TensorQuant
    sample_shape: tuple[int, ...]
    threads: int
    delegate: object = None
    batch: int | None = None  # the batch the input is sized for now
    resizes: int = 0

    def size_for(self, n: int) -> None:
        """Resize the input to a batch of n (and allocate) when it is sized for another batch."""
        if self.batch == n:
            return
        self.interpreter.resize_tensor_input(self.input_index, [n, *self.sample_shape])
        self.interpreter.allocate_tensors()
        self.batch = n
        self.resizes += 1


def _ignore_delegate_del(hook):
    """An unraisablehook that drops LiteRT's Delegate.__del__ AttributeError after a failed load (the object
    was never built), and passes everything else to `hook`."""

    def ignore(unraisable):
        if "Delegate.__del__" not in repr(getattr(unraisable, "object", "")):
            hook(unraisable)

    return ignore


# ---------------------------------------------------------------------------------------------- the backend


class CoralBackend:
    """A TFLite model in one LiteRT interpreter per stream, on the CPU (XNNPACK) or a Coral Edge TPU."""

    name = "coral"
    extra = "coral"
    runtime_module = None  # ai_edge_litert or tflite_runtime: check_device finds one (or names the extra)
    runtime_packages = ("ai-edge-litert", "tflite-runtime")
    exec_precisions = (MODEL_PRECISION,)  # a full-integer model runs in the precision it was quantized to
    runtime_option_values = {"interpreter": ("auto", *INTERPRETERS), "xnnpack": ("auto", "on", "off")}
    mode_actions = ("edgetpu_clock",)  # the Edge TPU clock a mode names, checked against libedgetpu's build

    def __init__(self) -> None:
        self._module = None
        self._interpreter_name = ""
        self._streams: list[_Stream] = []
        self._info: TfliteModelInfo | None = None
        self._options: DeploymentOptions | None = None
        self._device = Device("cpu")
        self._xnnpack = True
        self._clock: tuple[str | None, str] = (None, "")
        self._resolver = None

    # -- facts ---------------------------------------------------------------------------------
    @staticmethod
    def check_device(device: str) -> None:
        """Refuse, before anything runs, a device string this backend does not know, a missing interpreter,
        and an Edge TPU whose runtime library is not installed (the child then tries the delegate itself)."""
        parsed = parse_device(device)
        find_interpreter("auto")
        if parsed.kind == "edgetpu" and ctypes.util.find_library("edgetpu") is None:
            raise ConfigError(
                f"no Edge TPU runtime here: {EDGETPU_LIBRARY} is not installed; fix: {EDGETPU_FIX}"
            )

    inspect_model = staticmethod(inspect_tflite)

    @classmethod
    def supports(cls, model: ModelInfo, options: DeploymentOptions) -> str | None:
        check_runtime_options(cls, options.runtime_options)
        name = Path(model.path).name
        if not isinstance(model, TfliteModelInfo):
            return (
                f"coral runs TFLite flatbuffers, and {name} is an ONNX model; fix: convert it first: "
                "the zoo's INT8 variants have full-integer TFLite twins (--model <name>-tflite, e.g. "
                "mlp-w256-int8-tflite, built by mlperf_ext.zoo.tflite), other models need a TFLite "
                "converter"
            )
        reason = check_exec_precision(cls, options)
        if reason:
            return reason
        device = parse_device(options.device)
        if device.kind == "cpu" and model.edgetpu_ops:
            return (
                f"{name} is compiled for the Edge TPU ({model.edgetpu_ops} {EDGETPU_CUSTOM_OP}), which "
                "the CPU cannot run; fix: use --device edgetpu, or the .tflite it was compiled from"
            )
        if device.kind == "edgetpu" and not model.edgetpu_ops:
            compiled = f"{Path(model.path).stem}_edgetpu.tflite"
            return (
                f"{name} is not compiled for the Edge TPU (no {EDGETPU_CUSTOM_OP}): every op would run "
                f"on the CPU; fix: compile it with `edgetpu_compiler {name}` (writes {compiled}) or use "
                "--device cpu"
            )
        mode = options.operating_mode
        if mode and mode not in CLOCK_MODES:
            return (
                f"coral has no operating mode '{mode}' (it takes {', '.join(CLOCK_MODES)}: the "
                "coral-edgetpu platform's fast and slow modes); fix: use --platform coral-edgetpu "
                "--operating-mode fast or slow"
            )
        if mode and device.kind != "edgetpu":
            return (
                f"operating mode {mode} is the Edge TPU's clock and cannot apply to --device "
                f"{options.device}; fix: drop --operating-mode or use --device edgetpu"
            )
        return None

    # -- loading -------------------------------------------------------------------------------
    def load(self, model_path: Path, options: DeploymentOptions) -> None:
        runtime = options.runtime_options
        self._interpreter_name, self._module = interpreter_module(runtime.get("interpreter", "auto"))
        self._device = parse_device(options.device)
        info = inspect_tflite(model_path)
        refuse_batch(info, options.max_batch)
        reason = self.supports(info, options)
        if reason:
            raise ConfigError(reason)
        assert isinstance(info, TfliteModelInfo)
        self._info, self._options = info, options
        xnnpack = runtime.get("xnnpack", "auto")
        # auto: XNNPACK on the CPU; off beside the Edge TPU delegate (pycoral's tflite_runtime ran CPU ops so)
        self._xnnpack = xnnpack == "on" or (xnnpack == "auto" and self._device.kind == "cpu")
        self._streams = [self._stream(info, threads) for threads in _share(options.threads, options.streams)]
        if self._device.kind == "edgetpu":
            self._clock = libedgetpu_build()
            wanted = CLOCK_MODES.get(options.operating_mode or "")
            if wanted and self._clock[0] != wanted:
                self.close()
                raise ConfigError(
                    f"operating mode {options.operating_mode} needs the libedgetpu1-{wanted} build, but "
                    f"{self._clock[1]}; fix: apt-get install libedgetpu1-{wanted} (it replaces the other "
                    "build), or run the platform's other mode"
                )
        # one run on each stream: XNNPACK packs its weights, the Edge TPU receives its parameters
        for stream in self._streams:
            stream.size_for(options.max_batch if info.fixed_batch is None else info.fixed_batch)
            zeros = np.zeros((stream.batch, *stream.sample_shape), np.dtype(stream.qin.dtype))
            try:
                stream.interpreter.set_tensor(stream.input_index, zeros)
                stream.interpreter.invoke()
            except (ValueError, RuntimeError) as exc:
                self.close()
                raise ModelError(
                    f"{self._interpreter_name} cannot run {info.path} ({first_line(exc)}); fix: check "
                    "the model's ops against this runtime, or re-convert it"
                ) from exc

    def _delegate(self):
        """A new Edge TPU delegate on this point's device; ConfigError (never the CPU) when it cannot load."""
        options = {"device": self._device.edgetpu} if self._device.edgetpu else {}
        hook = sys.unraisablehook
        sys.unraisablehook = _ignore_delegate_del(hook)
        try:
            try:
                return self._module.load_delegate(EDGETPU_LIBRARY, options)
            except (OSError, ValueError, RuntimeError) as exc:
                error = first_line(exc)
        finally:
            sys.unraisablehook = hook
        raise ConfigError(f"the Edge TPU delegate did not load ({error}); fix: {EDGETPU_FIX}")

    def _stream(self, info: TfliteModelInfo, threads: int) -> _Stream:
        module = self._module
        delegate = self._delegate() if self._device.kind == "edgetpu" else None
        # tflite-runtime before 2.5 has no OpResolverType (and no default XNNPACK delegate)
        kinds = getattr(module, "OpResolverType", None)
        kwargs = {}
        if kinds is not None:
            kwargs["experimental_op_resolver_type"] = (
                kinds.AUTO if self._xnnpack else kinds.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        self._resolver = kwargs.get("experimental_op_resolver_type")
        try:
            interpreter = module.Interpreter(
                model_path=str(info.path),
                num_threads=threads,
                experimental_delegates=[delegate] if delegate is not None else None,
                **kwargs,
            )
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{self._interpreter_name} cannot load {info.path} ({first_line(exc)}); fix: check the "
                "model's ops against this runtime, or re-convert it"
            ) from exc
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        return _Stream(
            interpreter,
            int(inp["index"]),
            int(out["index"]),
            TensorQuant.of(inp),
            TensorQuant.of(out),
            tuple(int(d) for d in inp["shape"][1:]),
            threads,
            delegate,
        )

    def _require(self) -> list[_Stream]:
        if not self._streams:
            raise RuntimeError("CoralBackend used before load()")
        return self._streams

    # -- description ---------------------------------------------------------------------------
    def describe(self) -> BackendDescription:
        streams = self._require()
        assert self._info is not None and self._options is not None
        ops = _ops_details(streams[0].interpreter)
        originals = [op for op in ops if op.get("op_name") != "DELEGATE"]
        taken = delegated_ops(ops)
        on_tpu = self._device.kind == "edgetpu"
        text, dtype = (
            executed_precision(originals) if ops else ("unknown (the runtime gives no op details)", "")
        )
        kinds = sorted({op.get("op_name", "") for op in originals})
        settings = {
            "interpreter": f"{self._module.__name__}.Interpreter",
            "num_threads": [s.threads for s in streams],
            "streams": self._options.streams,
            "stream_interpreters": len(streams),
            "op_resolver": (
                "this runtime's default (it has no OpResolverType)"
                if self._resolver is None
                else "AUTO (LiteRT's default XNNPACK delegate)"
                if self._xnnpack
                else "BUILTIN_WITHOUT_DEFAULT_DELEGATES (no XNNPACK)"
            ),
            "ops": {k: sum(1 for op in originals if op.get("op_name") == k) for k in kinds},
            "delegate_nodes": sum(1 for op in ops if op.get("op_name") == "DELEGATE"),
            "ops_in_delegate_partitions": len(taken),
            "input": {
                "shape_signature": list(self._info.graph.inputs[0].signature),
                **streams[0].qin.to_dict(),
            },
            "output": {
                "shape_signature": list(self._info.graph.outputs[0].signature),
                **streams[0].qout.to_dict(),
            },
            "host_quantization": (
                f"float32 -> {streams[0].qin.dtype} with the input's scale and zero point "
                "(np.rint, saturated), on the system path"
                if streams[0].qin.quantized
                else "none"
            ),
            "output_dequantization": "on the system path" if streams[0].qout.quantized else "none",
            "input_resizes": [s.resizes for s in streams],
            "compute_boundary": "invoke() after set_tensor: the quantized batch is set once per step, "
            "outputs stay in the interpreter",
            "edgetpu_clock": (self._clock[0] or f"unknown ({self._clock[1]})") if on_tpu else "n/a (cpu)",
        }
        providers, notes = [], []
        if on_tpu:
            settings.update(self._edgetpu_settings())
            providers.append(
                f"edgetpu delegate ({EDGETPU_LIBRARY}, device {self._device.edgetpu or 'first found'})"
            )
            cpu_ops = [op for op in originals if op.get("op_name") != EDGETPU_CUSTOM_OP]
            cpu_kinds = ", ".join(sorted({o["op_name"] for o in cpu_ops})) or "none"
            notes.append(
                f"edgetpu_compiler mapped ops into {self._info.edgetpu_ops} {EDGETPU_CUSTOM_OP}; "
                f"{len(cpu_ops)} op(s) run on the CPU: {cpu_kinds}"
            )
            if len(streams) > 1:
                notes.append(
                    f"{len(streams)} streams share {self._device.edgetpu or 'one'} Edge TPU: its executions "
                    "serialize"
                )
        if settings["delegate_nodes"] and not on_tpu:
            providers.append("XNNPACK")
        if not settings["delegate_nodes"] or len(taken) < len(originals):
            providers.append("LiteRT builtin kernels")
        if self._xnnpack and not on_tpu and not settings["delegate_nodes"]:
            notes.append("XNNPACK was enabled but took no op: every op ran on LiteRT's builtin kernels")
        elif settings["delegate_nodes"] and len(taken) < len(originals):
            left = sorted({op["op_name"] for op in originals if int(op["index"]) not in taken})
            notes.append(
                f"{len(originals) - len(taken)} of {len(originals)} ops ran outside the delegate: "
                f"{', '.join(left)}"
            )
        return BackendDescription(
            runtime=self._interpreter_name,
            version=self._version(),
            device=self._options.device,
            providers=providers,
            settings=settings,
            precision=text,
            compute_dtype=dtype,
            notes=notes,
        )

    def _version(self) -> str:
        try:
            return metadata.version(INTERPRETERS[self._interpreter_name][0])
        except metadata.PackageNotFoundError:
            return getattr(self._module, "__version__", "unknown")

    def _edgetpu_settings(self) -> dict:
        """The Edge TPU runtime as installed: the package version, and pycoral's read-back where it exists."""
        out: dict = {"libedgetpu_evidence": self._clock[1]}
        for package in LIBEDGETPU_PACKAGES:
            version = package_version(package)
            if version:
                out["libedgetpu_package"] = f"{package} {version}"
        coral = google_pycoral()
        if coral is not None:
            try:
                out["edgetpu_runtime_version"] = str(coral.get_runtime_version())
                out["edge_tpus"] = [dict(d) for d in coral.list_edge_tpus()]
            except Exception as exc:  # noqa: BLE001 - read-back only; the row says why it is missing
                out["pycoral_error"] = first_line(exc)
        return out

    def input_spec(self) -> TensorSpec:
        self._require()
        assert self._info is not None
        return self._info.input

    # -- system path ---------------------------------------------------------------------------
    def infer(self, batch: np.ndarray, stream: int = 0) -> np.ndarray:
        s = self._require()[stream]
        assert self._info is not None
        run_batch, keep = fit_batch(batch, self._info)
        s.size_for(len(run_batch))
        s.interpreter.set_tensor(s.input_index, np.ascontiguousarray(s.qin.quantize(run_batch)))
        s.interpreter.invoke()
        out = s.qout.dequantize(s.interpreter.get_tensor(s.output_index))
        return out[:keep] if keep != len(run_batch) else out

    # -- compute path --------------------------------------------------------------------------
    def compute_step(self, batch: np.ndarray, stream: int = 0) -> ComputeStep:
        s = self._require()[stream]
        assert self._info is not None
        run_batch, _ = fit_batch(batch, self._info)
        s.size_for(len(run_batch))
        s.interpreter.set_tensor(s.input_index, np.ascontiguousarray(s.qin.quantize(run_batch)))
        invoke, clock = s.interpreter.invoke, time.perf_counter_ns

        def step() -> float:
            start = clock()
            invoke()
            return (clock() - start) * 1e-9

        return step

    def close(self) -> None:
        # interpreters before their delegates (LiteRT's Interpreter.__del__ ordering note)
        for s in self._streams:
            s.interpreter = None
        self._streams = []
