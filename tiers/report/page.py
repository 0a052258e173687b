"""The report's HTML page: a header, a table of contents, one `<section>` per figure group, the results
table with a client-side filter, and plotly's JavaScript embedded once (the file works offline).

Escaping: every text that reaches the page goes through `esc` (`html.escape`); texts inside figures went
through `figures.plot_text` already. The figures travel as JSON in one `<script type="application/json">`
block in which `<`, `>` and `&` are written as `\\u003c`, `\\u003e`, `\\u0026`, so no string can end the
script element; a small inline script hands each figure to `Plotly.newPlot` with the modebar's "download
as PNG" button enabled.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go
import plotly.io as pio

from tiers.report import figures as F
from tiers.report.data import ReportData

#: the order of the page's sections: (id, heading)
SECTIONS = (
    ("level0", "Level 0: predicted inputs/s"),
    ("roofline", "Roofline with the measured rows"),
    ("curves", "Latency vs throughput over batch"),
    ("latency", "Latency distributions"),
    ("pareto", "Pareto frontiers"),
    ("micro", "Per-layer breakdown (levels 1–2)"),
    ("results", "Results table"),
)
#: plotly's config for every figure: the modebar always shown, its "download as PNG" button kept (the
#: filename is set per figure); no "share chart" button (it uploads the figure to Plotly's cloud); no
#: MathJax typesetting of text such as "$x$" in a model name
PLOT_CONFIG = {"displaylogo": False, "displayModeBar": True, "responsive": True, "showSendToCloud": False,
               "typesetMath": False}


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Section:
    id: str
    heading: str
    body: list[str] = field(default_factory=list)  # HTML fragments, in order
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)  # (div id, figure)

    def line(self, text: str, cls: str = "note") -> None:
        """One paragraph of plain text (escaped here)."""
        self.body.append(f'<p class="{cls}">{esc(text)}</p>')

    def lines(self, texts: Sequence[str], limit: int = 50) -> None:
        if not texts:
            return
        items = "".join(f"<li>{esc(t)}</li>" for t in texts[:limit])
        more = f"<li>… and {len(texts) - limit} more</li>" if len(texts) > limit else ""
        self.body.append(f'<ul class="notes">{items}{more}</ul>')

    def collapsed(self, summary: str, texts: Sequence[str]) -> None:
        """A list shown only when the reader opens it (a long one would bury the section)."""
        if texts:
            items = "".join(f"<li>{esc(t)}</li>" for t in texts)
            self.body.append(f'<details class="notes"><summary>{esc(summary)} ({len(texts)})</summary>'
                             f'<ul class="notes">{items}</ul></details>')

    def figure(self, fig: go.Figure) -> None:
        div = f"fig-{self.id}-{len(self.figures) + 1}"
        self.figures.append((div, fig))
        self.body.append(f'<div class="plot" id="{div}"></div>')

    def html(self) -> str:
        return f'<section id="{self.id}">\n<h2>{esc(self.heading)}</h2>\n' + "\n".join(self.body) + "\n</section>"


# -- sections ----------------------------------------------------------------------------------------
def _level0(data: ReportData, s: Section) -> None:
    l0 = data.level0
    if not l0.heatmaps:
        s.line("no model file of the stored rows is readable for level 0: nothing to predict "
               "(run points first, or keep the model files where the rows name them)")
        s.lines(l0.notes)
        return
    s.line(f"Each cell: inputs/s that level 0's {l0.predictor} predicts at batch {l0.batch} for a model file the "
           "stored rows name (micro rows aside) at its stored precision, as 'mlperf-ext predict --model FILE "
           f"--batch {l0.batch}' prints it; * = memory-bound; "
           "an empty cell = the platform mode has no peak that can run that precision. Colours share one log scale.",
           "caption")
    zrange = F.heatmap_range(l0.heatmaps)
    for h in l0.heatmaps:
        if any(c.inputs_per_s is not None for row in h.cells for c in row):
            s.figure(F.heatmap_figure(h, l0.predictor, l0.batch, zrange))
        else:
            precisions = ", ".join(dict.fromkeys(prec for _m, prec in h.rows))
            s.line(f"{h.kind} platforms ({', '.join(h.columns)}): no peak that can run {precisions}, so no "
                   "prediction")
    s.lines(l0.notes)


def _roofline(data: ReportData, s: Section) -> None:
    rf = data.roofline
    reasons = [f"{label} (run {run}): {why}" for run, label, why in rf.skipped]
    if not rf.marks:
        s.line("no ok row could be placed on a roofline (each needs its model file, a platform in the catalog and "
               "a compute throughput; for platform 'host' run 'mlperf-ext platforms detect' first)")
        s.lines(reasons)
        return
    s.line("Points: each ok row's compute throughput (backend only, at its deployment) times level 0's ops per "
           "input, at the operational intensity of its compute batch with the weights streamed as stored; the "
           "ceiling is the roofline of the datatype that executed, as 'mlperf-ext efficiency' reads the row. "
           "System (LoadGen) figures are not on this plot.", "caption")
    by_platform: dict[str, list] = {}
    for m in rf.marks:
        by_platform.setdefault(m.platform, []).append(m)
    for platform, marks in by_platform.items():
        s.figure(F.roofline_figure(platform, marks))
    if reasons:
        s.line("rows not on a roofline:")
        s.lines(reasons)


def _curves(data: ReportData, s: Section) -> None:
    cv = data.curves
    if not cv.curves:
        s.line("no deployment was measured at two batches or more: sweep the batch (e.g. batch: [1, 8, 32] in a "
               f"spec) to draw a curve ({cv.single_batch} deployment(s) measured at one batch)")
        return
    s.line("One curve per deployment: the same model, backend, scenario, threads, streams and every other "
           "setting, differing only in batch (ok rows). Left: LoadGen's system figures (throughput; p90 latency "
           "from query issue to completion). Right: the backend's compute figures at the same deployment "
           "(throughput over all streams; mean latency of one batch execution). In Offline, LoadGen issues every "
           "sample in one query, so its system latency is the time from the start of the run to a sample's "
           "completion, not a service time.", "caption")
    s.figure(F.curves_figure(cv.curves))
    if cv.single_batch:
        s.line(f"{cv.single_batch} other deployment(s) were measured at one batch only and have no curve.")


def _latency(data: ReportData, s: Section) -> None:
    boxes = data.latency.boxes
    if not boxes:
        s.line("no ok rows: nothing measured to show latencies of")
        return
    drawn = [b for b in boxes if b.system is not None or b.compute is not None]
    if drawn:
        s.line("One row per run, grouped by model and backend (hover for the whole label and the run id). Left: "
               "every sample's system latency as LoadGen traced it, from query issue to completion (runs made "
               "with --loadgen-trace; system_latency_s.npy in the run directory). Right: every timed compute "
               "execution of one batch with its inputs resident (compute_latency_s.npy: before and after the "
               "LoadGen run, all streams). Nothing is substituted where a file is missing.", "caption")
        s.figure(F.latency_figure(drawn))
    else:
        s.line("no run directory holds latency files (system_latency_s.npy, compute_latency_s.npy)")
    missing = [(b, b.system_note) for b in boxes if b.system is None]
    missing += [(b, b.compute_note) for b in boxes if b.compute is None]
    if missing:
        runs = len({b.run_id for b, _ in missing})
        why = Counter(note for _, note in missing)
        s.line(f"{runs} of {len(boxes)} runs lack a distribution: " + "; ".join(
            f"{n} × {note}" for note, n in why.most_common()) + ".")
        s.collapsed("which runs", [f"{b.label} (run {b.run_id}): {note}" for b, note in missing])


def _reasons(counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counter.most_common())


def _pareto(data: ReportData, s: Section) -> None:
    from tiers.pareto import LEVEL0, MEASURED, OBJECTIVES

    ps = data.pareto
    report = ps.report
    level0 = {(f.scenario, f.platform, f.dataset, f.backend, f.objective.name): f
              for f in report.frontiers if f.kind == LEVEL0}
    empty = []
    drawn = 0
    measured = [f for f in report.frontiers if f.kind == MEASURED]
    if measured:
        s.line("One frontier per scenario, platform and dataset (as 'mlperf-ext pareto'): top-1 accuracy against "
               "each objective, ok rows only; filled markers joined by a step line are on the frontier, hollow "
               "ones are dominated. For the throughput objectives, level 0's predicted inputs/s of the same rows "
               "(at their accuracy) is drawn next to the measured frontier.", "caption")
    for f in measured:
        theory = level0.get((f.scenario, f.platform, f.dataset, f.backend, f.objective.name))
        if not f.points and not (theory and theory.points):
            empty.append(f"{f.title}: no point ({_reasons(f.excluded) or 'no rows'})")
            continue
        s.figure(F.pareto_figure(f, theory))
        drawn += 1
        left = [f"left out of '{f.title}': {_reasons(f.excluded)}"] if f.excluded else []
        if theory and theory.excluded:
            left.append(f"level 0 left out: {_reasons(theory.excluded)}")
        s.lines(left)
    if not measured:
        s.line("no ok row to place on a frontier" + (f" (rows left out: {_reasons(report.skipped)})"
                                                     if report.skipped else ""))
    s.lines(empty)
    if report.skipped and measured:
        s.line(f"rows no frontier considers: {_reasons(report.skipped)}")
    for overlay in ps.imported:
        s.line(f"imported QuTiBench file {overlay.name}: {overlay.rows} rows ({overlay.dialect} header)")
        s.lines(overlay.notes)
    if ps.imported:
        for name in ("compute_throughput", "throughput"):
            ours = [f for f in measured if f.objective.name == name and f.points]
            theirs = [(o, f) for o in ps.imported for f in o.report.frontiers
                      if f.kind == MEASURED and f.objective.name == name and f.points]
            if theirs:
                s.figure(F.overlay_figure(OBJECTIVES[name], ours, theirs))
            else:
                s.line(f"the imported QuTiBench rows have no {OBJECTIVES[name].title} with an accuracy")
    s.lines(ps.notes)


def _micro(data: ReportData, s: Section) -> None:
    mc = data.micro
    if not mc.sets:
        s.line("no micro rows: run 'mlperf-ext micro --model MODEL' to measure single layers (level 1) and "
               "stacks (level 2)" if not mc.rows else
               f"{mc.rows} micro row(s), but none ok at Offline: nothing to break down (see the results table)")
        s.lines(mc.notes)
        return
    s.line("Each layer (level 1) or stack (level 2) cut from its parent model, measured alone at the Offline "
           "batch: compute latency per batch execution times its occurrences in the model; level 0 at the "
           "datatype that executed; the op-type shares as 'mlperf-ext micro' prints them.", "caption")
    for mset in mc.sets:
        s.figure(F.micro_time_figure(mset))
        if mset.breakdown:
            s.figure(F.micro_breakdown_figure(mset))
        s.body.append(_layer_table(mset))
        s.lines(mset.notes)
    s.lines(mc.notes)


def _layer_table(mset) -> str:
    head = ("level", "layer", "op", "occ", "ops", "weight B", "act B", "OI", "ran", "measured ms", "SS p90 ms",
            "predicted ms", "bound", "efficiency %")
    rows = []
    for r in mset.layers:
        cells = (r.level, r.name, r.op_type, r.occurrences, F.num(r.ops, ",.0f"), F.num(r.weight_bytes, ",.0f"),
                 f"{r.activation_bytes:,}", F.num(r.oi, ".1f"), r.executed, F.num(r.measured_ms, ".4f"),
                 F.num(r.system_p90_ms, ".4f"), F.num(r.predicted_ms, ".4f"), r.bound,
                 F.num(None if r.efficiency is None else 100 * r.efficiency, ".1f"))
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    caption = esc(f"{mset.parent_model} on {mset.backend}, Offline batch {mset.batch}")
    return (f'<div class="scroll"><table class="layers"><caption>{caption}</caption><thead><tr>'
            + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>")


def _results(data: ReportData, s: Section) -> None:
    t = data.table
    if not t.rows:
        s.line("the store holds no rows yet")
        return
    s.body.append('<p><label for="results-filter">Filter rows (every word must appear in the row): </label>'
                  '<input type="search" id="results-filter" placeholder="e.g. Offline ok" autocomplete="off"> '
                  '<span id="results-count"></span></p>')
    # the terminal's columns, with the status and the reasons (printed below the terminal's table) next to
    # the run, where a reader looks first
    head = "".join(f"<th>{esc(h)}</th>" for h in (t.headers[0], "status", "why", *t.headers[1:]))
    body = []
    for row in t.rows:
        cells = [f'<td title="{esc(row.run_id)}">{esc(row.cells[0])}</td>', f'<td class="status">{esc(row.status)}</td>',
                 '<td class="why">' + "<br>".join(esc(w) for w in row.why) + "</td>"]
        cells += [f"<td>{esc(c)}</td>" for c in row.cells[1:]]
        body.append(f'<tr data-status="{esc(row.status)}">' + "".join(cells) + "</tr>")
    s.body.append(f'<div class="scroll"><table id="results-table"><caption>{esc(t.caption)}</caption><thead><tr>'
                  f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


BUILDERS = {"level0": _level0, "roofline": _roofline, "curves": _curves, "latency": _latency, "pareto": _pareto,
            "micro": _micro, "results": _results}


def sections(data: ReportData) -> list[Section]:
    out = []
    for sid, heading in SECTIONS:
        section = Section(sid, heading)
        BUILDERS[sid](data, section)
        out.append(section)
    return out


# -- the page ----------------------------------------------------------------------------------------
def script_json(text: str) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' (nor JS line separators) literally."""
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def figures_json(all_sections: Sequence[Section]) -> str:
    items = []
    for section in all_sections:
        for div, fig in section.figures:
            config = {**PLOT_CONFIG, "toImageButtonOptions": {"format": "png", "filename": div, "scale": 2}}
            items.append(f'{{"id": {json.dumps(div)}, "config": {json.dumps(config)}, '
                         f'"figure": {pio.to_json(fig, validate=True)}}}')
    return script_json("[" + ",\n".join(items) + "]")


