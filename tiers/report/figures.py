"""Plotly figures of the report's records (tiers/report/data.py): one function per kind of figure.

Every text plotly draws (titles, axis and tick labels, legend names, hover text) goes through
`plot_text`: plotly renders a subset of HTML tags in those strings and decodes entities, so `<`, `>` and
`&` are escaped and a name such as `<b>x</b>` is drawn literally. Values that come from users are put in
`customdata` and referenced by the hover templates, never spliced into a template (a `%{...}` in a model
name stays text). Axis titles carry units; system (LoadGen) and compute (backend only) figures are
always separate traces with their own axes.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tiers.report.data import (
    Curve,
    Heatmap,
    ImportedOverlay,
    LatencyBox,
    LatencyStats,
    MicroSet,
    RooflineMark,
)

TEMPLATE = "plotly_white"
#: a qualitative palette (plotly's default "Plotly" sequence), one colour per curve or group
COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff",
           "#fecb52")


def plot_text(value) -> str:
    """A string plotly will draw literally: `&`, `<` and `>` escaped (plotly decodes the entities back)."""
    return html.escape("" if value is None else str(value), quote=False)


def num(value: float | None, spec: str = ".4g") -> str:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


#: log axes label at most this many ticks: plotly's default labels every digit of a decade, and at a
#: narrow width those labels run into each other
LOG_TICKS = 4


def log_ticks(values: Sequence[float], most: int = LOG_TICKS) -> dict:
    """Tick values and labels for a log axis over `values`: numbers of the 1-2-5 series inside their range,
    thinned to at most `most` evenly in log space (the range's ends where none falls inside). Plotly's
    own choice labels every digit of a decade, or steps of 0.005 within one, and at a narrow width those
    labels run into each other."""
    finite = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not finite:
        return {}
    lo, hi = min(finite), max(finite)
    series = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
              for m in (1, 2, 5)]
    inside = [v for v in series if lo <= v <= hi]
    if len(inside) < 2:
        inside = sorted({float(f"{lo:.2g}"), float(f"{hi:.2g}")})
    step = math.ceil(len(inside) / most)
    chosen = inside[::step]
    return {"tickvals": chosen, "ticktext": [f"{v:g}" for v in chosen]}


def colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title={"text": plot_text(title), "x": 0.01, "xanchor": "left"},
                      height=height, margin={"l": 70, "r": 30, "t": 70, "b": 60},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
    return fig


# -- level 0 ---------------------------------------------------------------------------------------
def heatmap_range(heatmaps: Sequence[Heatmap]) -> tuple[float, float] | None:
    """log10 range of every predicted value, so that the heatmaps of all platform kinds share one scale."""
    values = [math.log10(c.inputs_per_s) for h in heatmaps for row in h.cells for c in row
              if c.inputs_per_s is not None and c.inputs_per_s > 0 and math.isfinite(c.inputs_per_s)]
    return (min(values), max(values)) if values else None


def heatmap_figure(h: Heatmap, predictor: str, batch: int, zrange: tuple[float, float] | None) -> go.Figure:
    """`mlperf-ext predict`'s block for one platform kind: cells are predicted inputs/s (* = memory-bound)."""
    ylabels = [plot_text(f"{model} · {prec}") for model, prec in h.rows]
    xlabels = [plot_text(c) for c in h.columns]
    z, text, custom = [], [], []
    for row in h.cells:
        z.append([math.log10(c.inputs_per_s) if c.inputs_per_s and c.inputs_per_s > 0 else None for c in row])
        text.append([num(c.inputs_per_s) + ("*" if c.bound == "memory" else "") for c in row])
        custom.append([[num(c.inputs_per_s, ",.4g") or "not supported", c.bound or "-", c.carrier or "-"]
                       for c in row])
    trace = go.Heatmap(
        z=z, x=xlabels, y=ylabels, text=text, texttemplate="%{text}", customdata=custom, colorscale="Viridis",
        zmin=zrange[0] if zrange else None, zmax=zrange[1] if zrange else None, hoverongaps=False,
        colorbar={"title": {"text": "log10 inputs/s"}},
        hovertemplate="%{y}<br>%{x}<br>predicted %{customdata[0]} inputs/s<br>bound: %{customdata[1]}<br>"
                      "datatype whose peak is used: %{customdata[2]}<extra></extra>")
    fig = go.Figure(trace)
    fig.update_xaxes(title_text="platform / operating mode", tickangle=-90)  # upright labels never touch
    fig.update_yaxes(title_text="model · precision", autorange="reversed")
    # at least ~130 px of cells: the colour bar is as tall as they are, and a shorter one's labels collide
    return _layout(fig, f"level 0 ({predictor}, batch {batch}): predicted inputs/s on {h.kind} platforms",
                   280 + max(130, 34 * len(ylabels)))


# -- roofline --------------------------------------------------------------------------------------
def _ceiling(peak_tops: float, bandwidth_gbs: float, lo: float, hi: float) -> tuple[list[float], list[float]]:
    """The roofline min(peak, bandwidth x OI) in TOP/s over [lo, hi] ops/byte, with its ridge point."""
    ridge = peak_tops * 1e3 / bandwidth_gbs  # TOP/s over GB/s, in ops/byte
    xs = sorted({lo, hi} | ({ridge} if lo < ridge < hi else set()))
    return xs, [min(peak_tops, bandwidth_gbs * x / 1e3) for x in xs]


def roofline_figure(platform: str, marks: Sequence[RooflineMark]) -> go.Figure:
    """One platform mode's ceilings (one per datatype peak in use) and its measured rows."""
    fig = go.Figure()
    ois = [m.operational_intensity for m in marks]
    ridges = [m.peak_tops * 1e3 / m.bandwidth_gbs for m in marks]
    lo, hi = min(ois + ridges) / 10, max(ois + ridges) * 10
    ceilings = {(m.carrier, m.peak_tops, m.bandwidth_gbs) for m in marks}
    for i, (carrier, peak, bw) in enumerate(sorted(ceilings)):
        xs, ys = _ceiling(peak, bw, lo, hi)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines", line={"color": colour(i), "width": 2},
            name=plot_text(f"roofline {carrier}: {peak:g} TOP/s peak, {bw:g} GB/s"),
            hovertemplate="OI %{x:.4g} ops/byte<br>attainable %{y:.4g} TOP/s<extra></extra>"))
    for i, (carrier, peak, bw) in enumerate(sorted(ceilings)):
        mine = [m for m in marks if (m.carrier, m.peak_tops, m.bandwidth_gbs) == (carrier, peak, bw)]
        fig.add_trace(go.Scatter(
            x=[m.operational_intensity for m in mine], y=[m.measured_tops for m in mine], mode="markers",
            marker={"color": colour(i), "size": 10, "line": {"width": 1, "color": "#333"}},
            name=plot_text(f"measured compute ({carrier} peak)"),
            customdata=[[plot_text(m.label), plot_text(m.run_id), m.precision, m.batch, num(m.attainable_tops),
                         num(100 * m.efficiency, ".1f"), m.bound, plot_text(m.note or "-")] for m in mine],
            hovertemplate="%{customdata[0]}<br>run %{customdata[1]}<br>executed %{customdata[2]}, compute batch "
                          "%{customdata[3]}<br>OI %{x:.4g} ops/byte<br>measured %{y:.4g} TOP/s<br>roofline "
                          "%{customdata[4]} TOP/s (%{customdata[6]}-bound)<br>efficiency %{customdata[5]} %<br>"
                          "%{customdata[7]}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="operational intensity (ops/byte: batch × level-0 ops / weight bytes "
                                            "as stored)")
    fig.update_yaxes(type="log", title_text="TOP/s (compute throughput × level-0 ops per input)")
    fig.update_xaxes(nticks=LOG_TICKS)
    fig.update_yaxes(nticks=LOG_TICKS)
    return _layout(fig, f"roofline of {platform} with the measured compute throughput", 520)


# -- latency-throughput curves ---------------------------------------------------------------------
SYSTEM_CURVE_TITLE = "system (LoadGen):<br>p90 latency vs throughput"  # two lines: a half of 800 px holds them
COMPUTE_CURVE_TITLE = "compute (backend only):<br>mean latency per batch vs throughput"


def curves_figure(curves: Sequence[Curve]) -> go.Figure:
    """Per deployment, one system trace (left) and one compute trace (right), each point one batch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(SYSTEM_CURVE_TITLE, COMPUTE_CURVE_TITLE),
                        horizontal_spacing=0.1)
    for i, c in enumerate(curves):
        system = [p for p in c.points if p.system_throughput is not None and p.system_p90_ms is not None]
        compute = [p for p in c.points if p.compute_throughput is not None and p.compute_mean_ms is not None]
        label = plot_text(c.label)
        if system:
            fig.add_trace(go.Scatter(
                x=[p.system_throughput for p in system], y=[p.system_p90_ms for p in system], mode="lines+markers+text",
                text=[f"b{p.batch}" for p in system], textposition=_alternating(len(system)), legendgroup=f"curve{i}",
                line={"color": colour(i)}, name=f"{label} · system",
                customdata=[[p.batch, plot_text(p.run_id), num(p.system_p50_ms), num(p.system_p99_ms), label]
                            for p in system],
                hovertemplate="%{customdata[4]}<br>system, batch %{customdata[0]}<br>run %{customdata[1]}<br>"
                              "throughput %{x:,.4g} samples/s<br>latency p50 %{customdata[2]} ms, p90 %{y:.4g} ms, "
                              "p99 %{customdata[3]} ms<extra></extra>"), row=1, col=1)
        if compute:
            fig.add_trace(go.Scatter(
                x=[p.compute_throughput for p in compute], y=[p.compute_mean_ms for p in compute],
                mode="lines+markers+text", text=[f"b{p.batch}" for p in compute], textposition=_alternating(len(compute)),
                legendgroup=f"curve{i}", line={"color": colour(i), "dash": "dot"}, marker={"symbol": "square"},
                name=f"{label} · compute",
                customdata=[[p.batch, plot_text(p.run_id), num(p.compute_p90_ms), label] for p in compute],
                hovertemplate="%{customdata[3]}<br>compute, batch %{customdata[0]}<br>run %{customdata[1]}<br>"
                              "throughput %{x:,.4g} samples/s<br>latency mean %{y:.4g} ms, p90 %{customdata[2]} ms "
                              "per batch execution<extra></extra>"), row=1, col=2)
    points = [p for c in curves for p in c.points]
    fig.update_xaxes(type="log", title_text="system throughput (samples/s, LoadGen)",
                     **log_ticks([p.system_throughput for p in points]), row=1, col=1)
    fig.update_yaxes(type="log", title_text="system p90 latency (ms per sample, query issue → complete)",
                     **log_ticks([p.system_p90_ms for p in points]), row=1, col=1)
    fig.update_xaxes(type="log", title_text="compute throughput (samples/s, all streams)",
                     **log_ticks([p.compute_throughput for p in points]), row=1, col=2)
    fig.update_yaxes(type="log", title_text="compute latency (ms per batch execution, mean)",
                     **log_ticks([p.compute_mean_ms for p in points]), row=1, col=2)
    fig = _layout(fig, "latency vs throughput over batch (each point one batch size)", 580)
    fig.update_layout(margin={"t": 100})
    return fig


def _alternating(n: int) -> list[str]:
    """Batch labels above and below the curve in turn: two neighbours close together never share a side."""
    return ["top center" if k % 2 == 0 else "bottom center" for k in range(n)]


# -- latency distributions -------------------------------------------------------------------------
def _box_trace(name: str, rows: list[str], boxes: list[LatencyBox], stats: list[LatencyStats], colour_: str,
               what: str) -> go.Box:
    return go.Box(
        name=name, y=rows, orientation="h", q1=[s.q1_ms for s in stats], median=[s.median_ms for s in stats],
        q3=[s.q3_ms for s in stats], lowerfence=[s.lower_fence_ms for s in stats],
        upperfence=[s.upper_fence_ms for s in stats], mean=[s.mean_ms for s in stats], boxpoints=False,
        marker={"color": colour_},
        customdata=[[s.n, num(s.min_ms), num(s.max_ms), num(s.p90_ms), num(s.p99_ms), plot_text(b.label),
                     plot_text(b.run_id)] for s, b in zip(stats, boxes)],
        hovertemplate=f"%{{customdata[5]}}<br>run %{{customdata[6]}}<br>{what}: n %{{customdata[0]}}<br>"
                      "min %{customdata[1]} ms, max %{customdata[2]} ms<br>p90 %{customdata[3]} ms, "
                      "p99 %{customdata[4]} ms<extra></extra>")


def box_rows(boxes: Sequence[LatencyBox]) -> tuple[list[str], list[str]]:
    """Each run's row on the category axis, in the order given: a unique value (model · backend and the
    rest of the label, numbered when one group holds the same deployment twice) and the text shown: the
    short rest (scenario, b/t/s), after the group's name on the group's first row. Both escaped (plain text:
    no markup reaches a label that carries a user's model name)."""
    values, texts, seen, group_before = [], [], Counter(), None
    for box in boxes:
        parts = box.label.split(" · ")
        group = " · ".join(parts[:2])
        short = " ".join(parts[2:]).replace("b/t/s ", "") or box.run_id[-10:]
        seen[(group, short)] += 1
        if seen[(group, short)] > 1:
            short = f"{short} #{seen[(group, short)]}"
        values.append(plot_text(f"{group} · {short}"))
        texts.append(plot_text(f"{group} ▸ {short}" if group != group_before else short))
        group_before = group
    return values, texts


def latency_figure(boxes: Sequence[LatencyBox]) -> go.Figure:
    """Box plots per run, one row each, grouped by model and backend: LoadGen's latency per sample (left)
    and the backend's per execution (right). A row's label is short (scenario, b/t/s; the group's name on
    its first row); the whole label and the run id are on hover. Rows never share space, so however many
    runs there are, no label overlaps another: the figure grows in height instead."""
    ordered = sorted(boxes, key=lambda b: b.label.split(" · ")[:3])  # by model, backend, scenario; else run order
    values, texts = box_rows(ordered)
    row_of = {b.run_id: v for b, v in zip(ordered, values)}
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=(
        "system, per sample", "compute, per batch execution"))
    for col, attr, name, what in ((1, "system", "system (per sample)", "system latency per sample"),
                                  (2, "compute", "compute (per batch execution)", "compute latency per execution")):
        shown = [b for b in ordered if getattr(b, attr) is not None]
        if shown:
            fig.add_trace(_box_trace(name, [row_of[b.run_id] for b in shown], shown, [getattr(b, attr) for b in shown],
                                     colour(col - 1), what), row=1, col=col)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=values, tickmode="array", tickvals=values,
                     ticktext=texts, autorange="reversed", automargin=True)  # the first group on top
    for col, attr, title in ((1, "system", "system latency (ms)"), (2, "compute", "compute latency (ms)")):
        stats = [getattr(b, attr) for b in ordered if getattr(b, attr) is not None]
        ends = [v for st in stats for v in (st.lower_fence_ms, st.upper_fence_ms)]
        fig.update_xaxes(type="log", title_text=title, **log_ticks(ends), row=1, col=col)
    height = 170 + 20 * len(ordered)
    fig = _layout(fig, "latency distributions per run (box: quartiles; whiskers: 1.5 IQR; dashed: mean)", height)
    fig.update_layout(showlegend=False, margin={"b": 60})  # the column titles say which is which
    return fig


