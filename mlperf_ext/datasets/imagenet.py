"""ImageNet-style validation folders: JPEG/PNG images plus an MLPerf `val_map.txt`, preprocessed once.

`val_map.txt` lines are `<file> <label>` (MLPerf inference's ImageNet layout, file relative to the
folder). Each image is preprocessed with the torchvision ImageNet convention that PyTorch-trained
classifiers expect (source: torchvision `ResNet50_Weights.IMAGENET1K_V1.transforms()` =
Resize(256, bilinear) → CenterCrop(224) → ToTensor (/255) → Normalize(mean, std); MLPerf's reference
`pre_process_*` in vision/classification_and_detection/python/dataset.py uses the same 256→224
87.5 % centre crop): shorter side resized to 256 with bilinear filtering, centre crop 224x224,
RGB scaled to [0, 1], normalised per channel, stored NCHW float32.

The result is cached as a `.npy` directory (one `<file>.npy` per image + `val_map.txt`) that
`NpyDirDataset` reads; the cache key covers the val_map, the listed files' sizes and mtimes, the
count and the preprocessing parameters, so a changed folder is preprocessed again. Each cached
sample is 3x224x224x4 B = 602 KB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mlperf_ext.datasets.npy_dir import NpyDirDataset
from mlperf_ext.errors import DatasetError

VAL_MAP = "val_map.txt"
_COMPLETE = "preprocess.json"
#: bump when the preprocessing code changes meaning, so old caches are not reused
_CACHE_VERSION = 1


@dataclass(frozen=True)
class ImagenetPreprocess:
    """Parameters of the torchvision/MLPerf ImageNet convention (see module docstring)."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _pil_image():
    try:
        from PIL import Image
    except ImportError as exc:
        raise DatasetError("reading ImageNet-style JPEG/PNG folders needs Pillow, which is not "
                           "installed; fix: pip install 'mlperf-ext[imagenet]'") from exc
    return Image


def preprocess_image(path: str | Path, params: ImagenetPreprocess = ImagenetPreprocess()) -> np.ndarray:
    """One image file → float32 (3, crop, crop): resize shorter side, centre crop, /255, normalise."""
    Image = _pil_image()
    path = Path(path)
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")  # grey/CMYK/palette JPEGs exist in ImageNet val
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot decode image {path} ({exc}); fix: replace the file with a valid "
                           "JPEG/PNG or remove its line from val_map.txt") from exc
    width, height = image.size
    # torchvision Resize(int): shorter side → resize, longer side int(resize * long / short)
    if width <= height:
        size = (params.resize, int(params.resize * height / width))
    else:
        size = (int(params.resize * width / height), params.resize)
    image = image.resize(size, Image.Resampling.BILINEAR)
    # torchvision center_crop: offsets int(round((dim - crop) / 2))
    left = int(round((size[0] - params.crop) / 2.0))
    top = int(round((size[1] - params.crop) / 2.0))
    image = image.crop((left, top, left + params.crop, top + params.crop))
    x = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    x = (x - np.asarray(params.mean, dtype=np.float32)) / np.asarray(params.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def read_val_map(folder: Path) -> list[tuple[str, int]]:
    """(file, label) pairs from `folder/val_map.txt`, validated line by line."""
    path = folder / VAL_MAP
    if not path.is_file():
        raise DatasetError(f"{folder} has no {VAL_MAP}; fix: add one '<image file> <class index>' "
                           "line per image (MLPerf's ImageNet val_map layout)")
    entries: list[tuple[str, int]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}:{lineno}: expected '<image file> <non-negative class index>', "
                               f"got {line!r}; fix: one file name and one integer label per line")
        if parts[0] in seen:
            raise DatasetError(f"{path}:{lineno}: {parts[0]} is listed twice; fix: list each image once")
        seen.add(parts[0])
        entries.append((parts[0], int(parts[1])))
    if not entries:
        raise DatasetError(f"{path} lists no images; fix: add '<image file> <class index>' lines")
    return entries


def _cache_key(folder: Path, entries: list[tuple[str, int]], params: ImagenetPreprocess) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": _CACHE_VERSION, "folder": str(folder.resolve()),
                              "params": asdict(params)}, sort_keys=True).encode())
    for name, label in entries:
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"{folder / VAL_MAP} lists {name}, which is missing from {folder}; "
                               "fix: add the image or remove its line")
        stat = path.stat()
        digest.update(f"{name}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _cached_name(name: str) -> str:
    return name.replace("/", "__").replace("\\", "__") + ".npy"


def build_cache(folder: str | Path, cache_dir: str | Path, count: int | None = None,
                params: ImagenetPreprocess = ImagenetPreprocess()) -> Path:
    """Preprocess the first `count` val_map images (all when None) into a .npy directory; reuse it if built."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist; fix: pass the folder that holds "
                           f"the images and {VAL_MAP}")
    entries = read_val_map(folder)
    if count is not None:
        if count < 1 or count > len(entries):
            raise DatasetError(f"count={count} but {folder / VAL_MAP} lists {len(entries)} images; "
                               f"fix: pass a count between 1 and {len(entries)}, or none for all")
        entries = entries[:count]
    target = Path(cache_dir) / f"{folder.name or 'images'}-{_cache_key(folder, entries, params)}"
    if (target / _COMPLETE).is_file():
        return target
    _pil_image()  # fail before creating anything when Pillow is missing
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        lines = []
        for name, label in entries:
            cached = _cached_name(name)
            np.save(staging / cached, preprocess_image(folder / name, params), allow_pickle=False)
            lines.append(f"{cached} {label}\n")
        (staging / VAL_MAP).write_text("".join(lines))
        (staging / _COMPLETE).write_text(json.dumps({"source": str(folder.resolve()), "count": len(entries),
                                                     "params": asdict(params)}, indent=1))
        try:
            staging.rename(target)  # atomic: a reader sees no cache or a whole one
        except OSError:
            if not (target / _COMPLETE).is_file():  # not a concurrent builder that won: a real error
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class ImagenetFolderDataset(NpyDirDataset):
    """An ImageNet-style folder preprocessed once into `cache_dir`, then read like any .npy directory."""

    def __init__(self, folder: str | Path, cache_dir: str | Path, count: int | None = None,
                 params: ImagenetPreprocess = ImagenetPreprocess(), name: str | None = None):
        self.cache_path = build_cache(folder, cache_dir, count, params)
        super().__init__(self.cache_path, name=name or Path(folder).name)
        self.description = (f"ImageNet-style folder {folder}: {len(self)} images, resize {params.resize} "
                            f"bilinear, centre crop {params.crop}, mean/std normalised NCHW float32 "
                            f"(cached in {self.cache_path})")
