"""The report in a real headless Chromium: it loads offline from file:// with no console error, no page
error and no dialog; every figure is drawn (SVG traces and pixels); the table filter hides rows; every
figure exports a PNG through `Plotly.toImage`; user-supplied markup shows as text.

Driver: Playwright (`playwright` on PyPI) launched with `executable_path` = the system's Chromium (Debian's
`chromium` package, installed by scripts/ensure_chromium.sh; `playwright install` is never run). Chosen
over a hand-written DevTools-protocol client because it reports console messages, page errors and
dialogs as events, blocks requests through routes, and waits for page state, with tested code; it drives
Chromium 156 here, newer than the build it is released with, through the same protocol.

Data: REAL rows from the point runner (a small real ONNX MLP on onnxruntime, LoadGen's quick runs of 200
ms: SingleStream with --loadgen-trace, Offline in submission mode at batch 1, 8 and 32, so with accuracy),
then HAND-MADE rows for what the runner cannot produce on demand: a model named `<script>alert(1)</script>`
with a note `<img src=x onerror=alert(1)>`, an invalid and a refused row with markup in their errors,
and micro rows on real cuts of the MLP with typed-in times (tests/tiers/report/conftest.py). Level 0 reads
a hand-written `host` platform file (the conftest's, not a measurement); a published QuTiBench excerpt is
imported for the Pareto overlay.

The full-page screenshot is saved in the test's tmp dir and copied to $MLPERF_EXT_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from mlperf_ext.config import RunPoint
from mlperf_ext.store import ResultsStore
from tests.harness.conftest import SHORT, make_mlp
from tests.tiers.report.conftest import (
    EVIL_ERROR,
    EVIL_MODEL,
    EVIL_NOTE,
    micro_rows,
    run_cli,
    stored,
    write_host_platform,
)

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: run scripts/ensure_chromium.sh")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[test]'")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- PNG pixels, with the standard library and numpy ------------------------------------------------------
def _unfilter_sequential(kind: int, line: list[int], prior: list[int], bpp: int) -> np.ndarray:
    """PNG filters 3 (Average) and 4 (Paeth): each byte depends on the one just decoded, so byte by byte
    (https://www.w3.org/TR/png-3/#9Filter-types)."""
    out = bytearray(len(line))
    for i, x in enumerate(line):
        a = out[i - bpp] if i >= bpp else 0
        b = prior[i]
        if kind == 3:
            out[i] = (x + ((a + b) >> 1)) & 0xFF
            continue
        c = prior[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        out[i] = (x + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return np.frombuffer(bytes(out), np.uint8)


def png_pixels(data: bytes) -> np.ndarray:
    """(height, width, channels) of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour_type, _compression, _filter, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    bpp = 3 if colour_type == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, width * bpp + 1)
    out = np.empty((height, width * bpp), np.uint8)
    prior = np.zeros(width * bpp, np.uint8)
    for y in range(height):
        kind, line = int(raw[y, 0]), raw[y, 1:]
        if kind == 0:
            out[y] = line
        elif kind == 1:  # Sub: a running sum per channel
            out[y] = (np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.int64) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # Up (uint8 addition wraps modulo 256, as the filter does)
            out[y] = line + prior
        else:
            out[y] = _unfilter_sequential(kind, line.tolist(), prior.tolist(), bpp)
        prior = out[y]
    return out.reshape(height, width, bpp)


def distinct_colours(pixels: np.ndarray) -> int:
    rgb = pixels[..., :3].astype(np.uint32)
    return int(np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).size)


def test_the_png_reader_undoes_every_filter():
    """A 3x2 RGB image written with filters 0-4 by hand (https://www.w3.org/TR/png-3/#9Filters)."""
    rows = [[(10, 20, 30), (40, 50, 60), (70, 80, 90)], [(15, 25, 35), (45, 55, 65), (200, 210, 220)]]

    def paeth(a, b, c):
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c

    def encode(kind: int) -> bytes:
        flat = [[v for px in row for v in px] for row in rows]
        data = b""
        for y, line in enumerate(flat):
            prior = flat[y - 1] if y else [0] * len(line)
            out = []
            for i, x in enumerate(line):
                a, b, c = (line[i - 3] if i >= 3 else 0), prior[i], (prior[i - 3] if i >= 3 else 0)
                pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
                out.append((x - pred) % 256)
            data += bytes([kind, *out])

        def chunk(tag: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

        return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))

    for kind in range(5):
        assert png_pixels(encode(kind)).tolist() == [[list(px) for px in row] for row in rows], kind


# -- the store and the page ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A workdir with real and hand-made rows (see the module docstring) and its report."""
    from tests.tiers.test_qutibench import PUBLISHED_HEADER, PUBLISHED_ROWS
    from tiers.qutibench import import_into
    from tiers.sweep import run_points

    workdir = tmp_path_factory.mktemp("report-workdir")
    model = make_mlp(workdir / "mlp.onnx")
    base = dict(model=str(model), model_name="mlp", dataset="mnist", backend="onnxruntime", settings=dict(SHORT),
                timeout_s=120)
    points = [RunPoint(**base, scenario="SingleStream", loadgen_trace=True)]
    points += [RunPoint(**base, scenario="Offline", mode="submission", batch=b) for b in (1, 8, 32)]
    real = run_points(points, workdir)
    assert [r.status for r in real] == ["ok"] * 4, [r.error for r in real]
    write_host_platform(workdir)
    store = ResultsStore(workdir / "results.sqlite")
    evil = make_mlp(workdir / "other.onnx", hidden=16, seed=1)  # its own file: its own heatmap row
    for row in [stored("hand-evil", model=evil, name=EVIL_MODEL, notes=[EVIL_NOTE], sys_thr=900.0, sys_p90=1.1,
                       comp_thr=2000.0, comp_ms=0.5, acc=0.5),
                stored("hand-evil-b4", model=evil, name=EVIL_MODEL, batch=4, sys_thr=2500.0, sys_p90=2.0,
                       comp_thr=6000.0, comp_ms=0.66, acc=0.5),
                stored("hand-invalid", model=model, name="mlp", batch=2, status="invalid", sys_thr=1.0,
                       error="min_duration not met: <tooshort>"),
                stored("hand-refused", model=model, name="mlp", batch=3, status="refused", error=EVIL_ERROR),
                *micro_rows(model, workdir / "micro", parent="mlp")]:
        store.append(row)
    published = tmp_path_factory.mktemp("published") / "experimental_data.csv"
    published.write_text(PUBLISHED_HEADER + "\n" + PUBLISHED_ROWS)
    import_into(workdir, published)
    out = workdir / "report.html"
    with pytest.MonkeyPatch.context() as mp:
        assert run_cli(mp, ["report", "--workdir", str(workdir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def browser_page(report, tmp_path_factory):
    """The report loaded in headless Chromium, with every console message, page error, dialog and
    request that is not a file:// one recorded (such a request is also refused)."""
    events: dict[str, list[str]] = {"console": [], "pageerror": [], "dialog": [], "request": []}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: events["console"].append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: events["pageerror"].append(str(e)))

        def on_dialog(dialog):
            events["dialog"].append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:
                events["request"].append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(report.resolve().as_uri())
        page.wait_for_function("document.querySelectorAll('div.plot').length > 0 && Array.from("
                               "document.querySelectorAll('div.plot')).every(d => d._fullLayout)", timeout=30_000)
        yield page, events
        browser.close()


@pytest.fixture(scope="module")
def screenshot(browser_page, tmp_path_factory) -> tuple[Path, np.ndarray]:
    page, _events = browser_page
    path = keep_screenshot(page, tmp_path_factory.mktemp("screenshots") / "report-full-page.png")
    return path, png_pixels(path.read_bytes())


def keep_screenshot(page, path: Path) -> Path:
    """The full page as PNG at `path`, copied to $MLPERF_EXT_SCREENSHOT_DIR when set."""
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("MLPERF_EXT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)
    return path


def test_the_page_loads_offline_without_errors_or_dialogs(browser_page, screenshot):
    page, events = browser_page
    page.mouse.move(300, 300)  # hover over the page once (plotly draws hover labels from user text)
    errors = [m for m in events["console"] if m.startswith(("error", "assert"))]
    assert errors == [] and events["pageerror"] == [] and events["dialog"] == [] and events["request"] == []


def test_every_figure_is_drawn(browser_page, screenshot):
    page, _events = browser_page
    plots = page.evaluate("""Array.from(document.querySelectorAll('div.plot')).map(d => {
        const r = d.getBoundingClientRect();
        return {id: d.id, plotly: d.classList.contains('js-plotly-plot'),
                svg: d.querySelectorAll('svg.main-svg').length,
                drawn: d.querySelectorAll('g.trace path.point, g.trace path.js-line, g.trace.bars path, '
                                          + 'g.trace.boxes path.box, g.hm image').length,
                traces: d._fullData.length, png_button: !!d.querySelector('.modebar-btn[data-title="Download plot as a PNG"]'),
                share: !!d.querySelector('.modebar-btn[data-attr="sendChartToCloud"], .modebar-btn[data-title^="Share"]'),
                top: r.top + window.scrollY, left: r.left + window.scrollX, width: r.width, height: r.height};
    })""")
    ids = [p["id"] for p in plots]
    for section in ("level0", "roofline", "curves", "latency", "pareto", "micro"):
        assert any(i.startswith(f"fig-{section}-") for i in ids), (section, ids)
    _path, pixels = screenshot
    assert distinct_colours(pixels) > 500  # far from a blank page
    for p in plots:
        assert p["plotly"] and p["svg"] >= 1 and p["traces"] >= 1 and p["drawn"] >= 1, p
        assert p["png_button"] and not p["share"], p
        top, left = round(p["top"]), round(p["left"])
        crop = pixels[top:top + round(p["height"]), left:left + round(p["width"])]
        assert crop.size and distinct_colours(crop) > 20, p  # the figure's own pixels are not blank


def test_each_figure_exports_a_png(browser_page):
    page, _events = browser_page
    urls = page.evaluate("""Promise.all(Array.from(document.querySelectorAll('div.js-plotly-plot')).map(
        d => Plotly.toImage(d, {format: 'png', width: 900, height: 500})))""")
    assert len(urls) == page.evaluate("document.querySelectorAll('div.plot').length") >= 8
    for url in urls:
        assert url.startswith("data:image/png;base64,")
        image = png_pixels(base64.b64decode(url.split(",", 1)[1]))
        assert image.shape[:2] == (500, 900) and distinct_colours(image) > 20


def test_the_filter_hides_rows(browser_page):
    page, _events = browser_page

    def visible() -> int:
        return page.evaluate("Array.from(document.querySelectorAll('#results-table tbody tr')).filter(tr => "
                             "!tr.hidden && tr.offsetParent !== null).length")

    total = visible()
    assert total == page.evaluate("document.querySelectorAll('#results-table tbody tr').length") == 14  # 4 real, 4 hand-made, 6 micro
    page.fill("#results-filter", "refused")
    assert visible() == 1 and page.inner_text("#results-count") == f"1 of {total} rows shown"
    page.fill("#results-filter", "Offline VALID")
    offline_valid = visible()
    assert 1 < offline_valid < total
    page.fill("#results-filter", "")
    assert visible() == total


def test_user_markup_shows_as_text(browser_page):
    page, _events = browser_page
    text = page.inner_text("#results-table")
    assert EVIL_MODEL in text and EVIL_NOTE in text and "backend said <b>no</b>" in text
    assert page.evaluate("document.querySelectorAll('img, iframe, body svg script, #results-table b').length") == 0
    svg_text = page.evaluate("Array.from(document.querySelectorAll('svg text')).map(t => t.textContent)")
    assert any(EVIL_MODEL in t for t in svg_text)  # the heatmap's row label, drawn literally


#: every text of a figure (titles, tick labels, legend entries, annotations) as boxes on the page
TEXT_BOXES = """Array.from(document.querySelectorAll('div.plot')).map(d => ({id: d.id, boxes:
    Array.from(d.querySelectorAll('svg.main-svg text')).filter(t => t.textContent.trim() &&
        getComputedStyle(t).visibility !== 'hidden' && getComputedStyle(t).opacity !== '0').map(t => {
        const r = t.getBoundingClientRect();
        return {text: t.textContent.trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
    }).filter(b => b.x1 - b.x0 > 0 && b.y1 - b.y0 > 0)}))"""


def overlapping_texts(figures: list[dict], slack: float = 1.0) -> list[str]:
    """Pairs of texts in one figure whose boxes intersect by more than `slack` px both ways."""
    found = []
    for fig in figures:
        boxes = fig["boxes"]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                dx = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
                dy = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
                if dx > slack and dy > slack:
                    found.append(f"{fig['id']}: {a['text']!r} over {b['text']!r}")
    return found


@pytest.mark.parametrize("width", [1400, 800])
def test_no_text_of_a_figure_overlaps_another_at_wide_and_narrow_widths(report, browser_page, width, tmp_path):
    browser = browser_page[0].context.browser  # one Playwright per process: a page of the module's browser
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
        page.goto(report.resolve().as_uri())
        page.wait_for_function("document.querySelectorAll('div.plot').length > 0 && Array.from("
                               "document.querySelectorAll('div.plot')).every(d => d._fullLayout)", timeout=30_000)
        keep_screenshot(page, tmp_path / f"report-{width}px.png")
        figures = page.evaluate(TEXT_BOXES)
        widest = page.evaluate("Math.max(...Array.from(document.querySelectorAll('div.plot')).map("
                               "d => d.getBoundingClientRect().right))")
        page_width = page.evaluate("document.documentElement.scrollWidth")
    finally:
        page.close()
    assert sum(len(f["boxes"]) for f in figures) > 50  # the figures' texts were found
    overlaps = overlapping_texts(figures)
    assert not overlaps, "\n".join(overlaps)
    assert widest <= width  # no figure runs off the page
    assert page_width <= width  # nor anything else: a wide table scrolls in its own box
