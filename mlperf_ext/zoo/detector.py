"""A detection workload built here: synthetic scenes of coloured squares with COCO annotations, and a
detector of them in plain ONNX ops.

No detection weights or images are available offline, so both halves are made here, deterministically:
- `shapes_scenes(n, seed)`: 3x64x64 float32 images in [0, 1] on a noisy background, each with 1-4 squares
  of side 7 to 15 pixels in one of three colours (category ids 1 red, 2 green, 3 blue), never
  overlapping; the annotations are COCO format (bbox x, y, w, h in pixels), image k describing sample k.
- `build_detector()`: a CenterNet-style detector whose weights are written down, not trained: one
  centre-surround matched filter per (colour, size) (a Conv), a sigmoid heat map, peak picking by
  max-pool equality (CenterNet's NMS), TopK, then each peak's channel gives its class and size and its
  position its box. Outputs `boxes` (N, K, 4) as normalised (ymin, xmin, ymax, xmax), `scores` (N, K) and
  `classes` (N, K): what the detection task reads.

The detector's mAP says that boxes, scores and classes travel correctly from the runtime through LoadGen's
accuracy log to pycocotools; it says nothing of any trained model's quality.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.zoo.metadata import ModelInfo, is_current, onnx_facts, versions, write_artifact
from mlperf_ext.zoo.registry import Progress, register_family

FAMILY = "detector"
MODEL_NAME = "shapes-detector"
#: bump when the graph or the scenes change, so cached artifacts are rebuilt
ARTIFACT_CODE_VERSION = 1
SIDE = 64
#: the square sizes the detector has filters for, and those the scenes hold: a square between two filter sizes
#: is found with the nearer size's box (IoU 0.67-0.74), so the scenes test localisation, not only routing
SIZES = (7, 11, 15)
SCENE_SIZES = (7, 9, 11, 13, 15)
CATEGORIES = ("red", "green", "blue")
#: detections per image the detector returns (its TopK)
TOP_K = 20
#: samples and seed of the built-in held-out scenes (`shapes`)
HELD_OUT = (200, 0)
#: the sigmoid that turns a filter response into a score: matched squares respond ~0.7, others < 0.4
SCORE_GAIN, SCORE_CENTRE = 12.0, 0.45
RING = 2  # width of the surround each filter subtracts


def shapes_scenes(n: int, seed: int) -> tuple[np.ndarray, dict]:
    """`n` scenes (n, 3, SIDE, SIDE) float32 and their COCO annotations."""
    rng = np.random.default_rng(seed)
    images = (0.3 * rng.random((n, 3, SIDE, SIDE))).astype(np.float32)
    coco: dict = {"images": [], "annotations": [],
                  "categories": [{"id": k + 1, "name": name} for k, name in enumerate(CATEGORIES)],
                  "info": {"description": f"synthetic coloured squares, seed {seed} (mlperf_ext.zoo.detector)"}}
    for index in range(n):
        image_id = index + 1
        coco["images"].append({"id": image_id, "width": SIDE, "height": SIDE, "file_name": f"scene_{index:05d}"})
        taken = np.zeros((SIDE, SIDE), dtype=bool)
        wanted = int(rng.integers(1, 5))
        for _attempt in range(50):
            if wanted == 0:
                break
            size = int(rng.choice(SCENE_SIZES))
            y, x = (int(v) for v in rng.integers(0, SIDE - size + 1, size=2))
            lo_y, lo_x = max(y - RING, 0), max(x - RING, 0)
            if taken[lo_y:y + size + RING, lo_x:x + size + RING].any():
                continue  # squares keep a surround of background, as the filters assume
            taken[y:y + size, x:x + size] = True
            colour = int(rng.integers(0, len(CATEGORIES)))
            patch = 0.3 * rng.random((3, size, size))
            patch[colour] = 0.85 + 0.15 * rng.random((size, size))
            images[index, :, y:y + size, x:x + size] = patch
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                        "category_id": colour + 1, "bbox": [x, y, size, size],
                                        "area": size * size, "iscrowd": 0})
            wanted -= 1
    return images, coco


def _filters(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights (colours, 3, m, m) and biases of the centre-surround filters of one square size, with the
    score sigmoid's gain and centre folded in."""
    m = size + 2 * RING
    inside = np.zeros((m, m), dtype=np.float32)
    inside[RING:RING + size, RING:RING + size] = 1.0
    ring = 1.0 - inside
    weights = np.zeros((len(CATEGORIES), 3, m, m), dtype=np.float32)
    for colour in range(len(CATEGORIES)):
        for channel in range(3):
            weights[colour, channel] = (inside / inside.sum() if channel == colour else -0.5 * inside / inside.sum())
        weights[colour, colour] -= ring / ring.sum()
    biases = np.full(len(CATEGORIES), -SCORE_GAIN * SCORE_CENTRE, dtype=np.float32)
    return SCORE_GAIN * weights, biases


