"""Efficiency of measured rows, correlations, and the level-0 CLI (parser built here)."""

from __future__ import annotations

import argparse
import csv

import onnx
import pytest
import yaml

from mlperf_ext.errors import ConfigError
from mlperf_ext.store import ResultsStore
from tests.tiers.level0.test_graph import conv_model, dense_model
from tiers.level0 import cli
from tiers.level0.efficiency import correlations, normalise_precision, row_efficiencies
from tiers.level0.platforms import Catalog, parse_platform

MEM_FPS = 1e9 / 31400  # dense on TOY: memory-bound roofline
TOY = {"name": "toy", "kind": "cpu", "peak_tops": {"fp32": 1e-3}, "memory_bandwidth_gbs": 1.0,
       "source": "hand-made for tests"}


@pytest.fixture()
def dense_path(tmp_path):
    p = tmp_path / "dense.onnx"
    onnx.save(dense_model(), str(p))
    return p


def _row(path, fps, batch=1, platform="toy", precision="fp32", executed=None):
    return {"model": str(path), "model_sha256": None, "precision": precision, "platform": platform,
            "operating_mode": None, "batch": batch, "compute_throughput": fps, "backend": "onnxruntime",
            "runtime_compute_dtype": executed, "dataset": "mnist", "scenario": "Offline"}


def _stored(row: dict, i: int):
    from mlperf_ext.result import PointResult

    return PointResult.from_row({**row, "point_key": f"k{i}", "run_id": f"r{i}", "status": "ok"})


def test_row_efficiency_hand_computed(dense_path):
    # dense: 15680 ops, 31400 B -> compute 1e9/15680 = 63776/s, memory 1e9/31400 = 31847/s (memory-bound)
    cat = Catalog([parse_platform(TOY, "t")])
    effs, skipped = row_efficiencies([_row(dense_path, MEM_FPS / 2), _row("missing.onnx", 1.0),
                                      _row(dense_path, 1.0, platform="nope")], cat)
    (e,) = effs
    assert e.predicted_fps == pytest.approx(1e9 / 31400) and e.bound == "memory"
    assert e.efficiency == pytest.approx(0.5)
    assert e.peak_fraction == pytest.approx(MEM_FPS / 2 * 15680 / 1e9)
    assert [s.row_index for s in skipped] == [1, 2] and "unknown platform" in skipped[1].reason


MODED = {**TOY, "name": "moded", "modes": {"slow": {"peak_tops": {"fp32": 4e-4}}, "fast": {}}}


@pytest.mark.parametrize("hint", ["LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"])
def test_runtime_hint_as_operating_mode_uses_default_mode_and_says_so(dense_path, hint):
    """sut/openvino.py stores its PERFORMANCE_HINT as operating_mode: not a platform mode, so the row is
    predicted against the default mode (or the base numbers) and the row notes it, instead of being dropped."""
    cat = Catalog([parse_platform(TOY, "t"), parse_platform(MODED, "t")])
    rows = [{**_row(dense_path, MEM_FPS / 2), "operating_mode": hint},
            {**_row(dense_path, MEM_FPS / 2, platform="moded"), "operating_mode": hint}]
    effs, skipped = row_efficiencies(rows, cat, default_mode="slow")
    assert skipped == []
    toy, moded = effs
    assert toy.mode == "" and toy.efficiency == pytest.approx(0.5)
    assert hint in toy.note and "base numbers" in toy.note
    assert moded.mode == "slow" and hint in moded.note and "slow" in moded.note
    assert moded.predicted_fps == pytest.approx(4e8 / 15680)  # slow mode: compute-bound at 0.4 of the peak


def test_the_precision_that_executed_is_predicted_not_the_label(dense_path):
    """An int8-labelled variant that the runtime ran in fp32 is predicted at the fp32 peak, with the weights
    still streaming as stored; a row without that evidence uses its label and says so."""
    cat = Catalog([parse_platform({**TOY, "peak_tops": {"fp32": 1e-3, "int8": 4e-3}}, "t")])
    (ran, labelled), _ = row_efficiencies([_row(dense_path, 1.0, precision="int8", executed="fp32"),
                                           _row(dense_path, 1.0, precision="int8")], cat)
    assert ran.precision == "fp32" and ran.note == ""
    assert labelled.precision == "int8" and "no executed precision" in labelled.note


