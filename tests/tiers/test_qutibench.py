"""QuTiBench's measured-data CSV (tiers/qutibench.py): the published schema, reading published rows, our
export's mapping, the CSV + JSON round trip, and the `qutibench` commands."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError
from mlperf_ext.power.metrics import PowerFigures
from mlperf_ext.result import (
    AccuracyFigures,
    ComputeFigures,
    PointResult,
    RuntimeInfo,
    SystemFigures,
    Variant,
)
from mlperf_ext.store import ResultsStore
from tests.tiers.test_pareto import dense_model, run_cli
from tiers.level0.platforms import load_catalog
from tiers.pareto import NO_ACCURACY, pareto
from tiers.qutibench import (
    HEADER,
    MAPPING,
    QutibenchRecord,
    candidates_from_records,
    csv_rows,
    read_csv,
    records_from_results,
    sidecar_path,
    task_of,
    with_derived,
    write_export,
)

# Typed out from github.com/RCL-lab/QutibenchWeb, _notebooks/data/cleaned_csv/experimental_data.csv at commit
# 66c3aaa: the header (line 1) and lines 2, 34, 338, 786, 809 and 972, verbatim (note " level", the empty
# cells, the quoted "1,234.82" and the float noise).
PUBLISHED_HEADER = ("NN_Topology,HWType,Datatype,Op mode,batch/thread/stream,lat-sys,lat-comp,fps-system,fps-comp,"
                    "tp-system,tp-comp,top1,top5 [%],Base_Pwr_W,Idle_Pwr_W,Full_Pwr_W,GOPS,PruningFactor, level,"
                    "hw_peak_perf,hw_bandwidth,nn_total_operations,hw_datatype_prun_net,norm-lat-comp,datatype_model,"
                    "tag")
PUBLISHED_ROWS = """\
MLP,NCS2,FP16,,1,3.16,1.6157,316.199,618.928,0.211537131,0.41406283200000005,97.95,,0.53,1.2,1.548,0.000669,12.5,l3,0.5,12.8,0.0007,NCS2_FP16_12.50%_MLP,0.0037120000735186,FP16_NCS2,NCS2_FP16_MLP_12.5
MLP,TX2-maxn,FP16,maxn,1,0.43,0.202777,2343.25,5325.37,1.56763425,3.56267253,97.15,,1.8,5.7,8.873,0.000669,12.5,l3,1.33,59.7,0.0007,TX2-maxn_FP16_12.50%_MLP,0.00046587128731068953,FP16_TX2-maxn,TX2-maxn_FP16_MLP_12.5
MLP,ZCU104-FINN,INT2,,1,,0.002,,1000000.0,,669.0,96.85,,9.2,13.85,14.1825,0.000669,12.5,l3,30.7,19.2,0.0007,ZCU104-FINN_INT2_12.50%_MLP,4.594912512865754e-06,INT2_ZCU104-FINN,ZCU104-FINN_INT2_MLP_12.5
EfficientNet-S,EdgeTPU-fast,INT8,fast,1,49.99852,4.9963,20.001,200.148,0.0,0.0,77.622837,93.766004,0.8096,0.8096,1.99899,0.0,100.0,l3,4.0,25.6,4.7,EdgeTPU-fast_INT8_100%_EfficientNet-S,0.5552437713857702,INT8_EdgeTPU-fast,EdgeTPU-fast_INT8_EfficientNet-S_100.0
GoogLeNetv1,TX2-maxq,FP16,maxq,128,"1,234.82",681.072,103.205,187.846,323.03165,587.9579799999998,66.928,87.83200000000002,1.8,4.15,6.03,400.64,100.0,l3,0.87,59.7,3.1,TX2-maxq_FP16_100%_GoogLeNetv1,0.5670307712801386,FP16_TX2-maxq,TX2-maxq_FP16_GoogLeNetv1_100.0
ResNet-50v15,EdgeTPU-fast,INT8,fast,1,,40.44151,10.552,24.727,86.5264,202.76139999999995,,,,,1.19,8.2,100.0,l3,4.0,25.6,10000000.0,EdgeTPU-fast_INT8_100%_ResNet-50v15,0.9547567491510442,INT8_EdgeTPU-fast,EdgeTPU-fast_INT8_ResNet-50v15_100.0
"""
FIRST_ROW = PUBLISHED_ROWS.splitlines()[0]
# _notebooks/data/FAIR_data/experimental_data.csv at 66c3aaa, lines 1 and 2
FAIR_TEXT = """\
NN_Topology,HWType,Datatype,Op mode,batch/thread/stream,lat-sys,lat-comp,fps-system,fps-comp,tp-system,tp-comp,top1,top5 [%],Base_Pwr_W,Idle_Pwr_W,Full_Pwr_W,GOPS,PruningFactor,level,hw_datatype_prun_net,norm-lat-comp,datatype_model,tag
MLP,NCS,FP16,,1,4.57,2.89257,218.893,345.713,4.3842078970000005,6.924285677,98.86,,0.53,1.2,1.794,0.020028999999999998,100.0,l3,NCS_FP16_100%_MLP,0.00664555304367005,FP16_NCS,NCS_FP16_MLP_100.0
"""
# _notebooks/data/data_template.csv at 66c3aaa (the header; the row is ours, in the template's columns)
TEMPLATE_TEXT = """\
NN_Topology,HWType,Precision,Op mode,batch/thread/stream,lat-comp,fps-system,fps-comp,tp-system,tp-comp,top1 [%],top5 [%],BasePWR [W],IdlePWR [W],FullPwr [W],GOPS,PruningFactor,level
MLP,NCS,FP16,,2,4.68459,247.308,426.931,,,98.86,,0.53,1.2,1.949,0.040058,100,l3
"""


@pytest.fixture()
def published(tmp_path):
    path = tmp_path / "experimental_data.csv"
    path.write_text(PUBLISHED_HEADER + "\n" + PUBLISHED_ROWS)
    return path


def test_the_export_header_is_the_published_one():
    assert HEADER == tuple(PUBLISHED_HEADER.split(",")) and len(HEADER) == 26 and " level" in HEADER
    assert set(MAPPING) == set(HEADER)  # every column says what our export writes there


def test_published_rows_are_read_typed(published):
    table = read_csv(published)
    assert table.dialect == "cleaned" and table.sidecar is None and len(table.records) == 6
    ncs2, tx2, finn, effnet, googlenet, resnet = table.records
    assert ncs2.nn_topology == "MLP" and ncs2.op_mode is None and ncs2.batch == 1 and ncs2.top5_pct is None
    assert tx2.op_mode == "maxn" and tx2.hw_peak_tops == 1.33 and tx2.hw_bandwidth_gbs == 59.7
    assert finn.lat_sys_ms is None and finn.fps_system is None and finn.fps_comp == 1e6
    assert googlenet.lat_sys_ms == 1234.82 and googlenet.batch == 128  # the quoted thousands separator
    assert resnet.top1_pct is None and resnet.level == "l3" and resnet.line == 7
    assert effnet.top1_pct == 77.622837 and effnet.full_pwr_w == 1.99899
    # the units the module documents, checked on these rows: tp = fps x GOPS / batch (GOP/s), and
    # lat-comp = batch x 1000 / fps-comp (ms per query; the TX2's own rows are only near it)
    for r in (ncs2, tx2, googlenet, resnet):
        assert r.tp_comp_gops == pytest.approx(r.fps_comp * r.gops_per_query / r.batch, rel=1e-6)
    for r in (ncs2, effnet, googlenet, resnet):
        assert r.lat_comp_ms == pytest.approx(r.batch * 1000 / r.fps_comp, rel=2e-3)
    assert tx2.lat_comp_ms == pytest.approx(tx2.batch * 1000 / tx2.fps_comp, rel=0.1)
    # the derived label columns are rebuilt exactly as published
    rebuilt = with_derived(table.records)
    for name in ("hw_datatype_prun_net", "datatype_model", "tag"):
        assert [getattr(r, name) for r in rebuilt] == [getattr(r, name) for r in table.records]
    assert [task_of(r) for r in table.records] == ["MNIST"] * 3 + ["ImageNet"] * 3


def test_published_rows_on_a_frontier_and_a_row_without_accuracy(published):
    report = pareto(candidates_from_records(read_csv(published).records), ["compute_throughput", "p90"],
                    level0=False)
    (edge,) = [f for f in report.frontiers if f.platform == "EdgeTPU-fast" and f.objective.name == "compute_throughput"]
    assert [p.model for p in edge.frontier] == ["EfficientNet-S 100%"] and edge.excluded == {NO_ACCURACY: 1}
    (p90,) = [f for f in report.frontiers if f.platform == "EdgeTPU-fast" and f.objective.name == "p90"]
    assert p90.points == [] and p90.excluded == {NO_ACCURACY: 1, "not in QuTiBench's schema": 1}


def test_published_records_written_again_read_the_same(published, tmp_path):
    from tiers.pareto import write_csv_atomic

    records = read_csv(published).records
    again = tmp_path / "again.csv"
    write_csv_atomic(again, HEADER, csv_rows(records))
    assert read_csv(again).records == records
    assert again.read_text().splitlines()[0] == PUBLISHED_HEADER


def test_the_fair_and_template_dialects(tmp_path):
    fair = tmp_path / "fair.csv"
    fair.write_text(FAIR_TEXT)
    table = read_csv(fair)
    (r,) = table.records
    assert table.dialect == "fair" and r.hw_type == "NCS" and r.level == "l3" and r.hw_peak_tops is None
    assert r.gops_per_query == 0.020028999999999998 and r.tag == "NCS_FP16_MLP_100.0"
    template = tmp_path / "template.csv"
    template.write_text(TEMPLATE_TEXT)
    table = read_csv(template)
    (r,) = table.records
    assert table.dialect == "template" and r.datatype == "FP16" and r.top1_pct == 98.86 and r.base_pwr_w == 0.53
    assert r.lat_sys_ms is None and r.batch == 2 and r.pruning_pct == 100.0


@pytest.mark.parametrize(("text", "message"), [
    ("NN_Topology,HWType\nMLP,NCS\n", "missing"),
    (PUBLISHED_HEADER + ",extra\n", "unexpected 'extra'"),
    (PUBLISHED_HEADER + "\n" + FIRST_ROW.replace("3.16", "fast") + "\n", "line 2: column 'lat-sys'"),
    (PUBLISHED_HEADER + "\n" + FIRST_ROW.replace(",1,3.16", ",1.5,3.16") + "\n", "whole number"),
    (PUBLISHED_HEADER + "\nMLP,NCS2\n", "2 cells under 26 columns"),
    ("", "is empty"),
])
def test_a_file_that_is_not_qutibench_is_refused_with_the_fix(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match="fix:") as err:
        read_csv(path)
    assert message in str(err.value)


# -- our export ------------------------------------------------------------------------------------------
HOST = {"hostname": "box", "cpu_model": "Cortex-A53", "logical_cpus": 4}


def stored(run: str, scenario: str, *, model, platform: str = "cortex-a53x4", status: str = "ok",
           power: PowerFigures | None = None, lat_mean: float = 0.8, mode: str | None = None) -> PointResult:
    point = RunPoint(model=str(model), model_name="mlp-w1024-fp32", dataset="mnist", backend="onnxruntime",
                     scenario=scenario, batch=8, threads=2, platform=platform, operating_mode=mode)
    batch = point.batch
    return PointResult(
        point_key=f"key-{run}", run_id=run, status=status, error="cannot run this" if status != "ok" else None,
        point=point, variant=Variant(family="mlp", precision="fp32", pruning=0.5, model_sha256="abc"),
        system=SystemFigures(valid=True, throughput=1000.0, lat_mean_ms=lat_mean),
        compute=ComputeFigures(batch=batch, throughput=1200.0 + batch, lat_mean_ms=6.5),
        accuracy=AccuracyFigures(value=0.9795, line="accuracy=97.950%, good=9795, total=10000"),
        runtime=RuntimeInfo(name="onnxruntime", version="1.0", compute_dtype="fp32", precision="fp32"),
        power=power, host=HOST, versions={"mlcommons-loadgen": "6.0.17"})


@pytest.fixture()
def dense(tmp_path):
    path = tmp_path / "dense.onnx"
    onnx.save(dense_model(), str(path))  # Gemm 784 -> 10: 2 x 7840 = 15680 ops per sample, all MACs
    return path


@pytest.fixture()
def results(dense):
    rapl = PowerFigures(meter="rapl", note="not MLPerf-Power-compliant (meter rapl)", idle_w=3.5, avg_w=9.25)
    return [stored("off", "Offline", model=dense, power=rapl, lat_mean=1500.0),
            stored("ss", "SingleStream", model=dense),
            stored("host", "Offline", model=dense, platform="host", mode="maxn"),
            stored("refused", "Offline", model=dense, status="refused")]


def test_export_maps_each_field_as_documented(results):
    catalog = load_catalog()
    a53 = catalog.get("cortex-a53x4").point(None)
    export = records_from_results(results, catalog)
    off, ss, host = export.records
    gops = 15680 / 1e9
    assert (off.nn_topology, off.hw_type, off.datatype) == ("mlp", "cortex-a53x4-onnxruntime", "FP32")
    assert off.op_mode is None
    assert off.batch == 8 and ss.batch == 1  # SingleStream's batch is 1 (RunPoint makes it so)
    assert off.lat_sys_ms is None and ss.lat_sys_ms == 0.8  # Offline has no per-query latency
    assert off.lat_comp_ms == 6.5 and off.fps_system == 1000.0 and off.fps_comp == 1208.0
    assert off.nn_gops == pytest.approx(gops) and off.gops_per_query == pytest.approx(8 * gops)
    assert off.tp_comp_gops == pytest.approx(1208.0 * gops) and off.tp_system_gops == pytest.approx(1000.0 * gops)
    assert off.top1_pct == pytest.approx(97.95) and off.top5_pct is None and off.pruning_pct == 50.0
    assert (off.base_pwr_w, off.idle_pwr_w, off.full_pwr_w) == (None, 3.5, 9.25)
    assert ss.idle_pwr_w is None and ss.full_pwr_w is None  # no meter: no power, never 0
    assert off.level == "l3" and off.hw_peak_tops == a53.peak_tops["fp32"] and off.hw_bandwidth_gbs == 4.26
    assert host.hw_type == "host-onnxruntime-maxn" and host.op_mode == "maxn" and host.hw_peak_tops is None
    assert off.tag == "cortex-a53x4-onnxruntime_FP32_mlp_50.0"
    assert off.hw_datatype_prun_net == "cortex-a53x4-onnxruntime_FP32_50%_mlp"
    assert off.datatype_model == "FP32_cortex-a53x4-onnxruntime"
    assert [r.norm_lat_comp for r in export.records] == [1.0, 1.0, 1.0]  # the same lat-comp in every row
    assert [s["run_id"] for s in export.skipped] == ["refused"] and "cannot run this" in export.skipped[0]["reason"]
    assert [r["scenario"] for r in export.rows] == ["Offline", "SingleStream", "Offline"]
    only_ss = records_from_results(results, catalog, scenarios=("SingleStream",))
    assert [r["run_id"] for r in only_ss.rows] == ["ss"] and only_ss.skipped == []


def test_simulated_rows_are_left_out_of_the_export_unless_asked_for(results):
    sim = stored("sim", "Offline", model=Path(results[0].point.model))
    sim.runtime.simulated = True
    export = records_from_results([*results, sim], load_catalog())
    assert len(export.records) == 3 and {"run_id": "sim", "status": "ok",
                                         "reason": "simulated timing (--include-simulated places it)"} in export.skipped
    placed = records_from_results([*results, sim], load_catalog(), include_simulated=True)
    assert placed.records[-1].hw_type.endswith("(simulated)") and placed.rows[-1]["simulated"] is True


def test_export_round_trips_through_csv_and_json(results, tmp_path):
    export = records_from_results(results, load_catalog())
    out = tmp_path / "ours.csv"
    meta_path = write_export(export, out, {"scenarios": "all"})
    assert meta_path == sidecar_path(out) == tmp_path / "ours.json"
    assert out.read_text().splitlines()[0] == PUBLISHED_HEADER
    table = read_csv(out)
    assert table.dialect == "cleaned" and table.records == export.records
    assert all(isinstance(r, QutibenchRecord) for r in table.records)
    assert [r.origin["run_id"] for r in table.records] == ["off", "ss", "host"]
    meta = table.sidecar
    assert list(meta["schema"]["columns"]) == list(HEADER) and "RCL-lab/QutibenchWeb" in meta["schema"]["source"]
    assert meta["columns"]["Full_Pwr_W"] == {"unit": "W", "meaning": "hardware full power consumption",
                                             "from": MAPPING["Full_Pwr_W"]}
    assert meta["hosts"] == {"host1": HOST} and {r["host_id"] for r in meta["rows"]} == {"host1"}
    assert meta["rows"][0]["versions"] == {"mlcommons-loadgen": "6.0.17"} and meta["rows"][0]["threads"] == 2
    assert meta["settings"] == {"scenarios": "all"} and "python" in meta["exporter"]["host"]
    assert "cortex-a53x4" in meta["platforms"] and meta["skipped"][0]["run_id"] == "refused"
    # our rows next to published ones: the same records, the task from the sidecar
    assert {task_of(r) for r in table.records} == {"mnist"}


def test_a_stale_sidecar_is_refused(results, tmp_path):
    out = tmp_path / "ours.csv"
    write_export(records_from_results(results, load_catalog()), out)
    meta = json.loads(sidecar_path(out).read_text())
    meta["rows"] = meta["rows"][:1]
    sidecar_path(out).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="describes 1 rows but ours.csv has 3"):
        read_csv(out)


# -- the commands ------------------------------------------------------------------------------------
def test_qutibench_commands(tmp_path, monkeypatch, capsys, results, published):
    work = tmp_path / "work"
    store = ResultsStore(work / "results.sqlite")
    for r in results:
        store.append(r)
    out = tmp_path / "ours.csv"
    assert run_cli(monkeypatch, ["qutibench", "export", str(out), "--workdir", str(work)]) == 0
    captured = capsys.readouterr()
    assert "wrote 3 rows" in captured.out and "left out 1 rows" in captured.err
    assert read_csv(out).records == records_from_results(store.results(), load_catalog(workdir=work)).records

    assert run_cli(monkeypatch, ["qutibench", "import", str(out), "--workdir", str(work)]) == 0
    assert "imported 3 rows (cleaned header)" in capsys.readouterr().out
    assert (work / "qutibench" / "ours.csv").is_file() and (work / "qutibench" / "ours.json").is_file()
    assert run_cli(monkeypatch, ["qutibench", "import", str(published), "--workdir", str(work), "--wide"]) == 0
    text = capsys.readouterr().out
    assert "accuracy vs compute throughput · EdgeTPU-fast · ImageNet" in text and "left out: 1 no accuracy" in text

    assert run_cli(monkeypatch, ["qutibench", "show", "--workdir", str(work), "--rows", "--wide"]) == 0
    text = capsys.readouterr().out
    assert "ours.csv: 3 QuTiBench rows, cleaned header (an mlperf-ext export)" in text
    assert "experimental_data.csv: 6 QuTiBench rows" in text and "681.1" in text  # --rows: GoogLeNet lat-comp
    assert "cortex-a53x4-onnxruntime · mnist" in text and "GoogLeNetv1" in text

    other = tmp_path / "other" / "ours.csv"
    other.parent.mkdir()
    other.write_text(PUBLISHED_HEADER + "\n" + PUBLISHED_ROWS)
    assert run_cli(monkeypatch, ["qutibench", "import", str(other), "--workdir", str(work)]) == 2
    assert "--force" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["qutibench", "import", str(other), "--workdir", str(work), "--force"]) == 0
    assert not (work / "qutibench" / "ours.json").exists()  # the old sidecar does not describe the new file
    capsys.readouterr()
    assert run_cli(monkeypatch, ["qutibench", "export", "--workdir", str(work)]) == 2
    assert "fix:" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["qutibench", "show", "--workdir", str(tmp_path / "empty")]) == 2
    assert "nothing imported" in capsys.readouterr().err
