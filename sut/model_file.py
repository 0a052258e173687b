"""What a backend needs to know about an ONNX file before handing it to its runtime.

Both ONNX Runtime and OpenVINO read the same `.onnx` artefact. Checking the file here first gives
one-line user errors (missing, unreadable, corrupt) instead of a runtime's multi-line C++ trace, and
gives both backends the same view of the input tensor and of the model's float precision (which
OpenVINO needs to pick an honest INFERENCE_PRECISION_HINT).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlperf_ext.errors import DatasetError, ModelError
from sut.base import TensorSpec

# ONNX float element types -> the precision name used in results; integer types -> their bit width.
_FLOAT_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}


#: the dtype of a record spec: a model with several inputs is fed one numpy record per sample, a field per input
RECORD = "record"


@dataclass(frozen=True)
class ModelInfo:
    """The parts of an ONNX graph a backend checks before it compiles the model.

    `input` is the one input, or for a model with several a record spec (`record_spec`): the samples of such a
    model travel as numpy records with one field per input name, so the QSL, the dispatchers and the adapter
    move one array per batch whatever the model takes; `inputs` lists every input."""

    path: Path
    input: TensorSpec
    output_names: tuple[str, ...]
    float_precision: str  # "fp32" | "fp16" | "bf16" | "fp64": type of most floating-point weight elements
    weight_types: tuple[str, ...]  # distinct initializer element types, e.g. ("float32", "int2")
    op_counts: tuple[tuple[str, int], ...] = ()  # (op type, nodes) in the graph as stored
    inputs: tuple[TensorSpec, ...] = ()  # every input, in the graph's order (the one `input` when left empty)
    max_batch: int | None = None  # the most samples one execution may take (an accelerator's DMA buffers), if any

    def __post_init__(self):
        if not self.inputs:
            object.__setattr__(self, "inputs", (self.input,))

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    def has_op(self, *op_types: str) -> bool:
        """Whether the graph holds a node of any of these types (read from the census, not the file)."""
        return any(op in op_types for op, _count in self.op_counts)

    @property
    def fixed_batch(self) -> int | None:
        """The leading input dimension when the model fixes it, else None (dynamic batch)."""
        return self.input.shape[0] if self.input.shape else None


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The most informative single line of a runtime exception (runtimes put C++ file:line first)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    # OpenVINO/ORT messages start with "Exception from src/...cpp:NN:" or "Check ... failed at ...";
    # the reason itself is on the last line.
    text = lines[-1] if len(lines) > 1 else lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def once_per_file_version(read: Callable[[Path], str | None]) -> Callable[[Path], str | None]:
    """`read(path)`, called once per version of the file (path, mtime, size): the validator asks a backend
    about the same model for every point of a sweep, and reading an ONNX graph costs seconds."""
    seen: dict[tuple, str | None] = {}

    def cached(path: Path) -> str | None:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in seen:
            seen[key] = read(Path(path))
        return seen[key]

    return cached


def check_model_path(path: Path | str) -> Path:
    """Return the path if it names a readable file; otherwise raise ModelError with a fix."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file {p} does not exist; fix: check the path or build the model variant first")
    if not p.is_file():
        raise ModelError(f"model path {p} is not a file; fix: pass the .onnx file itself")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise ModelError(f"model file {p} cannot be read ({exc.strerror}); fix: check its permissions") from exc
    return p


def _np_dtype_name(elem_type: int) -> str:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        from onnx import TensorProto

        return TensorProto.DataType.Name(elem_type).lower()


def _type_name(elem_type: int) -> str:
    """ONNX element type as a lower-case name that keeps sub-byte types apart (int2, int4, ...)."""
    from onnx import TensorProto

    name = TensorProto.DataType.Name(elem_type).lower()
    return {"float": "float32", "double": "float64", "float16": "float16"}.get(name, name)


def _input_specs(model, path: Path) -> tuple[TensorSpec, ...]:
    initializer_names = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializer_names]
    if not inputs:
        raise ModelError(f"model {path} has no input tensor; fix: export a model that takes its samples as inputs")
    specs = []
    for tensor in inputs:
        tensor_type = tensor.type.tensor_type
        if not tensor_type.HasField("shape"):
            raise ModelError(f"model {path} input '{tensor.name}' has no shape; fix: export the model with input "
                             f"shapes (dynamic batch allowed)")
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                      for d in tensor_type.shape.dim)
        specs.append(TensorSpec(name=tensor.name, shape=shape, dtype=_np_dtype_name(tensor_type.elem_type)))
    return tuple(specs)


