"""The task layer: a detector's boxes through LoadGen's accuracy log to pycocotools' mAP on ONNX Runtime and
OpenVINO in all four scenarios, raw outputs stored as they are, classification keys unchanged, and one-line
errors for what a task cannot score."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.datasets import open_dataset
from mlperf_ext.errors import ConfigError, DatasetError, ModelError
from mlperf_ext.logs import LogParseError
from mlperf_ext.zoo.detector import build_model, list_models
from sut.base import DeploymentOptions
from tasks.detection import DETECTION_FIELDS, DetectionTask, read_detections
from tasks.raw import decode
from tasks.registry import get_task, names
from tests.sut.conftest import assert_four_scenarios_valid, assert_user_error, build_mlp, cli, run_spec
from tiers.runner import layout

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return build_model(list_models()[0], tmp_path_factory.mktemp("detector"))


def _entries(payloads) -> list[dict]:
    """Accuracy-log entries as LoadGen writes them (upper-case hex of each payload)."""
    return [{"seq_id": k, "qsl_idx": k, "data": p.tobytes().hex().upper()} for k, p in enumerate(payloads)]


def direct_map(backend_name: str, model, dataset) -> float:
    """mAP of the backend's outputs on every sample, run directly (no LoadGen), scored by the same task."""
    from sut.registry import create_backend

    backend = create_backend(backend_name)
    backend.load(model, DeploymentOptions(max_batch=8, threads=1))
    task = DetectionTask()
    payloads = []
    for start in range(0, len(dataset), 8):
        indices = list(range(start, min(start + 8, len(dataset))))
        payloads += task.payloads(backend.infer_outputs(dataset.load(np.array(indices)), 0), indices)
    backend.close()
    return task.score(_entries(payloads), dataset).value


def test_the_tasks_are_found_by_name_and_an_unknown_one_is_bad_input():
    assert {"classification", "detection", "llm", "raw"} <= set(names())
    assert get_task("detection").metric == "mAP" and get_task("classification").named_outputs is False
    with pytest.raises(ConfigError) as exc:
        get_task("segmentation")
    assert "classification, detection, llm, raw" in assert_user_error(exc.value)


def test_a_classifier_point_keeps_the_key_it_had_before_tasks(tmp_path):
    base = {"model": "mlp.onnx", "dataset": "mnist", "backend": "onnxruntime", "scenario": "Offline"}
    assert "task" not in RunPoint(**base).identity()
    assert RunPoint(**base, task="detection").identity()["task"] == "detection"
    assert "detection" in RunPoint(**base, task="detection").label()


def test_detection_payloads_are_mlperfs_seven_floats_per_detection():
    boxes = np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.6, 0.6], [0, 0, 0, 0]]], np.float32)
    outputs = {"boxes": boxes, "scores": np.array([[0.9, 0.4, 0.0]], np.float32),
               "classes": np.array([[2, 3, 1]], np.float32)}
    [payload] = DetectionTask().payloads(outputs, [17])
    assert payload.dtype == np.dtype("<f4") and payload.shape == (2, DETECTION_FIELDS)  # the zero score is padding
    np.testing.assert_allclose(payload[0], [17, 0.1, 0.2, 0.3, 0.4, 0.9, 2])
    [cut] = DetectionTask().payloads({**outputs, "num_detections": np.array([1])}, [17])
    assert cut.shape == (1, DETECTION_FIELDS)
    images = [{"id": 5, "width": 100, "height": 50}] * 18
    detections, seen, empty, _dupes = read_detections(_entries([np.zeros((0, 7), "<f4")] * 17 + [payload]), images)
    assert seen == {5} and empty == 17 and len(detections) == 2
    np.testing.assert_allclose(detections[0]["bbox"], [20, 5, 20, 10], rtol=1e-6)  # x, y, w, h in pixels
    assert detections[0]["category_id"] == 2
    bad = payload.copy()
    bad[:, 0] = 3
    with pytest.raises(LogParseError) as exc:
        read_detections([{"qsl_idx": 0, "data": bad.tobytes().hex()}], images)
    assert "disagree" in assert_user_error(exc.value)


def test_a_detection_dataset_carries_coco_annotations_in_its_hash(tmp_path):
    shapes = open_dataset("shapes")
    assert len(shapes.annotations["images"]) == len(shapes) and shapes.labels is None
    folder = tmp_path / "scenes"
    folder.mkdir()
    np.save(folder / "samples.npy", shapes.load(np.arange(10)))
    annotations = {**shapes.annotations, "images": shapes.annotations["images"][:10]}
    (folder / "annotations.json").write_text(json.dumps(annotations))
    with_them = open_dataset(folder)
    assert with_them.annotations == annotations
    DetectionTask().check_dataset(with_them, "accuracy")
    (folder / "annotations.json").write_text(json.dumps({**annotations, "images": annotations["images"][:9]}))
    with pytest.raises(DatasetError) as exc:
        DetectionTask().check_dataset(open_dataset(folder), "accuracy")
    assert "10 samples but its annotations list 9 images" in assert_user_error(exc.value)
    changed = open_dataset(folder).scan().sha256
    (folder / "annotations.json").unlink()
    without = open_dataset(folder)
    assert without.annotations is None and without.scan().sha256 != changed
    DetectionTask().check_dataset(without, "performance")  # nothing to score, nothing needed
    with pytest.raises(DatasetError) as exc:
        DetectionTask().check_dataset(without, "submission")
    assert "has no annotations" in assert_user_error(exc.value)


