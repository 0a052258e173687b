"""Prediction formula on hand-made platforms, the platform catalog and requirement files."""

from __future__ import annotations

import math

import pytest
import yaml

from mlperf_ext.errors import ConfigError
from tiers.level0.platforms import load_catalog, load_platform_file, parse_platform
from tiers.level0.requirements import ModelRequirement, load_requirements
from tiers.level0.roofline import carrier, fit_efficiency, predict

BASE = {"name": "toy", "kind": "asic", "peak_tops": {"int8": 2.0, "fp16": 1.0}, "memory_bandwidth_gbs": 10.0,
        "onchip_memory_mb": 8.0, "source": "hand-made for tests"}


def toy(**over):
    return parse_platform({**BASE, **over}, "test")


def model(ops_g=1.0, params_m=4.0):
    return ModelRequirement("m", ops_g * 1e9, params_m * 1e6, ["int8"])


def test_compute_bound():
    # 2e12 / 1e9 = 2000/s; memory: 10e9 / 4e6 B = 2500/s -> compute-bound
    p = predict(model(), toy().point(), "int8")
    assert p.inputs_per_s == pytest.approx(2000) and p.bound == "compute" and p.carrier == "int8"
    assert p.operational_intensity == pytest.approx(1e9 / 4e6)


def test_memory_bound_and_batch():
    # params 40 M int8 = 40 MB -> 10e9/40e6 = 250/s < 2000/s
    p = predict(model(params_m=40), toy().point(), "int8")
    assert p.inputs_per_s == pytest.approx(250) and p.bound == "memory"
    p8 = predict(model(params_m=40), toy().point(), "int8", batch=8)  # weights once per batch
    assert p8.inputs_per_s == pytest.approx(2000) and p8.bound == "compute"
    assert predict(model(params_m=40), toy().point(), "int8", batch=4).inputs_per_s == pytest.approx(1000)


def test_carrier_datatype():
    pt = toy().point()
    assert carrier(pt, "int4") == "int8"  # int4 runs on int8 units
    assert carrier(pt, "int8") == "int8"
    assert carrier(pt, "fp32") is None  # nothing can carry fp32 here
    assert predict(model(), pt, "fp32") is None
    # int4 weights stream at 4 bits: 40 M params = 20 MB -> 500/s; compute at the int8 peak 2000/s
    p = predict(model(params_m=40), pt, "int4")
    assert p.carrier == "int8" and p.inputs_per_s == pytest.approx(500)
    fp_only = toy(peak_tops={"fp16": 1.0, "bf16": 3.0, "fp32": 0.5}).point()
    assert carrier(fp_only, "int8") == "bf16"  # 16-bit tie -> higher peak
    assert carrier(fp_only, "fp16") == "fp16"


def test_operating_modes():
    plat = toy(modes={"fast": {"peak_tops": {"int8": 2.0}}, "slow": {"peak_tops": {"int8": 1.0}, "tdp_w": 1}})
    cols = plat.points()
    assert [c.label for c in cols] == ["toy/fast", "toy/slow"]
    assert predict(model(), cols[1], "int8").inputs_per_s == pytest.approx(1000)
    assert cols[1].peak_tops["fp16"] == 1.0  # not overridden -> base value
    with pytest.raises(ConfigError, match="no mode 'turbo'"):
        plat.point("turbo")


def test_mode_replacing_peak_tops_has_only_its_own_peaks():
    plat = toy(modes={"merged": {"peak_tops": {"int8": 1.0}},
                      "measured": {"peak_tops": {"int8": 1.0}, "replace_peak_tops": True}})
    assert plat.point("merged").peak_tops == {"int8": 1.0, "fp16": 1.0}  # default: merged over the base
    measured = plat.point("measured")
    assert measured.peak_tops == {"int8": 1.0}  # fp16 not measured: absent, not the base's number
    assert predict(model(), measured, "fp16") is None
    with pytest.raises(ConfigError, match="replace_peak_tops needs the mode's own peak_tops"):
        toy(modes={"m": {"replace_peak_tops": True}})
    with pytest.raises(ConfigError, match="not true/false"):
        toy(modes={"m": {"peak_tops": {"int8": 1.0}, "replace_peak_tops": "yes"}})


def test_onchip_refinement():
    m = model(params_m=40)  # 40 MB int8 > 8 MB on-chip: still memory-bound
    assert predict(m, toy().point(), "int8", predictor="onchip").bound == "memory"
    small = model(params_m=6)  # 6 MB fits: no memory bound
    r = predict(small, toy(memory_bandwidth_gbs=1.0).point(), "int8", predictor="roofline")
    o = predict(small, toy(memory_bandwidth_gbs=1.0).point(), "int8", predictor="onchip")
    assert r.bound == "memory" and r.inputs_per_s == pytest.approx(1e9 / 6e6)
    assert o.bound == "compute" and o.inputs_per_s == pytest.approx(2000) and o.predictor == "onchip"


