"""Pareto frontiers (tiers/pareto.py) on hand-made rows, the level-0 overlay on a small real ONNX model,
the CSV writer and the `pareto` command."""

from __future__ import annotations

import csv

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext import cli
from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError
from mlperf_ext.power.metrics import PowerFigures, no_power
from mlperf_ext.result import (
    AccuracyFigures,
    ComputeFigures,
    PointResult,
    RuntimeInfo,
    SystemFigures,
    Variant,
)
from mlperf_ext.store import ResultsStore
from tiers.level0.platforms import load_catalog
from tiers.pareto import (
    CSV_FIELDS,
    DOMINATED,
    EXCLUDED,
    FRONTIER,
    LEVEL0,
    MEASURED,
    NO_ACCURACY,
    NO_POWER,
    dominators,
    pareto_of_results,
    pareto_tables,
    write_pareto_csv,
)


def row(run: str, acc: float | None = 0.9, thr: float | None = None, *, scenario: str = "Offline",
        platform: str = "host", backend: str = "onnxruntime", dataset: str = "mnist", model: str = "m.onnx",
        p90: float | None = None, p99: float | None = None, power: PowerFigures | None = None, status: str = "ok",
        precision: str = "fp32", executed: str | None = None, batch: int = 1, sha: str | None = None,
        mode: str = "performance", comp: float | None = None, simulated: bool = False) -> PointResult:
    """A stored result as the runner would write it, with only the figures a test needs."""
    point = RunPoint(model=str(model), model_name=f"m-{run}", dataset=dataset, backend=backend, scenario=scenario,
                     batch=batch, platform=platform, mode=mode)
    return PointResult(
        point=point, point_key=f"key-{run}", run_id=run, status=status,
        variant=Variant(family="mlp", precision=precision, pruning=1.0, model_sha256=sha or f"sha-{run}"),
        system=SystemFigures(valid=status == "ok", throughput=thr, lat_p90_ms=p90, lat_p99_ms=p99),
        compute=ComputeFigures(batch=batch, throughput=comp),
        accuracy=AccuracyFigures(value=acc) if acc is not None else None,
        runtime=RuntimeInfo(name=backend, compute_dtype=executed, simulated=simulated), power=power)


def frontier_of(report, objective="throughput", kind=MEASURED, scenario="Offline", platform="host",
                dataset="mnist", backend=""):
    (f,) = [f for f in report.frontiers if (f.kind, f.objective.name, f.scenario, f.platform, f.dataset, f.backend)
            == (kind, objective, scenario, platform, dataset, backend)]
    return f


def on(f) -> set[str]:
    return {p.run_id for p in f.frontier}


# -- the non-dominated set ---------------------------------------------------------------------------
def test_dominators_by_hand():
    # (accuracy, value), both maximised. c loses to b on both; d ties b exactly; e has b's accuracy and
    # less value; f has more value than all at the lowest accuracy; g equals a on accuracy, more value.
    pts = [(0.98, 100.0), (0.97, 300.0), (0.96, 200.0), (0.97, 300.0), (0.97, 250.0), (0.90, 900.0), (0.98, 150.0)]
    doms = dominators(pts)
    assert [i for i, d in enumerate(doms) if d is None] == [1, 3, 5, 6]
    assert doms[0] == 6  # same accuracy, less value
    assert doms[2] in (1, 3) and doms[4] in (1, 3)
    for i, d in enumerate(doms):  # whatever is named as the dominator really dominates
        if d is not None:
            (a, b), (qa, qb) = pts[i], pts[d]
            assert qa >= a and qb >= b and (qa > a or qb > b)
    assert dominators([]) == [] and dominators([(0.5, 1.0)]) == [None]


def test_frontier_on_hand_made_rows_with_a_tie():
    rows = [row("a", 0.98, 100.0), row("b", 0.97, 300.0), row("c", 0.96, 200.0), row("tie", 0.97, 300.0),
            row("d", 0.95, 500.0)]
    f = frontier_of(pareto_of_results(rows, ["throughput"]))
    assert on(f) == {"a", "b", "tie", "d"}  # equal points both stay: neither dominates the other
    (c,) = [p for p in f.points if p.run_id == "c"]
    assert not c.on_frontier and c.dominated_by in ("b", "tie")
    # listed from the most accurate down, the frontier's throughput rising
    assert [p.run_id for p in f.frontier][0] == "a" and [p.run_id for p in f.frontier][-1] == "d"
    assert [p.value for p in f.frontier] == sorted(p.value for p in f.frontier)


