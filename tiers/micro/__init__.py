"""Levels 1 and 2 of QuTiBench: single layers and short stacks cut out of a real model.

Level 1 cuts every layer of an ONNX model into a standalone, shape-inferred model that carries its own
weights; level 2 cuts stacks of 2 and 4 consecutive layers (and parallel modules, such as GoogLeNet's
inception blocks, whole). Identical cuts are kept once with how often they occur, and every cut carries
its level-0 cost, so a measured time gives a per-layer efficiency. Synthetic, seeded inputs feed them.

Entry points::

    from tiers.micro import cut_model, cut_layers, cut_stacks, prepare, synthetic_inputs

    lg = prepare("resnet50.onnx", name="resnet50-fp32")   # load + shape inference, once
    level1 = cut_layers(lg)                               # CutSet of unique layers
    stacks4 = cut_stacks(lg, 4)                           # CutSet of 4-layer stacks (+ modules)
    feeds = synthetic_inputs(level1.cuts[0], batch=8, seed=0)

Modules: ``source`` (the inferred source), ``layers`` (what a layer is), ``signature`` (the dedup key),
``stacks`` (which layers form stacks), ``cut`` (extraction, the Cut/Skip/CutSet records), ``inputs``.
"""

from tiers.micro.cut import Cut, CutSet, MicroCuts, Skip, cut_layers, cut_model, cut_stacks, prepare
from tiers.micro.inputs import synthetic_inputs
from tiers.micro.layers import Layer, LayerGraph
from tiers.micro.source import SourceGraph, TensorSpec, load_source

__all__ = ["Cut", "CutSet", "Layer", "LayerGraph", "MicroCuts", "Skip", "SourceGraph", "TensorSpec", "cut_layers",
           "cut_model", "cut_stacks", "load_source", "prepare", "synthetic_inputs"]