def test_fitted_factor_is_geometric_mean():
    fits = fit_efficiency([("toy", 100.0, 50.0), ("toy", 100.0, 200.0), ("toy", 10.0, 2.5), ("other", 1.0, 0.0)])
    f = fits["toy"]
    assert f.n == 3 and f.factor == pytest.approx(math.exp((math.log(0.5) + math.log(2) + math.log(0.25)) / 3))
    assert "other" not in fits  # zero measurements are not fitted
    p = predict(model(), toy().point(), "int8", predictor="fitted", fits=fits)
    assert p.inputs_per_s == pytest.approx(2000 * f.factor) and p.predictor == "fitted"
    assert predict(model(), toy(name="nofit").point(), "int8", predictor="fitted", fits=fits) is None


def test_qutibench_published_prediction():
    """Ultra96-DPU INT8 GoogLeNetv1: QuTiBench's prediction file says 306.7092652 inputs/s (3.13 GOPs)."""
    cat = load_catalog()
    p = predict(ModelRequirement("GoogLeNetv1", 3.13e9, 6e6, ["int8"]), cat.get("ultra96-dpu").point(), "int8")
    assert p.inputs_per_s == pytest.approx(306.7092652) and p.bound == "compute"


def test_builtin_catalog_has_required_platforms():
    cat = load_catalog()
    for name in ("ultra96-dpu", "zcu104-dpu", "zcu102-dpu", "zcu104-finn", "jetson-tx2", "coral-edgetpu",
                 "intel-ncs2", "cortex-a53x4", "jetson-agx-orin", "hailo-8", "h100-sxm", "h200-sxm", "a100-sxm", "l4",
                 "xeon-8480plus"):
        assert cat.get(name).source
    assert set(cat.get("jetson-tx2").modes) == {"maxn", "maxp", "maxq"}
    assert set(cat.get("coral-edgetpu").modes) == {"fast", "slow"}


def test_catalog_is_honest_about_what_runs_where():
    cat = load_catalog()
    ncs = cat.get("intel-ncs2").point("openvino-myriad")  # MYRIAD runs FP16 only: int8 on the fp16 units
    assert "int8" not in ncs.peak_tops and carrier(ncs, "int8") == "fp16"
    orin = cat.get("jetson-agx-orin")
    assert orin.point("maxn-gpu").peak_tops["int8"] < orin.point("maxn").peak_tops["int8"]  # DLAs excluded
    assert "not meaningful" in cat.get("hailo-8").description
    assert "Dev Board" in cat.get("coral-edgetpu").description


@pytest.mark.parametrize("bad,match", [
    ({"peak_tops": {"int3": 1}}, "unknown datatype 'int3'"),
    ({"peak_tops": {"int8": -1}}, "not a positive number"),
    ({"kind": "quantum"}, "kind 'quantum' unknown"),
    ({"memory_bandwidth_gbs": "fast"}, "memory_bandwidth_gbs"),
    ({"modes": {"x": {"name": "y"}}}, "cannot override name"),
    ({"colour": "red"}, "unknown field"),
    ({"source": " "}, "empty source"),
])
def test_platform_validation_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        toy(**bad)


def test_platform_missing_field_and_files(tmp_path):
    with pytest.raises(ConfigError, match="missing source"):
        parse_platform({k: v for k, v in BASE.items() if k != "source"}, "t")
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"platforms": [BASE]}))
    assert load_platform_file(f)[0].name == "toy"
    assert load_catalog([f]).get("toy").kind == "asic"
    with pytest.raises(ConfigError, match="defined twice"):
        load_catalog([f, f])
    f.write_text("platforms: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_platform_file(f)
    with pytest.raises(ConfigError, match="unknown platform 'nope'"):
        load_catalog().get("nope")


def test_requirements_file(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump({"models": [
        {"name": "ResNet-50 100%", "ops_g": 7.7, "params_m": 25.5, "precisions": ["int8", "fp32"],
         "source": "QuTiBench cnn_topologies_compute_memory_requirements.csv"}]}))
    (r,) = load_requirements(f)
    assert r.ops == 7.7e9 and r.weight_bytes_at("int8") == 25.5e6
    # QuTiBench's OI(INT8) for ResNet-50 100% is 302.71 ops/byte (7.72 GOPs unrounded in their table)
    assert r.operational_intensity("int8") == pytest.approx(7.7e9 / 25.5e6)
    f.write_text(yaml.safe_dump({"models": [{"name": "x", "ops_g": 1, "params_m": 1, "precisions": ["int9"]}]}))
    with pytest.raises(ConfigError, match="unknown precision"):
        load_requirements(f)
    f.write_text(yaml.safe_dump({"models": [{"name": "x", "ops_g": 1}]}))
    with pytest.raises(ConfigError, match="missing params_m, precisions"):
        load_requirements(f)
