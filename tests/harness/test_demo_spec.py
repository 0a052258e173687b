"""The demo's own run spec on a reduced grid: a tiny MLP family stands in for the full-size one."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from demo.run import SPECS
from mlperf_ext.config import expand, load_spec
from mlperf_ext.tables import print_results
from mlperf_ext.zoo import registry
from mlperf_ext.zoo.mlp import MlpFamily, MlpRecipe, register
from tests.harness.conftest import SHORT
from tiers.sweep import model_resolver, run_points

TINY = MlpRecipe(widths=(64, 32), epochs=2, batch_size=64, finetune_epochs=1, qat_epochs=1)
KEEP = {  # demo model -> tiny stand-in; the rest of the demo grid is dropped
    "mlp-w2048-fp32": "mlpdemo-w64-fp32", "mlp-w2048-int8": "mlpdemo-w64-int8",
    "mlp-w2048-int2": "mlpdemo-w64-int2", "mlp-w256-fp32": "mlpdemo-w32-fp32", "mlp-w256-int2": "mlpdemo-w32-int2",
}


@pytest.fixture(scope="module")
def demo_rows(tmp_path_factory):
    register(MlpFamily(TINY, prefix="mlpdemo"))
    try:
        work = tmp_path_factory.mktemp("demo")
        grids = load_spec(SPECS / "demo.yaml")
        points = []
        for grid in grids:
            grid["models"] = [KEEP[m] for m in grid["models"] if m in KEEP]
            grid["settings"] = {**SHORT, "server_target_qps": 5000}  # the search has tests of its own
            points += expand(grid, model_resolver(work / "models"))
        yield grids, points, run_points(points, work)
    finally:
        registry.unregister_family("mlpdemo")


def test_demo_spec_covers_both_backends_and_all_scenarios(demo_rows):
    grids, points, rows = demo_rows
    assert {g["mode"] for g in grids} == {"submission", "performance"}
    assert {p.scenario for p in points} == {"SingleStream", "MultiStream", "Server", "Offline"}
    assert {p.backend for p in points} == {"onnxruntime", "openvino"}
    assert len(rows) == len(points) == 5 * 2 + 2 * 2 * 3 + 3
    swept = [p for p in points if (p.model_name, p.backend, p.scenario, p.mode) == ("mlpdemo-w32-fp32", "openvino",
                                                                                   "Offline", "performance")]
    assert sorted(p.batch for p in swept) == [1, 8, 32]  # the report's curve over batch has a deployment to draw


#: what each variant executes in on each runtime, read back from the runtime (never the variant's name)
EXECUTED = {
    ("onnxruntime", "fp32"): "fp32", ("onnxruntime", "fp16"): "fp32 (fp16 weights upcast)",
    ("onnxruntime", "int8"): "int8", ("onnxruntime", "int4"): "fp32 with int4 weights",
    ("onnxruntime", "int2"): "fp32 (int2 weights dequantized at run time)",
    ("openvino", "fp32"): "fp32", ("openvino", "int8"): "int8",
}


def test_demo_rows(demo_rows):
    _grids, points, results = demo_rows
    for point, r in zip(points, results):
        label = point.model_name.rsplit("-", 1)[1]
        assert r.variant.precision == label  # the zoo's label, kept apart from what executed
        if point.backend == "openvino" and label == "int2":
            assert r.status == "refused" and "INT2" in r.error
            continue
        assert r.status == "ok", r.error
        assert r.system.valid is True, r.system.invalid_reasons
        if (point.backend, label) in EXECUTED:
            assert r.runtime.precision == EXECUTED[(point.backend, label)], (point.backend, label)
        assert r.system.throughput > 0 and r.compute.throughput > 0
        if point.mode == "submission":
            assert r.accuracy.total == 1000 and r.accuracy.value > 0.5  # trained, far above chance


def test_demo_table_prints_every_row(demo_rows):
    rows = demo_rows[2]
    out = io.StringIO()
    print_results(rows, Console(file=out, width=400))
    text = out.getvalue()
    for header in ("accuracy", "system/s", "compute/s", "compute ms/batch", "run"):
        assert header in text
    assert text.count("mlpdemo-w") >= len(rows)
    assert "dataset mnist: MNIST 28x28" in text  # what the data is, said next to the results


def test_demo_submission_packages_one_point_with_its_compliance_runs(tmp_path):
    """The demo's last step on a tiny stand-in: accuracy + performance, TEST01/TEST04, tree, checker."""
    from audit import layout as tree_layout
    from audit.checker import check_tree_report
    from demo.run import DISCLOSED_RULES, SUBMISSION_SPEC, demo_submission
    from tiers.runner.runner import PointRunner

    register(MlpFamily(TINY, prefix="mlpdemo"))
    try:
        grids = load_spec(SUBMISSION_SPEC)
        points = []
        for grid in grids:
            grid["models"] = [KEEP[m] for m in grid["models"]]
            grid["settings"] = dict(SHORT)
            points += expand(grid, model_resolver(tmp_path / "models"))
        assert sorted(p.mode for p in points) == ["accuracy", "performance"] and all(p.loadgen_trace for p in points)
        console = Console(file=io.StringIO(), width=200)
        assert demo_submission(tmp_path, PointRunner(tmp_path, console), points, console,
                               benchmarks={"mlpdemo-w32-fp32": "resnet"})
    finally:
        registry.unregister_family("mlpdemo")
    tree = tmp_path / "submission"
    report = check_tree_report(tree)
    assert report.rows and tree_layout.default_kept_root(tree).is_dir()
    # timing comparisons of the compliance reruns depend on the machine; every other finding is disclosed
    assert {p.rule for p in report.problems} - {"compliance_performance_failed"} <= DISCLOSED_RULES
    assert "quick" in (tree / "open" / "mlperf-ext-demo" / "src" / "README.md").read_text()