def test_unknown_precision_label_is_skipped_with_reason(dense_path):
    cat = Catalog([parse_platform(TOY, "t")])
    effs, skipped = row_efficiencies([_row(dense_path, 1.0, precision="weird"),
                                      _row(dense_path, MEM_FPS, precision=None)], cat)
    assert [s.row_index for s in skipped] == [0] and "'weird'" in skipped[0].reason
    assert len(effs) == 1 and effs[0].precision == "fp32"  # no label: the model's stored precision


def test_correlations_need_three_points(tmp_path, dense_path):
    cat = Catalog([parse_platform(TOY, "t")])
    paths = []
    for i, cout in enumerate((4, 8, 16)):
        p = tmp_path / f"conv{i}.onnx"
        onnx.save(conv_model(cout=cout), str(p))
        paths.append(p)
    rows = [_row(p, 100.0 / (i + 1)) for i, p in enumerate(paths)]
    effs, _ = row_efficiencies(rows, cat)
    (c,) = correlations(effs)
    assert c.n == 3 and c.spearman_r == pytest.approx(1.0) and c.pearson_r > 0.9
    (c2,) = correlations(effs[:2])
    assert c2.n == 2 and c2.pearson_r != c2.pearson_r  # NaN: undefined with 2 points


def test_normalise_precision():
    assert normalise_precision("INT8") == "int8"
    assert normalise_precision("int8-qdq") == "int8"
    assert normalise_precision("weird") is None


def _parser():
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command", required=True))
    return p


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


