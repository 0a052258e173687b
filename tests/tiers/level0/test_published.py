"""The shipped table of published model requirements reproduces QuTiBench's own prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiers.level0
from tiers.level0.platforms import load_catalog
from tiers.level0.requirements import load_requirements
from tiers.level0.roofline import predict

PUBLISHED = Path(tiers.level0.__file__).with_name("models_published.yaml")


def test_googlenet_on_ultra96_dpu_matches_qutibench():
    # QuTiBench's hardware/topology CSVs give 306.7092652 inputs/s (github.com/RCL-lab/QutibenchWeb)
    models = {m.name: m for m in load_requirements(PUBLISHED)}
    point = load_catalog().get("ultra96-dpu").point(None)
    pred = predict(models["GoogLeNetv1 (QuTiBench)"], point, "int8")
    assert pred.inputs_per_s == pytest.approx(306.7092652, rel=1e-6)
    assert pred.bound == "compute"