def record_spec(specs: tuple[TensorSpec, ...], path: Path) -> TensorSpec:
    """The spec a model with several inputs is fed through: records (one field per input), batched along the
    inputs' common leading dimension."""
    if len(specs) == 1:
        return specs[0]
    if any(not spec.shape for spec in specs):
        scalar = next(spec.name for spec in specs if not spec.shape)
        raise ModelError(f"model {path} input '{scalar}' is a scalar; fix: export every input with a batch dimension")
    leading = {spec.shape[0] for spec in specs}
    if len(leading) != 1:
        raise ModelError(f"model {path} inputs disagree on the batch dimension ({', '.join(f'{s.name}: {s.shape[0]}' for s in specs)}); "
                         "fix: export every input with the same (or a dynamic) first dimension")
    return TensorSpec(name=", ".join(spec.name for spec in specs), shape=(leading.pop(),), dtype=RECORD)


def multi_input_refusal(backend: str, info: ModelInfo) -> str | None:
    """Why a backend that feeds one tensor cannot run `info`, or None when the model has one input."""
    if len(info.inputs) == 1:
        return None
    return (f"{backend} feeds models with one input, and {info.path.name} has {len(info.inputs)} "
            f"({', '.join(info.input_names)}); fix: run it with --backend onnxruntime or openvino")


