"""A FINN deployment package: the bitstream, its `.hwh`, and the `io_shape_dict` FINN's driver runs it by.

FINN's build (`MakePYNQDriver`, github.com/Xilinx/finn; finn-plus, github.com/eki-project/finn-plus) writes a
deployment folder: `bitfile/finn-accel.bit` with its `.hwh`, and `driver/driver.py`, whose module-level
`io_shape_dict = {...}` describes the accelerator's streams: `idt`/`odt` (one qonnx DataType per input/output,
written `DataType['UINT8']`), and per input/output the `normal`, `folded` and `packed` shapes with a batch axis
of 1. FINN's runtime driver (`finn_plus_driver.overlays.dma.FINNDMAOverlay`) takes that dict as it is.

This module is the glue FINN's driver lacks, and runs nothing: it finds the files (a package folder, its `.bit`,
or the io_shape_dict file), reads the dict out of `driver.py` without importing it (`ast`, each `DataType['X']`
read as the name X) or from a JSON/YAML file with the same keys, and checks it, one line per problem, before
a board is touched. Two optional keys are this project's, not FINN's, and FINN's driver ignores them:
`input_scale` (the host float of one input code: the dataset's floats are divided by it to get the codes FINN's
driver packs; 1 when the data already are codes) and `max_batch` (the most samples its DMA buffers may hold).
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf_ext.errors import ConfigError, ModelError
from sut.fake_accelerator import DataType, packed_bytes

#: the io_shape_dict keys FINN's driver needs, each a list with one entry per stream
STREAM_KEYS = ("idt", "odt", "ishape_normal", "oshape_normal", "ishape_folded", "oshape_folded", "ishape_packed",
               "oshape_packed")
IO_FILES = ("io_shape_dict.json", "io_shape_dict.yaml", "io_shape_dict.yml", "driver/driver.py", "driver.py")
PLATFORMS = ("zynq-iodma", "alveo")
#: the io_shape_dicts of finn-examples' prebuilt accelerators, by the bitfile name finn-examples gives them
#: (`<model>.bit`): `_mnist_fc_io_shape_dict` and `_cifar10_cnv_io_shape_dict` in finn_examples/models.py
#: (github.com/Xilinx/finn-examples at 0546562). Their accelerators take raw pixels; this project's MNIST and CIFAR
#: datasets give pixels / 255, hence the input_scale. The CNVs take NHWC (32, 32, 3) images.
_MNIST_TFC = {"idt": ["UINT8"], "odt": ["UINT8"], "ishape_normal": [[1, 784]], "oshape_normal": [[1, 1]],
              "ishape_folded": [[1, 16, 49]], "oshape_folded": [[1, 1, 1]], "ishape_packed": [[1, 16, 49]],
              "oshape_packed": [[1, 1, 1]], "input_scale": 1 / 255, "classes": 10}
_CIFAR_CNV = {"idt": ["UINT8"], "odt": ["UINT8"], "ishape_normal": [[1, 32, 32, 3]], "oshape_normal": [[1, 1]],
              "ishape_folded": [[1, 32, 32, 3, 1]], "oshape_folded": [[1, 1, 1]],
              "ishape_packed": [[1, 32, 32, 3, 1]], "oshape_packed": [[1, 1, 1]], "input_scale": 1 / 255,
              "classes": 10}
FINN_EXAMPLES = {**{f"tfc-{v}": _MNIST_TFC for v in ("w1a1", "w1a2", "w2a2")},
                 **{f"cnv-{v}": _CIFAR_CNV for v in ("w1a1", "w1a2", "w2a2")}}
_DATATYPE_RE = re.compile(r"""^(?:DataType\[\s*['"]?)?([A-Za-z0-9_]+)['"]?\]?$""")
_FIX_LAYOUT = ("fix: pass the FINN deployment folder (bitfile/finn-accel.bit with its .hwh, driver/driver.py), its "
               ".bit, or an io_shape_dict .json/.yaml beside the .bit")


def _read_driver_py(path: Path) -> dict:
    """The literal `io_shape_dict = {...}` of a FINN-generated driver.py, read without running the file."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError) as exc:
        raise ModelError(f"{path} cannot be parsed as Python ({exc}); {_FIX_LAYOUT}") from None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "io_shape_dict"
                                                  for t in node.targets)):
            return _literal(node.value, path)
    raise ModelError(f"{path} assigns no io_shape_dict; {_FIX_LAYOUT}")


def _literal(node: ast.AST, path: Path) -> Any:
    """ast.literal_eval, with DataType['X'] (how FINN's template writes a type) read as the string X."""
    class Names(ast.NodeTransformer):
        def visit_Subscript(self, sub):  # noqa: N802 - ast's visitor naming
            if isinstance(sub.value, ast.Name) and sub.value.id == "DataType" and isinstance(sub.slice, ast.Constant):
                return ast.copy_location(ast.Constant(str(sub.slice.value)), sub)
            return self.generic_visit(sub)

    try:
        return ast.literal_eval(Names().visit(node))
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ModelError(f"io_shape_dict in {path} is not a literal dict ({exc}); fix: write it as FINN's "
                         "MakePYNQDriver does (lists of shapes, DataType['NAME'] entries)") from None


def _read_io_file(path: Path) -> dict:
    if path.name.endswith(".py"):
        return _read_driver_py(path)
    try:
        text = path.read_text()
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (OSError, ValueError) as exc:
        raise ModelError(f"io_shape_dict {path} cannot be read ({exc}); fix: rewrite it as a JSON/YAML object") from None
    if not isinstance(data, dict):
        raise ModelError(f"io_shape_dict {path} is not an object; fix: write its keys ({', '.join(STREAM_KEYS)})")
    return data


def _type_name(value: Any, key: str, source: Path) -> str:
    m = _DATATYPE_RE.match(str(value).strip())
    name = m.group(1).upper() if m else str(value)
    try:
        DataType.parse(name)
    except ConfigError:
        raise ModelError(f"io_shape_dict {source}: {key} {value!r} is not a stream type this backend packs; fix: "
                         "use UINT<n>, INT<n> or BINARY, as FINN's driver names them") from None
    return name


def _shape(value: Any, key: str, source: Path) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value or not all(isinstance(d, int) and d > 0 for d in value):
        raise ModelError(f"io_shape_dict {source}: {key} must be a list of positive integers, got {value!r}; fix: "
                         "write it as FINN's driver does, batch axis first, e.g. [1, 16, 49]")
    return tuple(int(d) for d in value)


@dataclass(frozen=True)
class FinnPackage:
    """One accelerator's files and its checked io_shape_dict (one input stream, one output stream)."""

    bitfile: Path
    hwh: Path
    io_source: Path
    idt: str
    odt: str
    shapes: dict  # ishape_normal ... oshape_packed -> tuple, batch axis first (1)
    platform: str = "zynq-iodma"
    input_scale: float = 1.0
    max_batch: int | None = None
    classes: int | None = None

    # -- reading ------------------------------------------------------------------------------
    @classmethod
    def read(cls, path: Path | str) -> FinnPackage:
        bit, io_path = _locate(Path(path))
        if io_path is None:  # a finn-examples bitfile, known by its name
            return cls.from_dict(dict(FINN_EXAMPLES[bit.stem]), bit, Path(f"finn-examples:{bit.stem}"))
        return cls.from_dict(_read_io_file(io_path), bit, io_path)

    @classmethod
    def from_dict(cls, data: dict, bitfile: Path, source: Path) -> FinnPackage:
        missing = [k for k in STREAM_KEYS if k not in data]
        if missing:
            raise ModelError(f"io_shape_dict {source} lacks {', '.join(missing)}; fix: take the io_shape_dict FINN "
                             "generated into driver/driver.py for this bitstream")
        counts = {k: len(data[k]) if isinstance(data[k], list | tuple) else -1 for k in STREAM_KEYS}
        if any(counts[k] != 1 for k in STREAM_KEYS) or data.get("num_inputs", 1) != 1 or data.get("num_outputs", 1) != 1:
            raise ModelError(f"io_shape_dict {source} describes {counts['idt']} input and {counts['odt']} output "
                             "streams; this backend runs accelerators with one of each (a classifier's image in, its "
                             "label out); fix: build the accelerator with one input and one label output")
        idt = _type_name(data["idt"][0], "idt", source)
        odt = _type_name(data["odt"][0], "odt", source)
        shapes = {k: _shape(data[k][0], k, source) for k in STREAM_KEYS[2:]}
        for side, dtype in (("i", DataType.parse(idt)), ("o", DataType.parse(odt))):
            normal, folded, packed = (shapes[f"{side}shape_{k}"] for k in ("normal", "folded", "packed"))
            if normal[0] != 1 or folded[0] != 1 or packed[0] != 1:
                raise ModelError(f"io_shape_dict {source}: {side}shape_* must have batch axis 1 (FINN's hardware batch; "
                                 "the driver sets the DMA batch itself); fix: write 1 first")
            if math.prod(normal) != math.prod(folded):
                raise ModelError(f"io_shape_dict {source}: {side}shape_folded {list(folded)} does not hold the "
                                 f"{math.prod(normal)} elements of {side}shape_normal {list(normal)}; fix: take the "
                                 "shapes FINN generated for this bitstream")
            want = (*folded[:-1], packed_bytes(folded[-1], dtype.bits))
            if packed != want:
                raise ModelError(f"io_shape_dict {source}: {side}shape_packed {list(packed)} is not {list(want)}, the "
                                 f"bytes {list(folded)} of {dtype.name} pack to; fix: take the shapes FINN generated "
                                 "for this bitstream")
        platform = data.get("platform", "zynq-iodma")
        if platform not in PLATFORMS:
            raise ModelError(f"io_shape_dict {source}: platform {platform!r} is not one of {', '.join(PLATFORMS)}; fix: "
                             "name FINN's shell the bitstream was built for")
        scale, max_batch, classes = data.get("input_scale", 1.0), data.get("max_batch"), data.get("classes")
        if not isinstance(scale, int | float) or not scale > 0:
            raise ModelError(f"io_shape_dict {source}: input_scale must be a positive number, got {scale!r}; fix: give "
                             "the host float of one input code (1/255 for pixels scaled to [0, 1])")
        for key, value in (("max_batch", max_batch), ("classes", classes)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ModelError(f"io_shape_dict {source}: {key} must be a positive integer, got {value!r}; fix: "
                                 "correct or drop it")
        if math.prod(shapes["oshape_normal"]) != 1 or DataType.parse(odt).signed:
            raise ModelError(f"io_shape_dict {source}: the output is {list(shapes['oshape_normal'])} of {odt}, not one "
                             "unsigned label per sample; fix: end the accelerator in a top-1 label select (FINN's "
                             "LabelSelect), as classifiers this backend scores do")
        return cls(bitfile, bitfile.with_suffix(".hwh"), source, idt, odt, shapes, platform, float(scale), max_batch,
                   classes)

    # -- what the driver and the harness need --------------------------------------------------
    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample as the host hands it in (the normal input shape without its batch axis)."""
        return self.shapes["ishape_normal"][1:]

    @property
    def label_count(self) -> int:
        """Columns of the one-hot scores a label becomes: the declared classes, else every code odt can carry."""
        return self.classes or (1 << DataType.parse(self.odt).bits)

    @property
    def runtime_weight_dir(self) -> Path:
        """Where the deployment keeps runtime-writable weights (FINN's driver skips a folder that is absent): beside
        the io_shape_dict file, or finn-examples' `<model>_runtime_weights` beside its bitfile."""
        if self.io_source.is_file():
            return self.io_source.parent / "runtime_weights"
        return self.bitfile.parent / f"{self.bitfile.stem}_runtime_weights"

    def driver_dict(self) -> dict:
        """The io_shape_dict as FINN's driver takes it: qonnx DataTypes, shapes as lists."""
        from qonnx.core.datatype import DataType as QonnxType

        out: dict = {"idt": [QonnxType[self.idt]], "odt": [QonnxType[self.odt]], "num_inputs": 1, "num_outputs": 1}
        out.update({k: [list(v)] for k, v in self.shapes.items()})
        return out

    def describe(self) -> dict:
        """The io_shape_dict as the row records it (names and lists, JSON-ready)."""
        return {"source": str(self.io_source), "platform": self.platform, "idt": [self.idt], "odt": [self.odt],
                **{k: [list(v)] for k, v in self.shapes.items()}, "input_scale": self.input_scale,
                "max_batch": self.max_batch}


def _locate(path: Path) -> tuple[Path, Path | None]:
    """(bitfile, io_shape_dict file) from a package folder, a .bit, or the io_shape_dict file itself; the file is
    None for a bitfile named as one of finn-examples' accelerators with no io_shape_dict beside it."""
    if not path.exists():
        raise ModelError(f"{path} does not exist; {_FIX_LAYOUT}")
    if path.is_dir():
        bits = sorted(path.glob("*.bit")) + sorted((path / "bitfile").glob("*.bit"))
        if len(bits) != 1:
            found = ", ".join(b.name for b in bits) or "none"
            raise ModelError(f"{path} must hold one bitstream (.bit here or in bitfile/), found {found}; {_FIX_LAYOUT}")
        bit, root = bits[0], path
    elif path.suffix == ".bit":
        bit = path
        root = path.parent.parent if path.parent.name == "bitfile" else path.parent
    elif path.name.endswith((".json", ".yaml", ".yml", ".py")):
        root = path.parent.parent if path.parent.name == "driver" else path.parent
        bits = sorted(root.glob("*.bit")) + sorted((root / "bitfile").glob("*.bit"))
        if len(bits) != 1:
            raise ModelError(f"no single bitstream beside {path} (found {len(bits)}); {_FIX_LAYOUT}")
        return _checked_bit(bits[0]), path
    else:
        raise ModelError(f"{path} is not a FINN deployment (a folder, a .bit, or an io_shape_dict file); {_FIX_LAYOUT}")
    io = next((root / name for name in IO_FILES if (root / name).is_file()), None)
    if io is None and bit.stem not in FINN_EXAMPLES:
        raise ModelError(f"no io_shape_dict for {bit.name}: none of {', '.join(IO_FILES)} under {root}, and not a "
                         f"finn-examples bitfile ({', '.join(sorted(FINN_EXAMPLES))}); fix: copy FINN's generated "
                         "driver/ folder next to bitfile/, or write io_shape_dict.json")
    return _checked_bit(bit), io


def _checked_bit(bit: Path) -> Path:
    if not bit.is_file():
        raise ModelError(f"bitstream {bit} is missing; {_FIX_LAYOUT}")
    if not bit.with_suffix(".hwh").is_file():
        raise ModelError(f"{bit.with_suffix('.hwh')} is missing (PYNQ reads the design's IP from it); fix: copy the "
                         ".hwh Vivado wrote next to the .bit")
    return bit