def build_detector(top_k: int = TOP_K) -> onnx.ModelProto:
    """The detector graph (opset 17, dynamic batch)."""
    nodes, inits = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    heads = []
    for size in SIZES:
        weights, biases = _filters(size)
        pad = (weights.shape[-1] - 1) // 2
        nodes.append(helper.make_node("Conv", ["image", const(f"w{size}", weights), const(f"b{size}", biases)],
                                      [f"logit{size}"], pads=[pad] * 4, name=f"filter{size}"))
        heads.append(f"logit{size}")
    nodes += [
        helper.make_node("Concat", heads, ["logits"], axis=1),  # channel = size index * colours + colour
        helper.make_node("Sigmoid", ["logits"], ["heat"]),
        helper.make_node("MaxPool", ["heat"], ["peak"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Equal", ["heat", "peak"], ["is_peak"]),
        helper.make_node("Cast", ["is_peak"], ["peak_mask"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["heat", "peak_mask"], ["peaks"]),
        helper.make_node("Reshape", ["peaks", const("flat", np.array([0, -1], np.int64))], ["flat_peaks"]),
        helper.make_node("TopK", ["flat_peaks", const("k", np.array([top_k], np.int64))], ["scores", "where"], axis=1),
        helper.make_node("Div", ["where", const("plane", np.array(SIDE * SIDE, np.int64))], ["channel"]),
        helper.make_node("Mod", ["where", "plane"], ["position"]),
        helper.make_node("Div", ["position", const("side", np.array(SIDE, np.int64))], ["row"]),
        helper.make_node("Mod", ["position", "side"], ["col"]),
        helper.make_node("Mod", ["channel", const("colours", np.array(len(CATEGORIES), np.int64))], ["colour"]),
        helper.make_node("Add", ["colour", const("one", np.array(1, np.int64))], ["category"]),
        helper.make_node("Cast", ["category"], ["classes"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["channel", "colours"], ["size_index"]),
        helper.make_node("Gather", [const("sizes", np.array(SIZES, np.float32)), "size_index"], ["size"]),
        helper.make_node("Mul", ["size", const("half", np.array(0.5, np.float32))], ["half_size"]),
    ]
    for axis in ("row", "col"):  # a pixel's centre is at index + 0.5; the square spans centre -/+ size/2
        nodes += [
            helper.make_node("Cast", [axis], [f"{axis}_f"], to=TensorProto.FLOAT),
            helper.make_node("Add", [f"{axis}_f", const(f"{axis}_half_pixel", np.array(0.5, np.float32))],
                             [f"{axis}_centre"]),
            helper.make_node("Sub", [f"{axis}_centre", "half_size"], [f"{axis}_lo"]),
            helper.make_node("Add", [f"{axis}_centre", "half_size"], [f"{axis}_hi"]),
        ]
    edges = ("row_lo", "col_lo", "row_hi", "col_hi")  # ymin, xmin, ymax, xmax
    for edge in edges:
        nodes.append(helper.make_node("Unsqueeze", [edge, const(f"{edge}_axis", np.array([2], np.int64))],
                                      [f"{edge}_1"]))
    nodes += [
        helper.make_node("Concat", [f"{e}_1" for e in edges], ["pixel_boxes"], axis=2),
        helper.make_node("Div", ["pixel_boxes", const("side_f", np.array(SIDE, np.float32))], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes, "shapes_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", top_k, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", top_k]),
         helper.make_tensor_value_info("classes", TensorProto.FLOAT, ["N", top_k])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlperf-ext")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def list_models() -> list[ModelInfo]:
    return [ModelInfo(name=MODEL_NAME, family=FAMILY, architecture="centre-surround filters + topk", pruning=None,
                      precision="fp32", dataset=None,
                      description="detector of coloured squares, written-down weights (run with --task detection "
                                  "--dataset shapes)")]


def build_model(info: ModelInfo, models_dir: Path, progress: Progress | None = None, force: bool = False) -> Path:
    path = Path(models_dir) / f"{info.name}.onnx"
    recipe = f"{FAMILY}/{info.name}/k{TOP_K}/code{ARTIFACT_CODE_VERSION}"
    say = progress or (lambda _m: None)
    if not force and is_current(path, recipe):
        say(f"{info.name}: cached")
        return path
    start = time.perf_counter()
    model = build_detector()
    meta = {**info.to_dict(), "recipe": recipe, "task": "detection", "accuracy": None,
            "accuracy_reason": "a detector: its mAP comes from a run with --task detection on the shapes dataset",
            "weights": {"kind": "written down (centre-surround matched filters), not trained"},
            "input": {"name": "image", "shape": ["N", 3, SIDE, SIDE], "dtype": "float32"},
            "output": {"names": ["boxes", "scores", "classes"], "top_k": TOP_K},
            "onnx": onnx_facts(model), "versions": versions(),
            "build_time_s": round(time.perf_counter() - start, 3)}
    write_artifact(model.SerializeToString(), path, meta)
    say(f"{info.name}: built")
    return path


register_family(FAMILY, list_models, build_model)
