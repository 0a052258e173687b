"""Detection: boxes, scores and classes as MLPerf's detection benchmarks log them, mAP by pycocotools.

The model's outputs are read by name: `boxes` (N, K, 4) as (ymin, xmin, ymax, xmax) normalised to the
image, `scores` (N, K), `classes` (N, K) holding the annotations' category ids, and optionally
`num_detections` (N,) when only the first rows of each sample are real. Detections with a score <= 0 are
padding and dropped.

A sample's payload is 7 little-endian float32 per detection, `image_idx, ymin, xmin, ymax, xmax, score,
label`, with `image_idx` the QSL index: the layout MLPerf's `accuracy-coco.py` reads
(mlcommons/inference, vision/classification_and_detection/tools/accuracy-coco.py, which also maps
qsl_idx to the annotations' `images` list by position). Scoring follows that script: entries de-duplicated
by qsl_idx, a payload shorter than one detection means "no results" for that image, boxes scaled to the
image's width and height, COCOeval over the images seen, and its line `mAP=XX.XXX%`.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from mlperf_ext.errors import DatasetError, ModelError
from mlperf_ext.logs import LogParseError
from mlperf_ext.result import AccuracyFigures
from tasks.base import SCORED_MODES, BaseTask

#: the outputs this task reads, and the one it may read
REQUIRED_OUTPUTS = ("boxes", "scores", "classes")
COUNT_OUTPUT = "num_detections"
#: float32 values per logged detection
DETECTION_FIELDS = 7


class DetectionTask(BaseTask):
    name: ClassVar[str] = "detection"
    extra: ClassVar[str] = "detection"
    scorer_module: ClassVar[str | None] = "pycocotools"
    metric: ClassVar[str | None] = "mAP"

    def check_dataset(self, dataset, mode: str) -> None:
        if mode not in SCORED_MODES:
            return
        check_annotations(getattr(dataset, "annotations", None), dataset.name, len(dataset))

    def check_outputs(self, output_names: Sequence[str]) -> None:
        missing = [n for n in REQUIRED_OUTPUTS if n not in output_names]
        if missing:
            raise ModelError(f"task detection reads outputs named {', '.join(REQUIRED_OUTPUTS)} (and optionally "
                             f"{COUNT_OUTPUT}); the model's are {', '.join(output_names)}, missing "
                             f"{', '.join(missing)}; fix: rename the model's outputs (onnx.utils or "
                             "onnx.compose.add_prefix), or use --task raw")

    def payloads(self, outputs: dict[str, np.ndarray], indices: Sequence[int]) -> list[np.ndarray]:
        boxes, scores, classes = (outputs[n] for n in REQUIRED_OUTPUTS)
        counts = outputs.get(COUNT_OUTPUT)
        out = []
        for row, index in enumerate(indices):
            score = scores[row].reshape(-1)
            keep = score > 0
            if counts is not None:
                keep[int(counts[row].reshape(-1)[0]):] = False
            kept = int(keep.sum())
            det = np.empty((kept, DETECTION_FIELDS), dtype="<f4")
            det[:, 0] = index
            det[:, 1:5] = boxes[row].reshape(-1, 4)[keep]
            det[:, 5] = score[keep]
            det[:, 6] = classes[row].reshape(-1)[keep]
            out.append(det)
        return out

    def score(self, entries: list, dataset) -> AccuracyFigures:
        annotations = dataset.annotations
        detections, image_ids, empty, duplicates = read_detections(entries, annotations["images"])
        value = coco_map(annotations, detections, sorted(image_ids))
        return AccuracyFigures(value=value, good=None, total=len(image_ids), line=f"mAP={100.0 * value:.3f}%",
                               metric=self.metric)


def check_annotations(annotations, name: str, samples: int) -> None:
    """COCO-format annotations with one image per sample, in QSL order; one line naming the fix otherwise."""
    fix = "save COCO-format annotations.json (images, annotations, categories) beside the samples, one image per sample"
    if annotations is None:
        raise DatasetError(f"dataset '{name}' has no annotations, so task detection cannot score mAP; fix: {fix}, or "
                           "use --mode performance")
    if not isinstance(annotations, dict) or not all(isinstance(annotations.get(k), list)
                                                    for k in ("images", "annotations", "categories")):
        raise DatasetError(f"dataset '{name}' annotations are not COCO format (lists 'images', 'annotations' and "
                           f"'categories'); fix: {fix}")
    images = annotations["images"]
    if len(images) != samples:
        raise DatasetError(f"dataset '{name}' has {samples} samples but its annotations list {len(images)} images; "
                           f"fix: {fix} (image k describes sample k)")
    bad = next((k for k, image in enumerate(images) if not isinstance(image, dict)
                or not all(key in image for key in ("id", "width", "height"))), None)
    if bad is not None:
        raise DatasetError(f"dataset '{name}' annotations: image {bad} lacks id, width or height; fix: {fix}")


def read_detections(entries: list, images: list) -> tuple[list[dict], set, int, int]:
    """COCO result dicts from an accuracy log's entries, as accuracy-coco.py builds them; also the image ids
    seen, how many images had no detection, and how many entries repeated a qsl_idx."""
    detections: list[dict] = []
    image_ids: set = set()
    seen: set[int] = set()
    empty = duplicates = 0
    for pos, entry in enumerate(entries):
        if not isinstance(entry, dict) or "qsl_idx" not in entry or "data" not in entry:
            raise LogParseError(f"accuracy log entry {pos} lacks qsl_idx/data; fix: pass the mlperf_log_accuracy.json "
                                "LoadGen wrote")
        idx = entry["qsl_idx"]
        if idx in seen:
            duplicates += 1
            continue
        seen.add(idx)
        if not isinstance(idx, int) or not 0 <= idx < len(images):
            raise LogParseError(f"accuracy log entry {pos} has qsl_idx {idx!r} but the annotations list {len(images)} "
                                "images; fix: score with the annotations of the dataset this run used")
        try:
            data = np.frombuffer(bytes.fromhex(entry["data"]), dtype="<f4")
        except (TypeError, ValueError) as exc:
            raise LogParseError(f"accuracy log entry {pos} (qsl_idx {idx}) does not decode as float32 ({exc}); fix: "
                                "pass the log of a detection run") from exc
        image = images[idx]
        image_ids.add(image["id"])
        if len(data) < DETECTION_FIELDS:
            empty += 1
            continue
        if len(data) % DETECTION_FIELDS:
            raise LogParseError(f"accuracy log entry {pos} (qsl_idx {idx}) holds {len(data)} float32, not a multiple "
                                f"of {DETECTION_FIELDS}; fix: pass the log of a detection run")
        rows = data.reshape(-1, DETECTION_FIELDS)
        if (rows[:, 0].astype(np.int64) != idx).any():
            raise LogParseError(f"accuracy log entry {pos}: LoadGen's qsl_idx {idx} and the payload's image_idx "
                                f"{int(rows[0, 0])} disagree; fix: the SUT must write the QSL index of each sample")
        height, width = float(image["height"]), float(image["width"])
        for _, ymin, xmin, ymax, xmax, score, label in rows.tolist():
            detections.append({"image_id": image["id"], "category_id": int(label), "score": score,
                               "bbox": [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height]})
    return detections, image_ids, empty, duplicates


def coco_map(annotations: dict, detections: list[dict], image_ids: list) -> float:
    """COCO mAP@[.50:.95] of `detections` over `image_ids` (pycocotools' stats[0]); 0 without detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not detections or not image_ids:
        return 0.0
    chatter = io.StringIO()  # pycocotools prints its progress and summary table
    with contextlib.redirect_stdout(chatter):
        truth = COCO()
        truth.dataset = copy.deepcopy(annotations)
        truth.createIndex()
        found = truth.loadRes(copy.deepcopy(detections))
        evaluation = COCOeval(truth, found, iouType="bbox")
        evaluation.params.imgIds = list(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return max(float(evaluation.stats[0]), 0.0)  # -1 means no ground truth in those images
