"""Reading a model for the torch backend: a torch.export ExportedProgram (`.pt2`), or an ONNX file through
onnx2torch.

The runner checks a model before anything runs (`inspect`: its one input, batch dimension, dtype, the float
precision of its weights); the backend reads the file once more into its facts and the callable module (`open_model`). An ExportedProgram
carries its input's shape and dtype in its graph (`torch.export.save`; a batch exported with
`torch.export.Dim` reads as dynamic). An ONNX file is read by `sut.model_file.inspect_model` and converted
with onnx2torch, which imports torchvision: a torchvision built for another torch (PyPI's CUDA torchvision
beside a CPU torch) cannot be imported, and the error says so.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mlperf_ext.errors import BackendUnavailable, ModelError
from sut.base import TensorSpec
from sut.model_file import ModelInfo, check_model_path, first_line, inspect_model

#: the file suffixes the torch backend reads
SUFFIXES = (".pt2", ".onnx")
#: the pip extra that adds the ONNX path (onnx2torch and the torchvision it imports)
ONNX_EXTRA = "torch-onnx"
_FLOAT_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}


def torch_dtype_name(dtype: Any) -> str:
    """torch.float32 -> 'float32' (numpy's spelling; bfloat16 keeps torch's, as numpy has none)."""
    return str(dtype).removeprefix("torch.")


def require_torch():
    """The torch module, or BackendUnavailable naming the `torch` extra."""
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable("torch", "torch", detail=str(exc)) from exc
    return torch


def _load_program(path: Path):
    torch = require_torch()
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # zipfile.BadZipFile, RuntimeError, KeyError...: all mean "no ExportedProgram"
        raise ModelError(f"model file {path} is not a readable torch.export program ({type(exc).__name__}: "
                         f"{first_line(exc)}); fix: save it with torch.export.save(torch.export.export(model, "
                         f"args), '{path.name}') with this torch ({torch.__version__})") from exc


def _input_of_program(program, path: Path) -> TensorSpec:
    user_inputs = list(program.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise ModelError(f"model {path} has {len(user_inputs)} inputs ({', '.join(user_inputs) or 'none'}); fix: "
                         "export a program with exactly one input tensor")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == user_inputs[0])
    value = node.meta.get("val")
    if value is None or not hasattr(value, "shape"):
        raise ModelError(f"model {path} input '{user_inputs[0]}' is not a tensor; fix: export a program whose "
                         "one input is a tensor")
    shape = tuple(int(d) if isinstance(d, int) else None for d in value.shape)  # a SymInt is a dynamic dim
    return TensorSpec(name=user_inputs[0], shape=shape, dtype=torch_dtype_name(value.dtype))


def _weight_census(program) -> tuple[str, tuple[str, ...]]:
    """(float precision by element count, distinct weight dtypes) of the program's parameters and buffers."""
    elements: Counter[str] = Counter()
    types: set[str] = set()
    for tensor in list(program.state_dict.values()) + list(program.constants.values()):
        if not hasattr(tensor, "dtype"):
            continue
        name = torch_dtype_name(tensor.dtype)
        types.add(name)
        if name in _FLOAT_NAMES:
            elements[name] += tensor.numel()
    precision = _FLOAT_NAMES[elements.most_common(1)[0][0]] if elements else "fp32"
    return precision, tuple(sorted(types))


def program_info(program, path: Path) -> ModelInfo:
    """The facts the runner checks, read from an ExportedProgram's graph and weights."""
    precision, types = _weight_census(program)
    ops = Counter(str(n.target) for n in program.graph.nodes if n.op == "call_function")
    return ModelInfo(path=path, input=_input_of_program(program, path),
                     output_names=tuple(program.graph_signature.user_outputs), float_precision=precision,
                     weight_types=types, op_counts=tuple(sorted(ops.items())))


def inspect(path: Path | str) -> ModelInfo:
    """A model's facts for the torch backend; one line naming the fix for a file it cannot read."""
    p = check_model_path(path)
    if p.suffix == ".pt2":
        return program_info(_load_program(p), p)
    if p.suffix == ".onnx":
        return inspect_model(p)
    raise ModelError(f"the torch backend reads {' or '.join(SUFFIXES)} files, not '{p.name}'; fix: save the model "
                     "with torch.export.save (.pt2), or pass its ONNX export")


def onnx2torch_module():
    """The onnx2torch module, or BackendUnavailable naming the extra and why it cannot be imported."""
    try:
        import onnx2torch
    except ImportError as exc:
        raise BackendUnavailable("torch", ONNX_EXTRA, detail=f"reading an ONNX model needs onnx2torch ({exc})") from exc
    except RuntimeError as exc:  # torchvision built for another torch: "operator torchvision::nms does not exist"
        raise BackendUnavailable("torch", ONNX_EXTRA, detail=f"onnx2torch imports torchvision, which fails here "
                                 f"({first_line(exc)}): it needs a torchvision built for this torch") from exc
    return onnx2torch


def open_model(path: Path | str) -> tuple[ModelInfo, Any, str]:
    """(the model's facts, a callable torch module, how it was made), reading the file once."""
    p = check_model_path(path)
    if p.suffix == ".pt2":
        program = _load_program(p)
        return program_info(program, p), program.module(), f"torch.export program (torch {require_torch().__version__})"
    info = inspect(p)  # an ONNX file; any other suffix is refused in one line
    onnx2torch = onnx2torch_module()
    from importlib import metadata

    try:
        module = onnx2torch.convert(str(info.path))
    except Exception as exc:  # NotImplementedError for an op it lacks, and others
        raise ModelError(f"onnx2torch cannot convert {info.path.name}: {first_line(exc)}; fix: export the model from "
                         "torch as a .pt2 program (torch.export.save), or simplify its ONNX graph") from exc
    module.eval()
    return info, module, f"onnx2torch {metadata.version('onnx2torch')} from ONNX"


def export_program(module, sample, path: Path, onnx_twin: Path | None = None, max_batch: int = 1 << 16) -> Path:
    """Save `module` as a torch.export program with a dynamic batch dimension, for the torch backend.

    With `onnx_twin` (the same module exported to ONNX) the program's metadata names it, with its sha256, as
    the graph level 0 counts (`tiers.level0.graph.onnx_source`); the twin needs a name of its own, as each
    file's metadata is the JSON of the same stem."""
    import json

    torch = require_torch()
    from mlperf_ext.config import file_sha256

    path = Path(path)
    if onnx_twin is not None and Path(onnx_twin).stem == path.stem:
        raise ModelError(f"the program {path.name} and its ONNX twin {Path(onnx_twin).name} share a stem, so their "
                         "metadata would be one file; fix: name them apart (e.g. mlp-torch.pt2 and mlp.onnx)")
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    program = torch.export.export(module, (sample,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    precision, _types = _weight_census(program)
    meta: dict = {"format": f"torch.export (torch {torch.__version__})", "precision": precision}
    if onnx_twin is not None:
        meta["source"] = {"onnx": Path(onnx_twin).stem, "onnx_sha256": file_sha256(Path(onnx_twin))}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return path