def test_the_detector_finds_the_squares_on_both_runtimes(detector):
    """Its mAP is neither 0 (boxes misrouted) nor 1: squares between two filter sizes get the nearer size's box."""
    pytest.importorskip("openvino")
    shapes = open_dataset("shapes")
    ort_map = direct_map("onnxruntime", detector, shapes)
    assert 0.6 < ort_map < 0.95
    assert abs(direct_map("openvino", detector, shapes) - ort_map) < 0.01


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_four_scenarios_through_the_cli_score_the_detector(detector, tmp_path, backend):
    """All four scenarios VALID; the Offline submission run's mAP, from LoadGen's accuracy log through pycocotools,
    is the mAP of the same backend run directly."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    common = {"models": [str(detector)], "dataset": "shapes", "backends": [backend], "batch": 8, "threads": 1,
              "task": "detection"}
    short = {"min_duration_ms": 200}
    proc, rows = run_spec([
        {**common, "scenarios": ["SingleStream"], "mode": "performance", "settings": short},
        # MultiStream's p99 early stopping wants 662 queries: of 2 samples each, not 8, they take seconds, not 18
        {**common, "scenarios": ["MultiStream"], "mode": "performance",
         "settings": {**short, "multi_stream_samples_per_query": 2}},
        {**common, "scenarios": ["Offline"], "mode": "submission", "streams": 2, "threads": 2, "settings": short},
        {**common, "scenarios": ["Server"], "mode": "performance",
         # MLPerf's detection benchmarks bound Server latency at 100 ms (retinanet), not a classifier's 10-15 ms,
         # and early stopping wants some 460 queries for its p99 estimate. 100/s is a fifth of this host's
         # Offline figure: 200/s left p99 at 105 ms on a 2-core CI host (INVALID), while the test is about scoring
         "settings": {"min_duration_ms": 5000, "server_target_qps": 100, "server_target_latency_ns": 100_000_000}},
    ], tmp_path)
    assert_four_scenarios_valid(proc, rows, backend)
    offline = rows["Offline"]
    assert offline.accuracy.metric == "mAP" and offline.accuracy.total == 200
    assert offline.accuracy.line == f"mAP={100 * offline.accuracy.value:.3f}%"
    assert offline.accuracy.value == pytest.approx(direct_map(backend, detector, open_dataset("shapes")), abs=0.005)
    logged = [e for log in tmp_path.glob(f"runs/*/{layout.LOADGEN_DIR}/mlperf_log_accuracy.json")
              for e in json.loads(log.read_text() or "[]")]
    assert len({e["qsl_idx"] for e in logged}) == 200  # the submission run's accuracy test logged every sample
    for entry in logged[:20]:
        rows7 = np.frombuffer(bytes.fromhex(entry["data"]), "<f4").reshape(-1, DETECTION_FIELDS)
        assert (rows7[:, 0] == entry["qsl_idx"]).all() and (rows7[:, 5] > 0).all()
    assert "mAP" in cli("results", "--workdir", str(tmp_path)).stdout


def test_raw_outputs_are_stored_as_they_are(tmp_path):
    built = build_mlp(tmp_path / "mlp.onnx", dims=(16, 8, 6))
    data = tmp_path / "data"
    data.mkdir()
    samples = built.batch(40)
    np.save(data / "samples.npy", samples)
    proc, rows = run_spec([{"models": [str(built.path)], "dataset": str(data), "backends": ["onnxruntime"],
                            "scenarios": ["Offline"], "mode": "accuracy", "batch": 8, "task": "raw"}], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = rows["Offline"]
    assert row.status == "ok" and row.accuracy is None
    assert any("scores nothing" in note for note in row.notes)
    entries = json.loads(next(tmp_path.glob("runs/*/loadgen/mlperf_log_accuracy.json")).read_text())
    assert sorted(e["qsl_idx"] for e in entries) == list(range(40))
    expected = built.reference(samples)
    for entry in entries:
        got = decode(entry["data"], [("logits", "float32", (6,))])["logits"]
        np.testing.assert_allclose(got, expected[entry["qsl_idx"]], rtol=1e-4, atol=1e-5)


def test_what_a_task_cannot_score_is_refused_in_one_line(detector, tmp_path):
    classifier = build_mlp(tmp_path / "mlp.onnx", dims=(784, 10)).path
    with pytest.raises(ModelError) as exc:
        DetectionTask().check_outputs(("logits",))
    assert "missing boxes, scores, classes" in assert_user_error(exc.value)
    proc = cli("run", "--model", str(classifier), "--dataset", "mnist", "--backend", "onnxruntime",
               "--scenario", "Offline", "--task", "detection", "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2 and "missing boxes, scores, classes" in proc.stderr, proc.stderr[-1000:]
    proc = cli("run", "--model", str(detector), "--dataset", "shapes", "--backend", "onnxruntime",
               "--scenario", "Offline", "--task", "segmentation", "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2 and "unknown task 'segmentation'" in proc.stderr


def test_a_backend_that_returns_one_output_refuses_a_named_output_task(detector):
    pytest.importorskip("torch")
    from tiers.runner.validate import PointValidator

    point = RunPoint(model=str(detector), dataset="shapes", backend="torch", scenario="Offline", task="detection")
    plan = PointValidator().plan(point)
    assert "torch returns only a model's first output" in plan.refusal and "fix:" in plan.refusal
    assert PointValidator().plan(RunPoint(model=str(detector), dataset="shapes", backend="onnxruntime",
                                          scenario="Offline", task="detection")).refusal is None
