"""Models shared by the micro tests, built once per session (ResNet-50 and GoogLeNet take a second each)."""

from __future__ import annotations

import pytest

from mlperf_ext.zoo import quantize
from mlperf_ext.zoo.archs import build_arch
from tests.tiers.micro.models import calibration, small_resnet
from tiers.micro import prepare


@pytest.fixture(scope="session")
def resnet50():
    return build_arch("resnet50")


@pytest.fixture(scope="session")
def resnet50_layers(resnet50):
    return prepare(resnet50, name="resnet50-fp32")


@pytest.fixture(scope="session")
def googlenet_layers():
    return prepare(build_arch("googlenet"), name="googlenet-fp32")


@pytest.fixture(scope="session")
def small_resnet_int8():
    return quantize.to_int8_qdq(small_resnet(), calibration(), "input")[0]