def test_a_row_without_accuracy_is_left_out_never_read_as_zero():
    """At accuracy 0 the fastest row would be on the frontier (nothing beats its throughput); it must be
    left out and counted instead."""
    rows = [row("a", 0.98, 100.0), row("b", 0.95, 300.0), row("fast", None, 10_000.0)]
    f = frontier_of(pareto_of_results(rows, ["throughput"]))
    assert on(f) == {"a", "b"} and "fast" not in {p.run_id for p in f.points}
    assert f.excluded == {NO_ACCURACY: 1} and f.excluded_runs == [("fast", NO_ACCURACY)]


def test_a_row_without_latency_is_left_out_of_that_frontier_only():
    """Lower latency is better, so a missing p99 read as 0 would dominate every row."""
    rows = [row("a", 0.98, 100.0, p90=5.0, p99=9.0), row("b", 0.95, 300.0, p90=2.0, p99=3.0),
            row("c", 0.97, 200.0, p90=6.0, p99=10.0), row("nop99", 0.99, 400.0, p90=1.0)]
    report = pareto_of_results(rows, ["throughput", "p90", "p99"])
    p99 = frontier_of(report, "p99")
    assert on(p99) == {"a", "b"} and p99.excluded == {"no p99 latency": 1}
    assert [p.run_id for p in p99.points if p.run_id == "c"] and not any(p.run_id == "c" for p in p99.frontier)
    # the same row is placed where it has the figure: it dominates everything on p90 and throughput
    assert on(frontier_of(report, "p90")) == {"nop99"} and on(frontier_of(report, "throughput")) == {"nop99"}


def test_nan_and_infinite_figures_count_as_missing():
    rows = [row("a", 0.98, 100.0), row("nan", 0.99, float("nan")), row("inf", 0.99, float("inf"))]
    f = frontier_of(pareto_of_results(rows, ["throughput"]))
    assert on(f) == {"a"} and f.excluded == {"no system throughput": 2}


def test_frontiers_are_per_scenario_platform_and_dataset():
    """A SingleStream row (1/latency) never competes with Offline rows, nor a row of another platform or
    dataset."""
    rows = [row("off-a", 0.98, 100.0), row("off-b", 0.95, 300.0),
            row("ss", 0.99, 5000.0, scenario="SingleStream"),
            row("tx2", 0.99, 9000.0, platform="jetson-tx2"),
            row("cifar", 0.99, 9000.0, dataset="cifar10")]
    report = pareto_of_results(rows, ["throughput"])
    assert on(frontier_of(report)) == {"off-a", "off-b"}
    assert on(frontier_of(report, scenario="SingleStream")) == {"ss"}
    assert on(frontier_of(report, platform="jetson-tx2")) == {"tx2"}
    assert on(frontier_of(report, dataset="cifar10")) == {"cifar"}
    # groups are ordered as LoadGen orders its scenarios
    assert [f.scenario for f in report.frontiers].index("SingleStream") < [f.scenario for f in report.frontiers].index(
        "Offline")


def test_backends_share_a_frontier_unless_split():
    rows = [row("ort", 0.98, 100.0), row("ov", 0.98, 200.0, backend="openvino")]
    assert on(frontier_of(pareto_of_results(rows, ["throughput"]))) == {"ov"}
    split = pareto_of_results(rows, ["throughput"], by_backend=True)
    assert on(frontier_of(split, backend="onnxruntime")) == {"ort"}
    assert on(frontier_of(split, backend="openvino")) == {"ov"}


