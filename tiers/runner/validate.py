"""Checks a run point before anything runs: every bad input becomes one clear error, no partial row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlperf_ext import loadgen
from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import Dataset, open_dataset
from mlperf_ext.errors import ConfigError, DatasetError
from scenarios import DispatchConfig
from sut.base import TensorSpec, check_backend, create_backend


def check_shapes(dataset: Dataset, spec: TensorSpec) -> None:
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


class PointValidator:
    """Validates points, opening each dataset and model once however many points share it."""

    def __init__(self):
        self._datasets: dict[str, Dataset] = {}
        self._models: dict[str, object] = {}
        self._devices: set[tuple[str, str]] = set()

    def dataset(self, ref: str) -> Dataset:
        if ref not in self._datasets:
            self._datasets[ref] = open_dataset(ref)
        return self._datasets[ref]

    def model(self, path: str):
        from sut.model_file import inspect_model

        if path not in self._models:
            self._models[path] = inspect_model(Path(path))
        return self._models[path]

    def check(self, point: RunPoint) -> None:
        from sut.model_file import refuse_batch

        if point.mode not in loadgen.MODES:
            raise ConfigError(f"unknown mode '{point.mode}'; fix: use one of {', '.join(loadgen.MODES)}")
        if point.profile not in loadgen.PROFILES:
            raise ConfigError(f"unknown profile '{point.profile}'; fix: use one of {', '.join(loadgen.PROFILES)}")
        check_backend(point.backend)
        backend = create_backend(point.backend)
        if (point.backend, point.device) not in self._devices:
            check_device = getattr(backend, "check_device", None)
            if check_device is not None:
                check_device(point.device)
            self._devices.add((point.backend, point.device))
        DispatchConfig(batch=point.batch, streams=point.streams, max_wait_us=point.max_wait_us)
        loadgen.validate_overrides(point.settings)
        if point.user_conf:
            loadgen.validate_user_conf(Path(point.user_conf), point.mlperf_model)
        dataset = self.dataset(point.dataset)
        if point.mode in ("accuracy", "submission") and dataset.labels is None:
            raise DatasetError(f"dataset '{point.dataset}' has no labels, so mode '{point.mode}' cannot score "
                               "accuracy; fix: add a labels file or use --mode performance")
        if not getattr(backend, "runs_model", True):
            return  # the null backend runs no model: only the harness is measured
        info = self.model(point.model)
        refuse_batch(info, point.batch)
        check_shapes(dataset, info.input)