def split_record(batch: np.ndarray | dict, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A batch of records as one contiguous array per input (what a runtime binds). A dict of named arrays (what a
    task that builds the model's inputs itself hands in, e.g. a decoder's KV cache) is taken as it is."""
    if isinstance(batch, dict):
        return batch
    return {name: np.ascontiguousarray(batch[name]) for name in names}


def _weight_census(model) -> tuple[str, tuple[str, ...]]:
    """(float precision, distinct initializer types): weights decide precision, not the I/O types.

    An FP16 model exported with keep_io_types has float32 I/O but float16 weights; a quantized (QDQ)
    model has integer weights with float32 scales and biases, so its float precision is fp32.
    """
    float_elements: Counter[str] = Counter()
    types: set[str] = set()
    for t in model.graph.initializer:
        name = _type_name(t.data_type)
        types.add(name)
        if name in _FLOAT_PRECISION:
            float_elements[name] += int(np.prod(t.dims)) if len(t.dims) else 1
    for node in model.graph.node:  # Constant nodes carry weights too in some exporters
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.HasField("t"):
                    name = _type_name(attr.t.data_type)
                    types.add(name)
                    if name in _FLOAT_PRECISION:
                        float_elements[name] += int(np.prod(attr.t.dims)) if len(attr.t.dims) else 1
    precision = _FLOAT_PRECISION[float_elements.most_common(1)[0][0]] if float_elements else "fp32"
    return precision, tuple(sorted(types))


def inspect_model(path: Path | str) -> ModelInfo:
    """Parse the ONNX file (weights left on disk) and describe its input, outputs and precision."""
    p = check_model_path(path)
    import onnx

    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, ValueError, OSError... all mean "not an ONNX model"
        raise ModelError(f"model file {p} is not a readable ONNX model ({type(exc).__name__}: "
                         f"{first_line(exc)}); fix: re-export or re-download the model") from exc
    if not model.graph.node or not model.graph.output:
        raise ModelError(f"model file {p} holds no ONNX graph (no nodes or outputs); fix: re-export or "
                         f"re-download the model")
    precision, types = _weight_census(model)
    ops = Counter(node.op_type for node in model.graph.node)
    inputs = _input_specs(model, p)
    return ModelInfo(path=p, input=record_spec(inputs, p), inputs=inputs,
                     output_names=tuple(o.name for o in model.graph.output),
                     float_precision=precision, weight_types=types, op_counts=tuple(sorted(ops.items())))


def refuse_batch(info: ModelInfo, max_batch: int) -> None:
    """Raise ModelError when a model with a fixed leading dimension cannot take `max_batch`."""
    if not info.input.shape:
        raise ModelError(f"model {info.path} input '{info.input.name}' is a scalar; fix: export the model with "
                         f"a batch dimension")
    fixed = info.fixed_batch
    if fixed is not None and fixed != max_batch:
        raise ModelError(f"model {info.path} takes batch {fixed} only; fix: use --batch {fixed} or export the model "
                         f"with a dynamic batch dimension")
    if info.max_batch is not None and max_batch > info.max_batch:
        raise ModelError(f"batch {max_batch} exceeds the {info.max_batch} samples {info.path}'s buffers may hold "
                         f"(max_batch); fix: use --batch {info.max_batch} or less")


def batch_rows(batch: np.ndarray | dict) -> int:
    """Samples in a batch: an array's rows, or the rows of the named arrays a task built for the model."""
    return len(next(iter(batch.values()))) if isinstance(batch, dict) else batch.shape[0]


def fit_batch(batch: np.ndarray | dict, info: ModelInfo) -> tuple[np.ndarray | dict, int]:
    """Pad a short last batch up to a fixed model batch; returns (array to run, rows to keep).

    Only a model with a fixed batch larger than the batch handed in needs this; padding is real work a
    deployed system does, so it belongs on the system path.
    """
    n = batch_rows(batch)
    fixed = info.fixed_batch
    if fixed is None or n == fixed:
        return batch, n
    if isinstance(batch, dict):  # named arrays are built for the model by a task: never padded here
        raise ModelError(f"batch of {n} handed to model {info.path}, which takes batch {fixed} only; fix: export the "
                         "model with a dynamic batch dimension")
    if n > fixed:
        raise ModelError(f"batch of {n} handed to model {info.path}, which takes batch {fixed} only; fix: use "
                         f"--batch {fixed}")
    pad = np.zeros((fixed - n, *batch.shape[1:]), dtype=batch.dtype)
    return np.concatenate([batch, pad]), n


def check_inputs(dataset, specs: tuple[TensorSpec, ...]) -> None:
    """The dataset's samples must be what the model's inputs take: for one input, the samples themselves; for
    several, records with a field per input name (dynamic dims match anything)."""
    fields = np.dtype(dataset.dtype).names
    if len(specs) == 1 and not fields:
        check_shapes(dataset, specs[0])
        return
    names = [spec.name for spec in specs]
    if not fields:
        raise DatasetError(f"dataset '{dataset.name}' holds one array per sample but the model takes {len(specs)} inputs "
                           f"({', '.join(names)}); fix: give one array per input name (an .npz file, or inputs/<name>.npy)")
    missing = [n for n in names if n not in fields]
    extra = [f for f in fields if f not in names]
    if missing or extra:
        raise DatasetError(f"dataset '{dataset.name}' arrays ({', '.join(fields)}) do not match the model inputs "
                           f"({', '.join(names)}): " + "; ".join(filter(None, [
                               f"missing {', '.join(missing)}" if missing else "",
                               f"not inputs: {', '.join(extra)}" if extra else ""])) + "; fix: name one array after each "
                           "model input")
    dtype = np.dtype(dataset.dtype)
    for spec in specs:
        field = dtype[spec.name]
        check_shapes(_FieldView(f"{dataset.name}[{spec.name}]", field.shape, field.base), spec)


@dataclass(frozen=True)
class _FieldView:
    """One field of a record dataset, as check_shapes reads a dataset."""

    name: str
    sample_shape: tuple[int, ...]
    dtype: np.dtype


def check_shapes(dataset, spec: TensorSpec) -> None:
    """The dataset's samples must be what the model's input takes (dynamic dims match anything)."""
    want = tuple(spec.shape[1:])
    have = tuple(dataset.sample_shape)
    if len(want) != len(have) or any(w is not None and w != h for w, h in zip(want, have)):
        shown = tuple("?" if w is None else w for w in want)
        raise DatasetError(f"dataset '{dataset.name}' samples have shape {have} but the model input "
                           f"'{spec.name}' takes {shown}; fix: use a dataset preprocessed for this model")
    if np.dtype(dataset.dtype) != np.dtype(spec.dtype):
        raise DatasetError(f"dataset '{dataset.name}' samples are {np.dtype(dataset.dtype)} but the model "
                           f"input takes {spec.dtype}; fix: preprocess the data to {spec.dtype}")