STYLE = """
body { font-family: "Liberation Sans", "DejaVu Sans", Arial, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 24px 48px; color: #222; }
header { border-bottom: 1px solid #ccc; margin-bottom: 12px; }
h1 { margin: 20px 0 8px; } h2 { margin-top: 36px; border-bottom: 1px solid #eee; }
nav ol { columns: 2; } p.caption { color: #444; max-width: 1100px; } p.note, ul.notes { color: #555; }
ul.notes { font-size: 0.9em; } .plot { width: 100%; min-height: 300px; margin: 12px 0 24px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0 24px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; } caption { text-align: left; color: #555; padding: 4px 0; }
#results-table tr[data-status="ok"] td.status { color: #176617; }
#results-table tr:not([data-status="ok"]) td.status { color: #a31515; font-weight: bold; }
div.scroll { overflow-x: auto; max-width: 100%; }
#results-table td { white-space: nowrap; } #results-table td.why { white-space: normal; min-width: 22em; font-size: 0.9em; }
#results-filter { width: 24em; padding: 3px; } dl.meta { display: grid; grid-template-columns: max-content auto;
gap: 2px 12px; } dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; }
"""

SCRIPT = """
(function () {
  var figures = JSON.parse(document.getElementById("report-figures").textContent);
  figures.forEach(function (f) { Plotly.newPlot(f.id, f.figure.data, f.figure.layout, f.config); });
  var box = document.getElementById("results-filter");
  if (!box) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll("#results-table tbody tr"));
  var count = document.getElementById("results-count");
  function apply() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(function (w) { return w.length > 0; });
    var shown = 0;
    rows.forEach(function (tr) {
      var text = tr.textContent.toLowerCase();
      var hit = words.every(function (w) { return text.indexOf(w) !== -1; });
      tr.hidden = !hit;
      if (hit) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " rows shown";
  }
  box.addEventListener("input", apply);
  apply();
})();
"""


