"""Classification: top-1 over the model's first output, scored as MLPerf's accuracy-imagenet.py scores it.

The adapter keeps its own path for this task (`named_outputs = False`): the first output's argmax as one
little-endian int32 per sample, completed through reusable response slots. That path is the harness's
hottest, and its figures are those of every release before tasks existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from mlperf_ext.accuracy import evaluate_entries
from mlperf_ext.errors import DatasetError
from mlperf_ext.result import AccuracyFigures
from tasks.base import SCORED_MODES, BaseTask


class ClassificationTask(BaseTask):
    name: ClassVar[str] = "classification"
    metric: ClassVar[str | None] = "top1"
    named_outputs: ClassVar[bool] = False

    def check_dataset(self, dataset, mode: str) -> None:
        if mode in SCORED_MODES and dataset.labels is None:
            raise DatasetError(f"dataset '{dataset.name}' has no labels, so mode '{mode}' cannot score accuracy; "
                               "fix: add a labels file or use --mode performance")

    def payloads(self, outputs: dict[str, np.ndarray], indices: Sequence[int]) -> list[np.ndarray]:
        first = next(iter(outputs.values()))
        classes = first.reshape(len(first), -1).argmax(axis=-1).astype("<i4")
        return [classes[k:k + 1] for k in range(len(classes))]

    def score(self, entries: list, dataset) -> AccuracyFigures:
        acc = evaluate_entries(entries, dataset.labels, "int32")
        return AccuracyFigures(value=acc.accuracy, good=acc.good, total=acc.total, line=acc.line, metric=self.metric)

    def warnings(self, score: AccuracyFigures, outputs_per_sample: int, dataset) -> list[str]:
        """Warnings for a top-1 score that cannot mean what it says."""
        labels = dataset.labels
        classes = int(labels.max()) + 1
        out = []
        if outputs_per_sample < classes:
            out.append(f"WARNING: the model gives {outputs_per_sample} value(s) per sample but the labels have "
                       f"{classes} classes: top-1 over its outputs cannot score them (is this a classifier of this "
                       "dataset?)")
        if score.value == 0:
            out.append("WARNING: 0.00 % top-1: check that the model classifies this dataset's labels (another dataset, "
                       "or classes in another order)")
        return out