def test_simulated_rows_are_left_out_unless_asked_for_and_then_marked():
    rows = [row("real", 0.9, 100.0), row("sim", 0.95, 1000.0, backend="pynq", simulated=True)]
    report = pareto_of_results(rows, ("throughput",))
    assert on(frontier_of(report)) == {"real"}
    assert report.skipped["simulated timing (--include-simulated places it)"] == 1
    placed = pareto_of_results(rows, ("throughput",), include_simulated=True)
    (sim,) = [p for p in frontier_of(placed).points if p.run_id == "sim"]
    assert sim.deployment.endswith("[simulated]") and on(frontier_of(placed)) == {"sim"}


def test_rows_that_are_not_ok_are_counted_not_placed():
    rows = [row("a", 0.98, 100.0), row("bad", 0.99, 900.0, status="invalid"),
            row("no", None, None, status="refused")]
    report = pareto_of_results(rows, ["throughput"])
    assert on(frontier_of(report)) == {"a"} and report.skipped == {"status invalid": 1, "status refused": 1}


# -- power and energy ----------------------------------------------------------------------------------
def power(avg_w: float | None, samples_per_j: float | None, meter: str = "rapl") -> PowerFigures:
    return PowerFigures(meter=meter, note=f"not MLPerf-Power-compliant (meter {meter})", avg_w=avg_w,
                        samples_per_j=samples_per_j)


def test_power_and_energy_frontiers_read_the_power_section():
    rows = [row("a", 0.98, 100.0, power=power(20.0, 5.0)), row("b", 0.95, 300.0, power=power(10.0, 30.0)),
            row("c", 0.96, 200.0, power=power(25.0, 4.0)),
            row("nometer", 0.99, 50.0, power=no_power()), row("old", 0.99, 50.0),
            row("broken", 0.99, 50.0, power=power(None, None))]
    report = pareto_of_results(rows, ["power", "energy"])
    watts = frontier_of(report, "power")
    assert on(watts) == {"a", "b"}  # c: less accurate than a and more W
    assert watts.excluded[NO_POWER] == 2  # a row with meter none, and one stored before the section existed
    (broken,) = [reason for run, reason in watts.excluded_runs if run == "broken"]
    assert broken.startswith("no power figure (meter rapl")
    energy = frontier_of(report, "energy")
    values = {p.run_id: p.value for p in energy.points}
    assert values == pytest.approx({"a": 1000 / 5.0, "b": 1000 / 30.0, "c": 1000 / 4.0})  # mJ per sample
    assert on(energy) == {"a", "b"}


def test_no_power_is_said_when_no_row_has_a_meter():
    report = pareto_of_results([row("a", 0.98, 100.0), row("b", 0.9, 200.0)], ["throughput", "power"])
    lines = [t for t in pareto_tables(report) if isinstance(t, str)]
    assert lines == ["accuracy vs average power · Offline · host · mnist: no point (2 no power)"]


def test_accuracy_is_borrowed_only_when_asked_and_agreed():
    acc_run = row("acc", 0.97, 100.0, sha="S", mode="submission")
    ss = row("ss", None, 5000.0, scenario="SingleStream", sha="S", p90=0.2)
    other = row("other", None, 6000.0, scenario="SingleStream", sha="T", p90=0.1)  # no scored run of its variant
    assert on(frontier_of(pareto_of_results([acc_run, ss], ["p90"]), "p90", scenario="SingleStream")) == set()
    report = pareto_of_results([acc_run, ss, other], ["p90"], borrow_accuracy=True, scenarios=["SingleStream"])
    f = frontier_of(report, "p90", scenario="SingleStream")
    (p,) = f.points
    assert p.run_id == "ss" and p.accuracy == 0.97 and "acc" in p.accuracy_source
    assert f.excluded == {NO_ACCURACY: 1} and not any(fr.scenario == "Offline" for fr in report.frontiers)
    # two scored runs of one variant that disagree: nothing is borrowed
    disagree = [acc_run, row("acc2", 0.90, 100.0, sha="S"), ss]
    f = frontier_of(pareto_of_results(disagree, ["p90"], borrow_accuracy=True), "p90", scenario="SingleStream")
    assert f.points == [] and f.excluded == {NO_ACCURACY: 1}


def test_unknown_objective_is_a_user_error():
    with pytest.raises(ConfigError, match="fix:"):
        pareto_of_results([row("a", 0.9, 1.0)], ["speed"])


