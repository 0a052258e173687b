"""ImageNet-style folder → preprocessed .npy cache, on JPEG/PNG files written here with Pillow."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.datasets import NpyDirDataset, open_dataset
from mlperf_ext.datasets.imagenet import ImagenetFolderDataset, ImagenetPreprocess, preprocess_image
from mlperf_ext.errors import DatasetError

Image = pytest.importorskip("PIL.Image")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path / "val"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {
        "a.png": rng.integers(0, 256, size=(300, 256, 3), dtype=np.uint8),      # H 300, W 256
        "sub/b.JPEG": rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8),  # landscape
        "c.png": rng.integers(0, 256, size=(100, 100), dtype=np.uint8),         # greyscale, upscaled
    }
    for name, array in arrays.items():
        Image.fromarray(array).save(folder / name)
    (folder / "val_map.txt").write_text("a.png 7\nsub/b.JPEG 0\n\nc.png 999\n")
    return folder, arrays


def test_preprocess_crop_and_normalise_exact(tmp_path):
    folder, arrays = _folder(tmp_path)
    x = preprocess_image(folder / "a.png")
    # W is already 256, so the resize keeps the size; crop offsets are (256-224)/2=16, (300-224)/2=38
    expected = (arrays["a.png"][38:262, 16:240].astype(np.float32) / 255 - MEAN) / STD
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), atol=1e-5)


def test_preprocess_resizes_and_converts_to_rgb(tmp_path):
    folder = tmp_path
    Image.new("L", (500, 375), color=128).save(folder / "grey.jpg")
    x = preprocess_image(folder / "grey.jpg")
    assert x.shape == (3, 224, 224)
    for channel in range(3):  # a flat grey image stays flat: (128/255 - mean) / std per channel
        np.testing.assert_allclose(x[channel], (128 / 255 - MEAN[channel]) / STD[channel], atol=1e-2)
    small = preprocess_image(folder / "grey.jpg", ImagenetPreprocess(resize=64, crop=32))
    assert small.shape == (3, 32, 32)


def test_folder_cache_round_trip(tmp_path):
    folder, _ = _folder(tmp_path)
    cache = tmp_path / "cache"
    ds = ImagenetFolderDataset(folder, cache)
    assert len(ds) == 3 and ds.sample_shape == (3, 224, 224) and ds.dtype == np.float32
    assert ds.labels.tolist() == [7, 0, 999]
    np.testing.assert_array_equal(ds.load(np.array([0])), preprocess_image(folder / "a.png")[None])
    # the cache is a plain .npy directory any reader (and open_dataset) understands
    plain = NpyDirDataset(ds.cache_path)
    np.testing.assert_array_equal(plain.load(np.arange(3)), ds.load(np.arange(3)))
    np.testing.assert_array_equal(open_dataset(ds.cache_path).labels, ds.labels)
    # a second open reuses the cache without rewriting it
    stamps = {p.name: p.stat().st_mtime_ns for p in ds.cache_path.iterdir()}
    again = ImagenetFolderDataset(folder, cache)
    assert again.cache_path == ds.cache_path
    assert {p.name: p.stat().st_mtime_ns for p in again.cache_path.iterdir()} == stamps
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging dir left behind
    # count takes the first entries and gets its own cache
    first = ImagenetFolderDataset(folder, cache, count=2)
    assert len(first) == 2 and first.cache_path != ds.cache_path
    # a changed image invalidates the cache
    Image.new("RGB", (256, 256), color=(1, 2, 3)).save(folder / "c.png")
    st = (folder / "c.png").stat()
    os.utime(folder / "c.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ImagenetFolderDataset(folder, cache).cache_path != ds.cache_path


def test_missing_val_map_and_bad_lines(tmp_path):
    folder, _ = _folder(tmp_path)
    cache = tmp_path / "cache"
    for text, match in [("a.png seven\n", "val_map.txt:1: expected"),
                        ("a.png 1\nsub/b.JPEG\n", "val_map.txt:2: expected"),
                        ("a.png -1\n", "non-negative"),
                        ("a.png 1\na.png 2\n", "listed twice"),
                        ("\n", "lists no images")]:
        (folder / "val_map.txt").write_text(text)
        with pytest.raises(DatasetError, match=match):
            ImagenetFolderDataset(folder, cache)
    (folder / "val_map.txt").unlink()
    with pytest.raises(DatasetError, match="has no val_map.txt"):
        ImagenetFolderDataset(folder, cache)
    with pytest.raises(DatasetError, match="does not exist"):
        ImagenetFolderDataset(tmp_path / "nope", cache)


def test_missing_and_corrupt_images(tmp_path):
    folder, _ = _folder(tmp_path)
    cache = tmp_path / "cache"
    (folder / "val_map.txt").write_text("a.png 1\ngone.jpg 2\n")
    with pytest.raises(DatasetError, match="lists gone.jpg, which is missing"):
        ImagenetFolderDataset(folder, cache)
    (folder / "junk.jpg").write_bytes(b"this is not an image")
    (folder / "val_map.txt").write_text("a.png 1\njunk.jpg 2\n")
    with pytest.raises(DatasetError, match="cannot decode image .*junk.jpg"):
        ImagenetFolderDataset(folder, cache)
    data = (folder / "sub" / "b.JPEG").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    (folder / "val_map.txt").write_text("cut.jpg 3\n")
    with pytest.raises(DatasetError, match="cannot decode image .*cut.jpg"):
        ImagenetFolderDataset(folder, cache)
    assert not cache.exists() or not any(cache.iterdir())  # failed builds leave nothing behind
    (folder / "val_map.txt").write_text("a.png 1\n")
    with pytest.raises(DatasetError, match="count=5"):
        ImagenetFolderDataset(folder, cache, count=5)


def test_missing_pillow_names_the_extra(tmp_path, monkeypatch):
    folder, _ = _folder(tmp_path)
    monkeypatch.setitem(sys.modules, "PIL", None)  # what `import PIL` sees when Pillow is absent
    with pytest.raises(DatasetError, match=r"pip install 'mlperf-ext\[imagenet\]'"):
        ImagenetFolderDataset(folder, tmp_path / "cache")