def _header(data: ReportData) -> str:
    from importlib.metadata import version

    counts = ", ".join(f"{n} {status}" for status, n in sorted(data.counts.items(), key=lambda kv: -kv[1])) or "none"
    other = data.total - data.counts.get("ok", 0)
    meta = [("workdir", str(data.workdir.resolve())),
            ("rows", f"{data.total} (the latest row of each point): {counts}"
                     + (f"; {data.micro_rows} of them micro rows (levels 1–2)" if data.micro_rows else "")),
            ("mlperf-ext", data.version), ("plotly", version("plotly")), ("generated", f"{data.generated_at} (UTC)")]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta)
    return ("<header><h1>mlperf-ext report</h1>"
            f'<dl class="meta">{items}</dl>'
            "<p>" + esc("System figures are LoadGen's (query issue → QuerySamplesComplete: batching, copies, "
                        "post-processing and the harness included); compute figures are the backend's execution "
                        "alone with inputs resident. Both come from the same deployment: the same batch, threads "
                        "and streams, timed in the same child process before and after its LoadGen run.") + "</p>"
            "<p>" + esc(f"Only rows with status ok are plotted as measurements; the {other} other row(s) are listed "
                        "in the results table with their reason.") + "</p></header>")


def _contents(all_sections: Sequence[Section]) -> str:
    items = "".join(f'<li><a href="#{s.id}">{esc(s.heading)}</a></li>' for s in all_sections)
    return f"<nav><h2>Contents</h2><ol>{items}</ol></nav>"


def render(data: ReportData) -> str:
    """The whole page as one string: plotly's JavaScript embedded once, no external resource."""
    from plotly.offline import get_plotlyjs

    all_sections = sections(data)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc('mlperf-ext report: ' + str(data.workdir))}</title>\n"
            f"<style>{STYLE}</style>\n<script>{get_plotlyjs()}</script>\n</head>\n<body>\n"
            + _header(data) + "\n" + _contents(all_sections) + "\n"
            + "\n".join(s.html() for s in all_sections)
            + f'\n<script type="application/json" id="report-figures">{figures_json(all_sections)}</script>\n'
            + f"<script>{SCRIPT}</script>\n</body>\n</html>\n")