# -- level 0 overlay ------------------------------------------------------------------------------------
def dense_model(int8: bool = False, k: int = 784, n: int = 10) -> onnx.ModelProto:
    """y = x W + b, 2·k·n ops per input. fp32: k·n + n fp32 weights. int8: the activation through Q/DQ, W
    stored int8 with one scale and zero point (QDQ, as ORT's quantizer writes it), no bias."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])
    if int8:
        inits = [numpy_helper.from_array(rng.integers(-127, 127, (k, n)).astype(np.int8), "Wq"),
                 numpy_helper.from_array(np.array(0.02, np.float32), "sw"),
                 numpy_helper.from_array(np.array(0, np.int8), "zw"),
                 numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
                 numpy_helper.from_array(np.array(0, np.int8), "zx")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["Wq", "sw", "zw"], ["W"]),
                 helper.make_node("MatMul", ["xd", "W"], ["y"])]
    else:
        inits = [numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "W"),
                 numpy_helper.from_array(np.zeros(n, np.float32), "b")]
        nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"])]
    graph = helper.make_graph(nodes, "dense", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture()
def models(tmp_path):
    """The Gemm 784->10 in fp32 and in QDQ int8, as files."""
    fp32, int8 = tmp_path / "dense-fp32.onnx", tmp_path / "dense-int8.onnx"
    onnx.save(dense_model(), str(fp32))
    onnx.save(dense_model(int8=True), str(int8))
    return fp32, int8


def test_level0_overlay_predicts_each_measured_variant_on_its_platform(models):
    """cortex-a53x4 from the catalog, both rows memory-bound at batch 1: predicted = bandwidth / weight bytes.
    Weight bytes by hand: fp32 784x10 weights + 10 biases = 7850 x 4 B = 31400 B; int8 7840 B of weights
    + 2 fp32 scales + 2 int8 zero points = 7850 B. The int8 row is slower than fp32 when measured but
    four times faster in theory, so it is dominated on one frontier and on the other."""
    fp32, int8 = models
    catalog = load_catalog()
    a53 = catalog.get("cortex-a53x4").point(None)
    rows = [row("fp32", 0.98, 100_000.0, model=fp32, platform="cortex-a53x4", executed="fp32"),
            row("int8", 0.97, 90_000.0, model=int8, platform="cortex-a53x4", precision="int8", executed="int8")]
    report = pareto_of_results(rows, ["throughput"], catalog=catalog)
    measured = frontier_of(report, platform="cortex-a53x4")
    theory = frontier_of(report, kind=LEVEL0, platform="cortex-a53x4")
    predicted = {p.run_id: p.value for p in theory.points}
    bw = a53.memory_bandwidth_gbs * 1e9
    assert predicted == pytest.approx({"fp32": bw / 31400, "int8": bw / 7850})
    assert min(a53.peak_tops["fp32"], a53.peak_tops["int8"]) * 1e12 / 15680 > max(predicted.values())  # memory-bound
    assert on(measured) == {"fp32"} and on(theory) == {"fp32", "int8"}
    assert [p.accuracy for p in theory.points if p.run_id == "int8"] == [0.97]  # the measured accuracy


def test_level0_uses_the_datatype_that_executed_then_the_label(models):
    """zcu104-finn has only int2/int4 peaks: a row whose runtime executed fp32 cannot be predicted there
    (whatever its label), a row that stored no executed datatype is predicted at its label and says so."""
    fp32, _ = models
    catalog = load_catalog()
    rows = [row("ran-fp32", 0.97, 10.0, model=fp32, platform="zcu104-finn", precision="int2", executed="fp32"),
            row("label", 0.96, 10.0, model=fp32, platform="zcu104-finn", precision="int2"),
            row("gone", 0.99, 10.0, model="/nonexistent/m.onnx", platform="zcu104-finn"),
            row("host", 0.99, 10.0, model=fp32, platform="no-such-platform")]
    report = pareto_of_results(rows, ["throughput"], catalog=catalog)
    theory = frontier_of(report, kind=LEVEL0, platform="zcu104-finn")
    (label,) = theory.points
    assert label.run_id == "label" and "predicted at the label 'int2'" in label.note
    reasons = dict(theory.excluded_runs)
    assert "no peak that can run fp32" in reasons["ran-fp32"] and "not found" in reasons["gone"]
    unknown = frontier_of(report, kind=LEVEL0, platform="no-such-platform")
    assert "unknown platform 'no-such-platform'" in unknown.excluded_runs[0][1]


# -- output --------------------------------------------------------------------------------------------
def test_csv_lists_every_point_with_its_status(tmp_path):
    rows = [row("a", 0.98, 100.0), row("c", 0.96, 50.0), row("x", None, 10.0)]
    out = tmp_path / "pareto.csv"
    count = write_pareto_csv(pareto_of_results(rows, ["throughput"]), out)
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_FIELDS
        got = {r["run_id"]: r for r in reader}
    assert count == 3 and {k: v["status"] for k, v in got.items()} == {"a": FRONTIER, "c": DOMINATED, "x": EXCLUDED}
    assert got["c"]["dominated_by"] == "a" and got["x"]["note"] == NO_ACCURACY and got["a"]["unit"] == "samples/s"
    assert float(got["a"]["accuracy"]) == 0.98 and float(got["a"]["value"]) == 100.0
    assert [p.name for p in tmp_path.iterdir()] == ["pareto.csv"]  # no temp file left behind
    with pytest.raises(ConfigError, match="fix:"):
        write_pareto_csv(pareto_of_results(rows, ["throughput"]), tmp_path / "missing" / "p.csv")


def test_table_lists_the_frontier_and_says_what_was_left_out():
    from rich.console import Console

    rows = [row("a", 0.98, 100.0), row("c", 0.96, 50.0), row("x", None, 10.0)]
    console = Console(width=300, record=True)
    for item in pareto_tables(pareto_of_results(rows, ["throughput"])):
        console.print(item)
    text = console.export_text()
    assert "m-a" in text and "m-c" not in text and "left out: 1 no accuracy" in text and "1 dominated" in text
    console = Console(width=300, record=True)
    for item in pareto_tables(pareto_of_results(rows, ["throughput"]), show_all=True):
        console.print(item)
    assert "dominated by m-a onnxruntime 1/auto/1" in console.export_text()


# -- the command ---------------------------------------------------------------------------------------
def run_cli(monkeypatch, argv: list[str]) -> int:
    """`mlperf-ext ARGV` in this process (the commands come from pyproject's entry points)."""
    return cli.main(argv)


def test_pareto_command_on_a_store(tmp_path, monkeypatch, capsys, models):
    fp32, int8 = models
    store = ResultsStore(tmp_path / "results.sqlite")
    for r in (row("fp32", 0.98, 100_000.0, model=fp32, platform="cortex-a53x4", executed="fp32", p99=1.0),
              row("int8", 0.97, 90_000.0, model=int8, platform="cortex-a53x4", precision="int8", executed="int8"),
              row("refused", None, None, status="refused")):
        store.append(r)
    out = tmp_path / "p.csv"
    assert run_cli(monkeypatch, ["pareto", "--workdir", str(tmp_path), "--wide", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy vs system throughput · Offline · cortex-a53x4 · mnist" in text
    assert "m-fp32" in text and "level-0 inputs/s" in text and "135,669" in text  # 4.26e9 / 31400
    assert "accuracy vs average power · Offline · cortex-a53x4 · mnist: no point (2 no power)" in text
    assert "left out: 1 no p99 latency" in text and "1 status refused" in text
    with open(out, newline="") as fh:
        kinds = {(r["kind"], r["objective"]) for r in csv.DictReader(fh)}
    assert (LEVEL0, "throughput") in kinds and (MEASURED, "energy") in kinds

    assert run_cli(monkeypatch, ["pareto", "--workdir", str(tmp_path), "--objective", "throughput",
                                 "--no-level0", "--scenario", "Offline"]) == 0
    assert "level-0" not in capsys.readouterr().out
    assert run_cli(monkeypatch, ["pareto", "--workdir", str(tmp_path), "--scenario", "Offlin"]) == 2
    assert "fix:" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["pareto", "--workdir", str(tmp_path / "none")]) == 2
    assert "no results" in capsys.readouterr().err
