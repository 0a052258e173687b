"""What the zoo knows about a model, and the JSON metadata stored next to each ONNX artifact.

`<models_dir>/<name>.onnx` is described by `<models_dir>/<name>.json`. The JSON is written last, so
an ONNX file without matching JSON (sha256, recipe) is treated as absent and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8", "int4", "int2")


@dataclass(frozen=True)
class ModelInfo:
    """One buildable model variant."""

    name: str  # e.g. "mlp-w2048-fp32"; also the artifact's file stem
    family: str  # "mlp", "cnv", ...
    architecture: str  # e.g. "mlp-3x2048" (topology, independent of precision)
    pruning: float | None  # kept fraction of the widest model: 1.0, 0.5, 0.25, 0.125; None if n/a
    precision: str  # one of PRECISIONS
    dataset: str | None  # built-in dataset name of the held-out set it is evaluated on ("mnist")
    description: str

    def to_dict(self) -> dict:
        return asdict(self)


def metadata_path(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def read_metadata(onnx_path: Path) -> dict | None:
    """The metadata JSON next to the artifact, or None when there is none (or it is unreadable)."""
    path = metadata_path(onnx_path)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict:
    """Versions of the tools that can change an artifact's bytes or its measured accuracy."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "onnx", "onnxruntime", "onnxconverter-common", "onnx-ir"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; artifacts are shared files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_artifact(onnx_bytes: bytes, onnx_path: Path, metadata: dict) -> dict:
    """Store the ONNX bytes, then the metadata (with the file's sha256) — each atomically, JSON last."""
    metadata = dict(metadata, sha256=sha256_bytes(onnx_bytes), size_bytes=len(onnx_bytes))
    metadata_file = metadata_path(onnx_path)
    metadata_file.unlink(missing_ok=True)  # an old JSON must not vouch for the new bytes mid-write
    atomic_write_bytes(Path(onnx_path), onnx_bytes)
    atomic_write_bytes(metadata_file, (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode())
    return metadata


def is_current(onnx_path: Path, recipe: str) -> bool:
    """True when the artifact exists, its metadata has this recipe version and its sha256 matches."""
    meta = read_metadata(onnx_path)
    if meta is None or meta.get("recipe") != recipe or not Path(onnx_path).is_file():
        return False
    return meta.get("sha256") == sha256_file(Path(onnx_path))


def onnx_facts(model) -> dict:
    """Operator set and initializer element types, read from the graph (what runnable_on checks)."""
    from onnx import TensorProto

    ops = sorted({f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in model.graph.node})
    types = sorted({TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer})
    params = 0
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        params += n
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    return {"ops": ops, "initializer_types": types, "initializer_elements": int(params),
            "opsets": opsets, "ir_version": int(model.ir_version)}
