"""NpyDirDataset: class indices must be non-negative in every label layout."""

from __future__ import annotations

import numpy as np
import pytest

from mlperf_ext.datasets import NpyDirDataset
from mlperf_ext.errors import DatasetError


def _per_file(tmp_path, label_file: str, labels: list[str]):
    for i in range(len(labels)):
        np.save(tmp_path / f"s{i}.npy", np.zeros((2, 2), np.float32))
    (tmp_path / label_file).write_text("".join(f"s{i}.npy {lab}\n" for i, lab in enumerate(labels)))


@pytest.mark.parametrize("label_file", ["labels.txt", "val_map.txt"])
def test_negative_label_in_map_is_refused(tmp_path, label_file):
    _per_file(tmp_path, label_file, ["1", "-3"])
    with pytest.raises(DatasetError, match=r"s1\.npy -3.*fix:"):
        NpyDirDataset(tmp_path)


def test_non_negative_labels_load(tmp_path):
    _per_file(tmp_path, "val_map.txt", ["0", "7"])
    ds = NpyDirDataset(tmp_path)
    assert ds.labels.tolist() == [0, 7]
    assert ds.load(np.array([1])).shape == (1, 2, 2)


def test_negative_label_in_labels_npy_is_refused(tmp_path):
    np.save(tmp_path / "samples.npy", np.zeros((2, 3), np.float32))
    np.save(tmp_path / "labels.npy", np.array([0, -1]))
    with pytest.raises(DatasetError, match="negative label"):
        NpyDirDataset(tmp_path)
