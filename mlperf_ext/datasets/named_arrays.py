"""Datasets for models with several inputs: one array per input name.

Two layouts (never with pickles):
- an `.npz` file (numpy.savez) whose arrays are named after the model's inputs, plus an optional `labels`;
- a directory with an `inputs/` folder of `<input name>.npy` arrays, plus an optional `labels.npy` (and a
  COCO `annotations.json` for the detection task) beside it.

Each array holds every sample (N, ...). The samples become numpy records, a field per input
(`record_dataset`), checked against the model's inputs by name, shape and dtype before anything runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlperf_ext.datasets.base import ArrayDataset, record_dataset
from mlperf_ext.datasets.npy_dir import _load_npy, checked_labels, read_annotations
from mlperf_ext.errors import DatasetError

LABELS = "labels"


def open_npz(path: Path) -> ArrayDataset:
    """An `.npz` file of named input arrays (and `labels`)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as exc:
        raise DatasetError(f"cannot read {path} as an .npz archive of plain arrays ({exc}); fix: save it with "
                           "numpy.savez(path, **{input_name: array}, labels=labels)") from exc
    labels = checked_labels(arrays.pop(LABELS, None), f"{path} [labels]")
    return record_dataset(path.stem, arrays, labels, f".npz inputs {path} ({', '.join(arrays)})")


def open_inputs_dir(directory: Path) -> ArrayDataset:
    """A directory whose `inputs/` folder holds one `<input name>.npy` per model input."""
    files = sorted((directory / "inputs").glob("*.npy"))
    if not files:
        raise DatasetError(f"{directory / 'inputs'} holds no .npy arrays; fix: save one <input name>.npy per model "
                           "input there")
    arrays = {f.stem: _load_npy(f) for f in files}
    labels_path = directory / "labels.npy"
    labels = checked_labels(_load_npy(labels_path), str(labels_path)) if labels_path.exists() else None
    return record_dataset(directory.name, arrays, labels, f".npy inputs {directory} ({', '.join(arrays)})",
                          read_annotations(directory))