# -- Pareto ----------------------------------------------------------------------------------------
def _pareto_points(points, name: str, colour_: str, symbol: str, frontier_line: bool, dash: str = "solid",
                   scale: float = 100.0) -> list[go.Scatter]:
    """A group's frontier (markers joined in value order) and its dominated points (hollow markers)."""
    out = []
    front = sorted((p for p in points if p.on_frontier), key=lambda p: p.value)
    rest = [p for p in points if not p.on_frontier]
    for subset, label, filled in ((front, "frontier", True), (rest, "dominated", False)):
        if not subset:
            continue
        out.append(go.Scatter(
            x=[p.value for p in subset], y=[scale * p.accuracy for p in subset],
            mode="lines+markers" if filled and frontier_line and len(subset) > 1 else "markers",
            line={"color": colour_, "dash": dash, "shape": "hv"},
            marker={"color": colour_ if filled else "rgba(0,0,0,0)", "symbol": symbol, "size": 10,
                    "line": {"color": colour_, "width": 2}},
            name=f"{name} · {label}",
            customdata=[[plot_text(p.model), plot_text(p.precision), plot_text(p.point_backend), plot_text(p.deployment),
                         plot_text(p.operating_mode or "-"), plot_text(p.run_id), plot_text(p.dominated_by or "-"),
                         plot_text(p.accuracy_source or "its own run")] for p in subset],
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>%{customdata[2]} b/t/s %{customdata[3]}, op mode "
                          "%{customdata[4]}<br>run %{customdata[5]}<br>accuracy %{y:.2f} %, value %{x:,.4g}<br>"
                          "dominated by %{customdata[6]}<br>accuracy from %{customdata[7]}<extra></extra>"))
    return out


