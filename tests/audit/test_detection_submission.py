"""A detector's runs packaged as the round's yolo benchmark: TEST01 scored by the detection task (mAP of the
logged samples), the tree's accuracy.txt carrying MLPerf's mAP line that the yolo pattern reads, and a run whose
task is not the benchmark's refused in one line."""

from __future__ import annotations

import pytest

from audit import layout
from audit.compliance import run_compliance
from audit.package import PackageRequest, package
from audit.rules import round_rules
from audit.selection import select_results
from mlperf_ext.config import RunPoint
from mlperf_ext.errors import ConfigError
from mlperf_ext.store import ResultsStore
from mlperf_ext.zoo.detector import build_model, list_models
from tests.audit.test_package import MEASUREMENTS, SYSTEM, TIMING, _yaml
from tests.sut.conftest import assert_user_error
from tiers.runner import layout as runs_layout
from tiers.sweep import run_points

pytest.importorskip("pycocotools")
#: what a quick-profile run of 200 scenes must disclose against yolo's rules, and nothing else
DISCLOSED = {"min_duration", "dataset_coverage", "user_conf_relaxed"}


@pytest.fixture(scope="module")
def detector_work(tmp_path_factory):
    base = tmp_path_factory.mktemp("yolo")
    model = build_model(list_models()[0], base)
    work = base / "work"
    for mode in ("accuracy", "performance"):
        [r] = run_points([RunPoint(model=str(model), dataset="shapes", backend="onnxruntime", scenario="SingleStream",
                                   mode=mode, task="detection", settings={"min_duration_ms": 1500}, timeout_s=180)],
                         work)
        assert r.status == "ok", r.error
    return base, work


def test_a_detector_packages_as_yolo_with_its_map_and_test01(detector_work):
    base, work = detector_work
    rows = ResultsStore(runs_layout.store_path(work)).results(status="ok")
    [entry] = select_results(rows, round_rules("v6.1"), {"*": "yolo-99"})
    outcome = run_compliance(work, entry, "TEST01", "v6.1")
    allowed = set(DISCLOSED)
    for v in outcome.verifications:  # the payloads of both runs agree; only the p90 may move on a busy host
        assert v.passed or (v.kind == "performance" and v.reasons == [TIMING]), (v.kind, v.reasons)
        if not v.passed:
            allowed.add("compliance_performance_failed")
    req = PackageRequest(workdir=work, out=base / "submission", division="open", submitter="MyOrg",
                         system_yaml=_yaml(base / "system.yaml", SYSTEM), benchmarks={"*": "yolo-99"},
                         measurements_yaml=_yaml(base / "measurements.yaml", MEASUREMENTS))
    report = package(req, say=lambda _line: None)
    assert {p.rule for p in report.problems} <= allowed, report.problems
    [accuracy_txt] = (base / "submission").glob(f"open/MyOrg/results/*/shapes-detector/SingleStream/accuracy/"
                                               f"{layout.ACCURACY_TXT_NAME}")
    assert accuracy_txt.read_text().splitlines()[0] == entry.accuracy.accuracy.line  # then the log's hash line
    assert entry.accuracy.accuracy.line.startswith("mAP=")
    [test01_txt] = (base / "submission").glob(f"open/MyOrg/results/*/shapes-detector/SingleStream/TEST01/accuracy/"
                                             f"{layout.ACCURACY_TXT_NAME}")
    assert test01_txt.read_text().startswith("mAP=")


def test_a_run_of_another_task_is_refused_for_a_benchmark(detector_work):
    _base, work = detector_work
    rows = ResultsStore(runs_layout.store_path(work)).results(status="ok")
    with pytest.raises(ConfigError) as exc:
        select_results(rows, round_rules("v6.1"), {"*": "resnet"})
    assert "ran task detection, but v6.1 benchmark resnet scores classification; fix: --benchmark " \
           "shapes-detector=yolo-95" in assert_user_error(exc.value)


def test_a_task_no_benchmark_of_the_round_scores_is_refused():
    """The round's rules here hold no LLM benchmark: a generation run cannot stand for one."""
    from audit.selection import official_benchmark
    from mlperf_ext.result import PointResult

    run = PointResult(point=RunPoint(model="decoder.onnx", dataset="prompts", backend="onnxruntime",
                                     scenario="Offline", task="llm"))
    with pytest.raises(ConfigError) as exc:
        official_benchmark(run, round_rules("v6.1"), {"*": "resnet"})
    assert "no v6.1 benchmark scores task llm" in assert_user_error(exc.value)
