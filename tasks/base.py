"""The Task protocol: the part of a workload that is neither the backend nor the scenario.

A backend runs a model; a scenario decides when; a task decides what the answer is. It says which of the
model's outputs it needs, turns one batch of them into each sample's response payload (the bytes LoadGen
logs in `mlperf_log_accuracy.json` and TEST01 compares), and scores an accuracy log the way MLPerf's own
accuracy script for that task does.

`classification` keeps the adapter's first-output top-1 path (`named_outputs = False`), so its figures are
those of every earlier release. The other tasks get every output by name from `Backend.infer_outputs`.
Tasks subclass `BaseTask`, whose defaults are what a task that only reads outputs needs; a task that drives the
model itself (tasks/llm.py) overrides the hooks that say how: its scenarios, inputs, adapter and compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from mlperf_ext.result import AccuracyFigures
from sut.adapter import SutAdapter, make_adapter
from sut.model_file import check_inputs

#: LoadGen modes whose accuracy log holds every sample (a performance run logs none)
SCORED_MODES = ("accuracy", "submission")


@runtime_checkable
class Task(Protocol):
    """One kind of answer. Implementations live in tasks/<name>.py and import their scorer lazily."""

    name: ClassVar[str]
    extra: ClassVar[str]  # pip extra that installs the scorer ("" when the core has it)
    scorer_module: ClassVar[str | None]  # import name of the scorer, checked before anything runs
    metric: ClassVar[str | None]  # what score() gives ("top1", "mAP"), None when the task scores nothing
    named_outputs: ClassVar[bool]  # True: payloads() reads every output by name (Backend.infer_outputs)

    def check_dataset(self, dataset: Any, mode: str) -> None:
        """Raise DatasetError when the dataset lacks what this task scores in `mode`."""

    def check_outputs(self, output_names: Sequence[str]) -> None:
        """Raise ModelError when the model's outputs are not what this task reads."""

    def payloads(self, outputs: dict[str, np.ndarray], indices: Sequence[int]) -> list[np.ndarray]:
        """One contiguous array per sample of the batch: the bytes its response carries."""

    def score(self, entries: list, dataset: Any) -> AccuracyFigures | None:
        """The accuracy of an accuracy log's entries (None when the task has no score)."""


def output_refusal(task: Task, backend_cls) -> str | None:
    """Why a backend cannot serve a task (None when it can): a task reading outputs by name needs a backend
    that returns them (`infer_outputs`)."""
    if task.named_outputs and not callable(getattr(backend_cls, "infer_outputs", None)):
        return (f"{backend_cls.name} returns only a model's first output, and task '{task.name}' reads every output "
                "by name; fix: use --backend onnxruntime or openvino for this task")
    return None


class BaseTask:
    """The defaults of every optional part of a task."""

    extra: ClassVar[str] = ""
    scorer_module: ClassVar[str | None] = None
    metric: ClassVar[str | None] = None
    named_outputs: ClassVar[bool] = True
    #: TestSettings the task needs unless the user set them
    loadgen_settings: ClassVar[dict] = {}

    def check_scenario(self, scenario: str) -> None:
        """Raise ConfigError for a LoadGen scenario the task has no meaning in (every one has, by default)."""

    def check_dataset(self, dataset: Any, mode: str) -> None:
        """Raise DatasetError when the dataset lacks what this task scores in `mode` (nothing, by default)."""

    def check_inputs(self, dataset: Any, specs) -> None:
        """Raise DatasetError when the samples are not what the model's inputs take (by name, shape and dtype)."""
        check_inputs(dataset, specs)

    def check_outputs(self, output_names: Sequence[str]) -> None:
        """Raise ModelError when the model's outputs are not what this task reads (any will do, by default)."""

    def make_adapter(self, backend, library, errors) -> SutAdapter:
        """What answers LoadGen: the first-output path or the named-outputs path (`sut.adapter.make_adapter`)."""
        return make_adapter(backend, library, errors, self)

    def compute_inputs(self, backend, records: np.ndarray) -> dict[str, np.ndarray | dict]:
        """What the compute path times, by phase: the batch of samples itself, by default."""
        return {"batch": records}

    def warnings(self, score: AccuracyFigures, outputs_per_sample: int, dataset: Any) -> list[str]:
        """Warnings for a score that cannot mean what it says (none, by default)."""
        return []

    def score(self, entries: list, dataset: Any) -> AccuracyFigures | None:
        return None