def _pareto_axes(fig: go.Figure, objective, log_x: bool) -> None:
    fig.update_xaxes(type="log" if log_x else "linear",
                     title_text=plot_text(f"{objective.title} ({objective.unit}, {objective.direction})"))
    fig.update_yaxes(title_text="top-1 accuracy (%)")


def pareto_figure(measured, level0=None) -> go.Figure:
    """One frontier of our rows (`tiers.pareto.Frontier`), with level 0's predicted inputs/s of the same
    rows next to it for the throughput objectives."""
    fig = go.Figure()
    for trace in _pareto_points(measured.points, "measured", colour(0), "circle", True):
        fig.add_trace(trace)
    if level0 is not None and level0.points:
        for trace in _pareto_points(level0.points, "level-0 predicted inputs/s", colour(1), "diamond", True,
                                    dash="dash"):
            fig.add_trace(trace)
    values = [p.value for p in measured.points] + ([p.value for p in level0.points] if level0 else [])
    _pareto_axes(fig, measured.objective, measured.objective.maximise and all(v > 0 for v in values))
    return _layout(fig, measured.title, 480)


def overlay_figure(objective, ours: Sequence, imported: Sequence[tuple[ImportedOverlay, object]]) -> go.Figure:
    """Our frontiers of one objective and an imported QuTiBench file's frontiers (per HWType and task) on
    the same axes: accuracy vs the same figure (fps-comp is compute throughput, fps-system system)."""
    fig = go.Figure()
    i = 0
    for f in ours:
        where = " · ".join(x for x in (f.scenario, f.platform, f.dataset, f.backend) if x)
        for trace in _pareto_points(f.points, f"ours: {plot_text(where)}", colour(i), "circle", True):
            fig.add_trace(trace)
        i += 1
    for overlay, f in imported:
        where = " · ".join(x for x in (f.platform, f.dataset) if x)
        for trace in _pareto_points(f.points, f"QuTiBench {plot_text(overlay.name)}: {plot_text(where)}", colour(i),
                                    "x", True, dash="dot"):
            fig.add_trace(trace)
        i += 1
    values = [p.value for f in ours for p in f.points] + [p.value for _o, f in imported for p in f.points]
    _pareto_axes(fig, objective, bool(values) and all(v > 0 for v in values))
    return _layout(fig, f"accuracy vs {objective.title}: our rows next to the imported QuTiBench rows", 560)