def test_cli_platforms_list_and_show(capsys, tmp_path):
    assert _run(["platforms", "list", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ultra96-dpu" in out and "h100-sxm" in out
    assert _run(["platforms", "show", "jetson-tx2", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "maxq" in out and "0.87" in out and "source:" in out
    with pytest.raises(ConfigError, match="platforms detect"):
        _run(["platforms", "show", "host", "--workdir", str(tmp_path)])


def test_cli_predict_heatmap_and_csv(capsys, tmp_path, dense_path):
    models = tmp_path / "m.yaml"
    models.write_text(yaml.safe_dump({"models": [{"name": "GoogLeNetv1", "ops_g": 3.13, "params_m": 6.0,
                                                  "precisions": ["int8", "fp32"]}]}))
    out_csv, roof_csv = tmp_path / "h.csv", tmp_path / "r.csv"
    rc = _run(["predict", "--models-file", str(models), "--model", str(dense_path), "--platform", "ultra96-dpu",
               "--platform", "jetson-tx2", "--csv", str(out_csv), "--roofline-csv", str(roof_csv),
               "--workdir", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "jetson-tx2/maxq" in out and "306.7" in out
    rows = list(csv.DictReader(open(out_csv)))
    cell = {(r["model"], r["precision"], r["platform"], r["mode"]): r["inputs_per_s"] for r in rows}
    assert float(cell[("GoogLeNetv1", "int8", "ultra96-dpu", "")]) == pytest.approx(306.7092652)
    assert cell[("GoogLeNetv1", "fp32", "ultra96-dpu", "")] == ""  # DPU cannot run fp32
    # int8 on TX2 runs on its fp16 units (carrier): 1.15e12 / 3.13e9 in maxp
    assert float(cell[("GoogLeNetv1", "int8", "jetson-tx2", "maxp")]) == pytest.approx(1.15e12 / 3.13e9)
    roof = list(csv.DictReader(open(roof_csv)))
    assert {"operational_intensity", "attainable_tops", "peak_tops"} <= set(roof[0])
    with pytest.raises(ConfigError, match="no model given"):
        _run(["predict", "--workdir", str(tmp_path)])


def test_cli_efficiency_and_fitted_from_results_store(capsys, tmp_path, dense_path):
    plat = tmp_path / "p.yaml"
    plat.write_text(yaml.safe_dump({"platforms": [TOY]}))
    store = ResultsStore(tmp_path / "results.sqlite")
    for i, fps in enumerate((MEM_FPS / 2, MEM_FPS / 4, MEM_FPS)):
        store.append(_stored(_row(dense_path, fps, batch=1), i))
    assert _run(["efficiency", "--workdir", str(tmp_path), "--platforms-file", str(plat)]) == 0
    out = capsys.readouterr().out
    assert "50.00%" in out and "25.00%" in out and "n=3" in out
    assert "above 100 %" not in out  # no row beats its roofline here
    assert _run(["predict", "--model", str(dense_path), "--platform", "toy", "--predictor", "fitted",
                 "--workdir", str(tmp_path), "--platforms-file", str(plat)]) == 0
    out = capsys.readouterr().out
    assert "fit toy: eta = 0.5 from n = 3" in out  # geometric mean of 0.5, 0.25, 1.0


def test_efficiency_above_100_percent_is_explained(capsys, tmp_path, dense_path):
    plat = tmp_path / "p.yaml"
    plat.write_text(yaml.safe_dump({"platforms": [TOY]}))
    ResultsStore(tmp_path / "results.sqlite").append(_stored(_row(dense_path, 2.24 * MEM_FPS), 0))
    assert _run(["efficiency", "--workdir", str(tmp_path), "--platforms-file", str(plat)]) == 0
    out = capsys.readouterr().out
    assert "224.00%" in out and "1 row(s) above 100 %" in out and "fit in the caches" in out


def test_cli_fitted_learns_eta_in_the_mode_it_is_applied_to(capsys, tmp_path, dense_path):
    """A host-like platform: nominal peaks vs lower measured ones. η must be fitted against each mode's own
    roofline; one η from the nominal base applied to the measured column would predict 0.2 x 12755/s."""
    hosty = {**TOY, "name": "hosty", "modes": {"nominal": {}, "measured": {"peak_tops": {"fp32": 2e-4}}}}
    plat = tmp_path / "p.yaml"
    plat.write_text(yaml.safe_dump({"platforms": [hosty]}))
    measured_fps = 0.5 * 2e8 / 15680  # half of the measured-mode roofline (compute-bound there)
    store = ResultsStore(tmp_path / "results.sqlite")
    for i in range(3):
        store.append(_stored(_row(dense_path, measured_fps, platform="hosty"), i))
    out_csv = tmp_path / "fit.csv"
    assert _run(["predict", "--model", str(dense_path), "--platform", "hosty", "--predictor", "fitted",
                 "--csv", str(out_csv), "--workdir", str(tmp_path), "--platforms-file", str(plat)]) == 0
    out = capsys.readouterr().out
    assert "fit hosty/measured: eta = 0.5 from n = 3" in out
    assert f"fit hosty/nominal: eta = {measured_fps / MEM_FPS:.4g}" in out
    cells = {r["mode"]: float(r["inputs_per_s"]) for r in csv.DictReader(open(out_csv))}
    assert cells["measured"] == pytest.approx(measured_fps) and cells["nominal"] == pytest.approx(measured_fps)


def test_cli_csv_empty_result_has_header_and_directory_path_is_a_config_error(tmp_path, dense_path):
    plat = tmp_path / "p.yaml"
    plat.write_text(yaml.safe_dump({"platforms": [TOY]}))
    ResultsStore(tmp_path / "results.sqlite").append(_stored(_row(dense_path, 1.0, platform="nope"), 0))
    out_csv = tmp_path / "eff.csv"
    assert _run(["efficiency", "--workdir", str(tmp_path), "--platforms-file", str(plat),
                 "--csv", str(out_csv)]) == 0
    header = out_csv.read_text().splitlines()
    assert len(header) == 1 and header[0].startswith("model,platform,mode,precision")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    target = tmp_path / "a_directory"
    target.mkdir()
    with pytest.raises(ConfigError, match="cannot write CSV.*fix:"):
        _run(["predict", "--model", str(dense_path), "--platform", "toy", "--workdir", str(tmp_path),
              "--platforms-file", str(plat), "--csv", str(target)])
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
