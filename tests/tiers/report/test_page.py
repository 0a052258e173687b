"""The report's sections on stores built here from hand-made `PointResult` rows (tests/tiers/report/conftest.py):
each section's numbers against the function that owns them, escaping, empty sections, bad input, and the
atomic write. The page in a real browser: test_chromium.py."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from mlperf_ext.store import ResultsStore
from tests.tiers.report.conftest import (
    EVIL_ERROR,
    EVIL_MODEL,
    EVIL_NOTE,
    micro_rows,
    run_cli,
    stored,
    write_host_platform,
)
from tests.tiers.test_pareto import dense_model
from tiers.level0.graph import analyze
from tiers.level0.platforms import load_catalog
from tiers.level0.roofline import predict
from tiers.report.data import NO_SYSTEM_TRACE, ReportOptions, collect, latency_stats
from tiers.report.page import render
from tiers.runner import layout


def make_store(workdir: Path, rows) -> ResultsStore:
    store = ResultsStore(workdir / "results.sqlite")
    for r in rows:
        store.append(r)
    return store


def figures_of(page: str) -> list[dict]:
    """The figures the page hands to Plotly.newPlot, as plain data."""
    (blob,) = re.findall(r'<script type="application/json" id="report-figures">(.*?)</script>', page, re.S)
    assert "<" not in blob and ">" not in blob and "&" not in blob  # nothing can close the script element
    return json.loads(blob)


def strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return []


def numbers(obj) -> list[float]:
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [obj]
    if isinstance(obj, dict):
        return [n for v in obj.values() for n in numbers(v)]
    if isinstance(obj, list):
        return [n for v in obj for n in numbers(v)]
    return []


def section_html(page: str, sid: str) -> str:
    (body,) = re.findall(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    return body


@pytest.fixture()
def dense(tmp_path) -> Path:
    import onnx

    path = tmp_path / "dense-fp32.onnx"
    onnx.save(dense_model(), str(path))
    return path


@pytest.fixture()
def sweep(tmp_path, dense):
    """An Offline batch sweep (1, 8, 32) of one deployment on the hand-written host, plus rows that are not ok."""
    write_host_platform(tmp_path)
    rows = [stored(f"b{b}", model=dense, name="dense", batch=b, sys_thr=1000.0 * b ** 0.5, sys_p90=0.5 * b,
                   comp_thr=3000.0 * b ** 0.5, comp_ms=b / (3000.0 * b ** 0.5) * 1e3, acc=0.97 - b / 1000)
            for b in (1, 8, 32)]
    rows.append(stored("t2", model=dense, name="dense", batch=8, threads=2, sys_thr=9000.0, sys_p90=1.0,
                       comp_thr=20000.0, comp_ms=0.4, acc=0.95))
    rows.append(stored("run-invalid", model=dense, name="dense", batch=4, status="invalid", sys_thr=99999.0,
                       comp_thr=99999.0, acc=0.99, error="min_duration not met"))
    rows.append(stored("run-refused", model=dense, name="dense", batch=2, status="refused",
                       error="backend cannot run it"))
    make_store(tmp_path, rows)
    return tmp_path


# -- the file ----------------------------------------------------------------------------------------
def test_the_command_writes_one_self_contained_file(sweep, monkeypatch, capsys):
    out = sweep / "report.html"
    assert run_cli(monkeypatch, ["report", "--workdir", str(sweep), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    size = out.stat().st_size
    assert said.strip() == f"wrote {out} ({size / 1e6:.1f} MB, {size} bytes; 6 rows)"
    page = out.read_text(encoding="utf-8")
    assert page.count(get_plotlyjs()[:300]) == 1  # plotly's JavaScript, once
    assert "</script" not in get_plotlyjs().lower()  # so it can sit inside a <script> element
    assert not re.search(r"<script[^>]+src=|<link\b|<iframe\b|@import", page)  # nothing loaded from elsewhere
    assert [p.name for p in sweep.iterdir() if p.name.endswith(".tmp")] == []
    # the header says where, how many, which version, when, and that both figures share a deployment
    assert str(sweep.resolve()) in page and "6 (the latest row of each point): 4 ok, 1 invalid, 1 refused" in page
    assert "mlperf-ext</dt><dd>" in page and "(UTC)" in page and "Both come from the same deployment" in page
    ids = re.findall(r'<section id="([a-z0-9]+)">', page)
    assert ids == ["level0", "roofline", "curves", "latency", "pareto", "micro", "results"]
    assert all(f'href="#{i}"' in page for i in ids)  # the table of contents
    for fig in figures_of(page):  # every figure can be downloaded as PNG from its modebar
        assert fig["config"]["toImageButtonOptions"]["format"] == "png" and fig["config"]["showSendToCloud"] is False
        assert f'id="{fig["id"]}"' in page


def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, sweep):
    cases = [
        (["--workdir", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")], "no results store in"),
        (["--workdir", str(sweep), "--out", str(tmp_path / "missing" / "r.html")], "does not exist"),
        (["--workdir", str(sweep), "--out", str(tmp_path)], "is a directory"),
        (["--workdir", str(sweep / "results.sqlite"), "--out", str(tmp_path / "r.html")], "is a file"),
        (["--workdir", str(sweep), "--out", str(tmp_path / "r.html"), "--batch", "0"], "--batch must be >= 1"),
    ]
    (tmp_path / "empty").mkdir()
    for argv, message in cases:
        assert run_cli(monkeypatch, ["report", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and "; fix:" in err, err
    assert not (tmp_path / "r.html").exists()


# -- escaping -------------------------------------------------------------------------------------------
def test_every_user_supplied_name_is_escaped(tmp_path, dense):
    """A model name, a note, an error, a run id, a platform name (from a user's platform file) and a
    micro layer's parent model: none reaches the page or a figure as markup."""
    evil_platform = tmp_path / "boards.yaml"
    evil_platform.write_text("platforms:\n- name: '<i>board</i>'\n  kind: cpu\n  peak_tops: {fp32: 1.0}\n"
                             "  memory_bandwidth_gbs: 10\n  source: test fixture\n")
    write_host_platform(tmp_path)
    rows = [stored("<b>run</b>", model=dense, name=EVIL_MODEL, notes=[EVIL_NOTE], sys_thr=100.0, sys_p90=1.0,
                   comp_thr=300.0, comp_ms=3.3, acc=0.9),
            stored("b8", model=dense, name=EVIL_MODEL, batch=8, sys_thr=500.0, sys_p90=2.0, comp_thr=900.0,
                   comp_ms=8.8, acc=0.89),
            stored("x", model=dense, name="other", platform="<svg onload=alert(3)>", comp_thr=10.0, acc=0.8),
            stored("refused", model=dense, status="refused", error=EVIL_ERROR)]
    make_store(tmp_path, rows + micro_rows(dense, tmp_path / "micro", parent=EVIL_MODEL))
    run = layout.run_dir_of(tmp_path, "<b>run</b>")
    run.mkdir(parents=True)
    np.save(run / layout.COMPUTE_FILE, np.full(10, 3.3e-3))
    page = render(collect(tmp_path, ReportOptions(platforms_files=(evil_platform,))))
    for raw in (EVIL_MODEL, EVIL_NOTE, "<b>no</b>", "<svg onload", "<b>run</b>", "<i>board</i>"):
        assert raw not in page, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "backend said &lt;b&gt;no&lt;/b&gt; &amp; &quot;stopped&quot;" in page
    texts = strings(figures_of(page))
    assert not [t for t in texts if re.search(r"<(script|img|svg|b>|i>)", t)]
    joined = "\n".join(texts)
    for escaped in ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;b&gt;run&lt;/b&gt;", "&lt;i&gt;board&lt;/i&gt;"):
        assert escaped in joined, escaped  # drawn literally by plotly, which decodes the entities


# -- sections without data ----------------------------------------------------------------------------
def test_sections_without_data_say_so_in_one_line_and_draw_nothing(tmp_path):
    make_store(tmp_path, [stored("gone", model=tmp_path / "none.onnx", status="refused", error="no runtime")])
    page = render(collect(tmp_path))
    assert figures_of(page) == [] and 'class="plot"' not in page
    expected = {
        "level0": "no model file of the stored rows is readable for level 0",
        "roofline": "no ok row could be placed on a roofline",
        "curves": "no deployment was measured at two batches or more",
        "latency": "no ok rows",
        "pareto": "no ok row to place on a frontier (rows left out: 1 status refused)",
        "micro": "no micro rows: run &#x27;mlperf-ext micro --model MODEL&#x27;",
    }
    for sid, text in expected.items():
        body = section_html(page, sid)
        assert text in body, (sid, body)
        assert len(re.findall(r'<p class="note">', body)) == 1, (sid, body)
    assert "no runtime" in section_html(page, "results")  # the refused row is listed with its reason


# -- what each section shows --------------------------------------------------------------------------
def test_only_ok_rows_are_plotted_and_the_others_are_listed_with_their_reason(sweep):
    page = render(collect(sweep))
    figs = figures_of(page)
    texts = "\n".join(strings(figs))
    assert "b8" in texts and "run-invalid" not in texts and "run-refused" not in texts
    assert 99999.0 not in numbers([f["figure"]["data"] for f in figs])
    table = section_html(page, "results")
    assert table.count("<tr data-status=") == 6
    assert 'data-status="invalid"' in table and "invalid: min_duration not met" in table
    assert 'data-status="refused"' in table and "refused: backend cannot run it" in table
    assert 'id="results-filter"' in table


def test_heatmaps_are_level0_predictions(sweep, dense):
    """The cells are `predict` at the model's stored precision on every catalog point, at --batch."""
    data = collect(sweep, ReportOptions(heatmap_batch=4))
    cost = analyze(dense)
    catalog = load_catalog(workdir=sweep)
    points = {pt.label: pt for p in catalog for pt in p.points()}
    assert sum(len(h.columns) for h in data.level0.heatmaps) == len(points)
    checked = 0
    for h in data.level0.heatmaps:
        assert h.rows == [("dense", cost.stored_precision)]  # one model file, named by its rows
        for column, cell in zip(h.columns, h.cells[0]):
            pr = predict(cost, points[column], cost.stored_precision, 4, "roofline")
            assert (cell.inputs_per_s, cell.bound) == ((None, "") if pr is None else (pr.inputs_per_s, pr.bound))
            checked += pr is not None
    assert checked >= 5 and data.level0.batch == 4
    page = render(data)
    heat = [f for f in figures_of(page) if f["id"].startswith("fig-level0")]
    drawn = [h for h in data.level0.heatmaps if any(c.inputs_per_s for c in h.cells[0])]
    assert len(heat) == len(drawn)
    for h in data.level0.heatmaps:
        if h not in drawn:  # e.g. FPGA boards without an fp32 peak: one line, not an empty plot
            assert f"{h.kind} platforms (" in page and "no peak that can run fp32, so no prediction" in page


def test_roofline_points_are_the_efficiency_rows(sweep, dense):
    from tiers.level0.efficiency import row_efficiencies

    data = collect(sweep)
    store = ResultsStore(sweep / "results.sqlite")
    ok = [r for r in store.results() if r.status == "ok"]
    effs, skipped = row_efficiencies([r.to_row() for r in ok], load_catalog(workdir=sweep))
    assert not skipped and len(data.roofline.marks) == len(effs) == 4
    ops = analyze(dense).ops
    for mark, e in zip(data.roofline.marks, effs):
        assert mark.measured_tops == pytest.approx(e.measured_fps * ops / 1e12)
        assert mark.attainable_tops == pytest.approx(e.predicted_fps * ops / 1e12)
        assert mark.efficiency == pytest.approx(e.efficiency) and mark.platform == "host"
        # on the ceiling the figure draws: min(peak, bandwidth x OI)
        assert mark.attainable_tops == pytest.approx(min(mark.peak_tops, mark.bandwidth_gbs
                                                         * mark.operational_intensity / 1e3))
    assert {m.batch for m in data.roofline.marks} == {1, 8, 32}


def test_a_row_the_roofline_cannot_place_says_why(tmp_path, dense):
    make_store(tmp_path, [stored("a", model=dense, platform="no-such-board", comp_thr=10.0)])
    data = collect(tmp_path)
    assert data.roofline.marks == [] and "unknown platform 'no-such-board'" in data.roofline.skipped[0][2]


def test_curves_keep_system_and_compute_apart(sweep):
    data = collect(sweep)
    (curve,) = data.curves.curves  # threads=2 is another deployment, measured at one batch
    assert data.curves.single_batch == 1 and [p.batch for p in curve.points] == [1, 8, 32]
    assert "threads auto" in curve.label
    fig = next(f for f in figures_of(render(data)) if f["id"].startswith("fig-curves"))
    system, compute = fig["figure"]["data"]
    assert system["name"].endswith("· system") and compute["name"].endswith("· compute")
    assert (system["xaxis"], compute["xaxis"]) == ("x", "x2")  # separate axes, never one mixed trace
    assert system["x"] == [1000.0 * b ** 0.5 for b in (1, 8, 32)] and system["y"] == [0.5, 4.0, 16.0]
    assert compute["x"] == [3000.0 * b ** 0.5 for b in (1, 8, 32)]
    layout_ = fig["figure"]["layout"]
    assert "samples/s" in layout_["xaxis"]["title"]["text"] and "ms" in layout_["yaxis2"]["title"]["text"]
    assert "system" in layout_["xaxis"]["title"]["text"] and "compute" in layout_["xaxis2"]["title"]["text"]


def test_latency_boxes_come_from_the_run_files_only(sweep):
    rng = np.random.default_rng(0)
    traced = rng.gamma(2.0, 1e-3, 2000)
    compute = rng.gamma(2.0, 1e-4, 500)
    run = layout.run_dir_of(sweep, "b8")
    run.mkdir(parents=True)
    np.save(run / layout.SYSTEM_LATENCY_FILE, traced)
    np.save(run / layout.COMPUTE_FILE, compute)
    other = layout.run_dir_of(sweep, "b1")
    other.mkdir(parents=True)
    np.save(other / layout.COMPUTE_FILE, compute[:100])
    data = collect(sweep)
    boxes = {b.run_id: b for b in data.latency.boxes}
    ms = traced * 1e3
    assert boxes["b8"].system.n == 2000 and boxes["b8"].system.median_ms == pytest.approx(np.median(ms))
    assert boxes["b8"].system.q3_ms == pytest.approx(np.percentile(ms, 75))
    assert boxes["b8"].system.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert boxes["b8"].compute.mean_ms == pytest.approx(compute.mean() * 1e3)
    # a run without --loadgen-trace has a compute box and says why it has no system box; nothing substitutes
    assert boxes["b1"].system is None and boxes["b1"].system_note == NO_SYSTEM_TRACE
    assert boxes["b1"].compute.n == 100
    assert boxes["b32"].system is None and boxes["b32"].compute is None
    page = render(data)
    body = section_html(page, "latency")
    listed = body[body.index("<details"):]  # each run without a distribution, in a list the reader opens
    assert listed.count("run with --loadgen-trace") == 3  # b1, b32, t2
    assert "3 of 4 runs lack a distribution: 3 × no per-sample system latencies: run with --loadgen-trace" in body
    fig = next(f for f in figures_of(page) if f["id"].startswith("fig-latency"))
    system, comp = fig["figure"]["data"]
    assert len(system["y"]) == 1 and system["q1"] == [pytest.approx(np.percentile(ms, 25))]
    assert len(comp["y"]) == 2 and system["orientation"] == "h"  # one row per run: labels never collide


def test_latency_stats_fences_are_tukeys():
    s = latency_stats(np.array([1, 2, 3, 4, 100], dtype=float) / 1e3)
    assert (s.q1_ms, s.median_ms, s.q3_ms) == (2.0, 3.0, 4.0)
    assert (s.lower_fence_ms, s.upper_fence_ms, s.max_ms) == (1.0, 4.0, 100.0)  # 100 lies beyond q3 + 1.5 IQR


def test_a_damaged_latency_file_is_named_not_plotted(sweep):
    run = layout.run_dir_of(sweep, "b8")
    run.mkdir(parents=True)
    (run / layout.SYSTEM_LATENCY_FILE).write_bytes(b"not numpy")
    np.save(run / layout.COMPUTE_FILE, np.array([np.nan, 1.0]))
    box = next(b for b in collect(sweep).latency.boxes if b.run_id == "b8")
    assert box.system is None and "system_latency_s.npy is not readable" in box.system_note
    assert box.compute is None and "holds no finite latencies" in box.compute_note


def test_pareto_frontiers_are_the_pareto_commands(sweep):
    from tiers.pareto import DEFAULT_OBJECTIVES, MEASURED, pareto_of_results

    data = collect(sweep)
    results = ResultsStore(sweep / "results.sqlite").results()
    expected = pareto_of_results(results, (*DEFAULT_OBJECTIVES, "compute_throughput"),
                                 catalog=load_catalog(workdir=sweep))
    got = {(f.kind, f.objective.name): {p.run_id for p in f.frontier} for f in data.pareto.report.frontiers}
    assert got == {(f.kind, f.objective.name): {p.run_id for p in f.frontier} for f in expected.frontiers}
    # accuracy / samples/s: b1 0.969 / 1000, b8 0.962 / 2828, t2 0.95 / 9000, b32 0.938 / 5657 (beaten by t2)
    assert got[(MEASURED, "throughput")] == {"b1", "b8", "t2"}
    page = render(data)
    body = section_html(page, "pareto")
    assert "accuracy vs average power · Offline · host · mnist: no point (4 no power)" in body
    titles = [f["figure"]["layout"]["title"]["text"] for f in figures_of(page) if f["id"].startswith("fig-pareto")]
    assert titles == ["accuracy vs system throughput · Offline · host · mnist",
                      "accuracy vs p90 system latency · Offline · host · mnist",
                      "accuracy vs compute throughput · Offline · host · mnist"]


def test_an_imported_qutibench_file_is_drawn_next_to_our_rows(sweep, tmp_path_factory):
    from tests.tiers.test_qutibench import PUBLISHED_HEADER, PUBLISHED_ROWS
    from tiers.qutibench import import_into

    source = tmp_path_factory.mktemp("published") / "experimental_data.csv"
    source.write_text(PUBLISHED_HEADER + "\n" + PUBLISHED_ROWS)
    import_into(sweep, source)
    data = collect(sweep)
    (overlay,) = data.pareto.imported
    assert overlay.name == "experimental_data.csv" and overlay.rows == 6
    figs = [f for f in figures_of(render(data)) if "next to the imported QuTiBench rows" in
            f["figure"]["layout"]["title"]["text"]]
    assert len(figs) == 2  # compute throughput (fps-comp) and system throughput (fps-system)
    names = [t["name"] for t in figs[0]["figure"]["data"]]
    assert any(n.startswith("ours: Offline · host · mnist") for n in names)
    assert any(n.startswith("QuTiBench experimental_data.csv: ZCU104-FINN · MNIST") for n in names)
    fps_comp = [x for t in figs[0]["figure"]["data"] if "ZCU104-FINN" in t["name"] for x in t["x"]]
    assert fps_comp == [1000000.0]  # the published row's fps-comp, as read


def test_micro_rows_give_the_per_layer_breakdown(tmp_path, mlp):
    """Real level-1 cuts of a real MLP with hand-made times: Gemm 0.05 ms, Relu 0.01 ms per execution."""
    from tiers.level0.efficiency import row_efficiencies

    write_host_platform(tmp_path)
    rows = micro_rows(mlp, tmp_path / "cuts", batch=8)
    make_store(tmp_path, rows)
    data = collect(tmp_path)
    assert data.micro_rows == 6 and data.roofline.marks == [] and data.level0.heatmaps == []
    (mset,) = data.micro.sets
    assert (mset.parent_model, mset.backend, mset.batch) == ("mlp", "onnxruntime", 8)
    by_name = {r.name: r for r in mset.layers}
    assert set(by_name) == {"Gemm_0", "Relu_1", "Gemm_2"}
    gemm = by_name["Gemm_0"]
    assert gemm.activation_bytes == 8 * 784 * 4 + 8 * 64 * 4  # input and output at batch 8, fp32
    assert gemm.ops == analyze(gemm_path := Path(rows[0].point.model)).ops and gemm.measured_ms == 0.05
    assert gemm.system_p90_ms == pytest.approx(0.15)  # its SingleStream row's p90
    (eff,), _ = row_efficiencies([rows[0].to_row()], load_catalog(workdir=tmp_path))
    assert gemm.predicted_ms == pytest.approx(1e3 * 8 / eff.predicted_fps) and gemm_path.is_file()
    shares = {op: (t, o, n) for op, t, o, n in mset.breakdown}
    assert shares["Gemm"][0] == pytest.approx(0.10 / 0.11) and shares["Relu"][0] == pytest.approx(0.01 / 0.11)
    total_ops = sum(r.ops for r in mset.layers)
    assert shares["Relu"][1] == pytest.approx(by_name["Relu_1"].ops / total_ops) and shares["Gemm"][2] == 2
    page = render(data)
    ids = [f["id"] for f in figures_of(page)]
    assert ids == ["fig-micro-1", "fig-micro-2"]
    assert "Gemm_0" in section_html(page, "micro") and 'class="layers"' in page
    assert math.isclose(sum(t for _op, t, _o, _n in mset.breakdown), 1.0)


def test_micro_rows_without_a_platform_say_why_level0_is_missing(tmp_path, mlp):
    make_store(tmp_path, micro_rows(mlp, tmp_path / "cuts"))  # no host platform file in this workdir
    (mset,) = collect(tmp_path).micro.sets
    assert all(r.predicted_ms is None and r.measured_ms is not None for r in mset.layers)
    assert mset.notes == ["no level-0 prediction for 3 layer(s): unknown platform 'host' (run 'mlperf-ext "
                          "platforms detect' first)"]


def test_log_ticks_are_few_and_from_the_1_2_5_series():
    from tiers.report.figures import log_ticks

    wide = log_ticks([0.0011, 0.9])
    assert len(wide["tickvals"]) <= 4 and set(wide["tickvals"]) <= {0.001 * 10 ** e * m for e in range(4) for m in (1, 2, 5)}
    assert log_ticks([0.024, 0.031])["ticktext"] == ["0.024", "0.031"]  # no 1-2-5 number inside: the ends
    assert log_ticks([]) == {} and log_ticks([0.0, float("nan")]) == {}