# -- micro -----------------------------------------------------------------------------------------
def micro_time_figure(mset: MicroSet) -> go.Figure:
    """Each layer's (or stack's) compute time at the Offline batch, times its occurrences in the model."""
    fig = go.Figure()
    levels = list(dict.fromkeys(r.level for r in mset.layers))
    for i, level in enumerate(levels):
        rows = [r for r in mset.layers if r.level == level and r.measured_ms is not None]
        if not rows:
            continue
        fig.add_trace(go.Bar(
            x=[plot_text(r.name) for r in rows], y=[r.measured_ms * r.occurrences for r in rows],
            marker={"color": colour(i)}, name=plot_text(f"level {level}"),
            customdata=[[plot_text(r.op_type), r.occurrences, num(r.measured_ms), num(r.predicted_ms),
                         num(None if r.efficiency is None else 100 * r.efficiency, ".1f") or "-",
                         num(r.system_p90_ms) or "-", r.bound or "-", plot_text(r.executed)] for r in rows],
            hovertemplate="%{x} (%{customdata[0]}) × %{customdata[1]}<br>compute %{customdata[2]} ms per batch "
                          "execution, × occurrences %{y:.4g} ms<br>level 0 %{customdata[3]} ms (%{customdata[6]}-"
                          "bound, %{customdata[7]}), efficiency %{customdata[4]} %<br>SingleStream system p90 "
                          "%{customdata[5]} ms<extra></extra>"))
    fig.update_xaxes(title_text="layer (level 1) or stack (level 2)", tickangle=-30)
    fig.update_yaxes(title_text="compute latency × occurrences (ms per batch execution)")
    return _layout(fig, f"{mset.parent_model} on {mset.backend}, Offline batch {mset.batch}: where the compute "
                        "time goes, per layer", 480)


def micro_breakdown_figure(mset: MicroSet) -> go.Figure:
    """`op_type_breakdown`: each op type's share of the level-1 time next to its share of the ops."""
    ops = [plot_text(op) for op, *_ in mset.breakdown]
    fig = go.Figure([
        go.Bar(x=ops, y=[100 * t for _op, t, _o, _n in mset.breakdown], name="share of level-1 time (× occurrences)",
               marker={"color": colour(0)}, customdata=[[n] for *_x, n in mset.breakdown],
               hovertemplate="%{x}: %{y:.1f} % of the time, %{customdata[0]} layer(s)<extra></extra>"),
        go.Bar(x=ops, y=[100 * o for _op, _t, o, _n in mset.breakdown], name="share of level-0 ops",
               marker={"color": colour(1)}, hovertemplate="%{x}: %{y:.1f} % of the ops<extra></extra>")])
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="op type")
    fig.update_yaxes(title_text="share of the model's level-1 total (%)")
    return _layout(fig, f"{mset.parent_model} on {mset.backend}: time share vs ops share by op type", 420)
