"""Builders for the report tests: hand-made stored rows (`stored`), a hand-written host platform file,
hand-made micro rows on real cuts of a small real model, and the CLI with the `report` command registered
whether or not pyproject declares it yet.

Every figure in a hand-made row is typed in here and named as such; the browser test also runs real
points through the point runner (tests/tiers/report/test_chromium.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlperf_ext import cli
from mlperf_ext.config import RunPoint
from mlperf_ext.result import (
    AccuracyFigures,
    ComputeFigures,
    MicroInfo,
    PointResult,
    RuntimeInfo,
    SystemFigures,
    Variant,
)

#: the names the escaping tests plant in rows (from the issue)
EVIL_MODEL = "<script>alert(1)</script>"
EVIL_NOTE = "<img src=x onerror=alert(1)>"
EVIL_ERROR = "backend said <b>no</b> & \"stopped\" <svg onload=alert(2)>"


def stored(run: str, *, model: str | Path, name: str | None = None, status: str = "ok", scenario: str = "Offline",
           batch: int = 1, platform: str = "host", backend: str = "onnxruntime", acc: float | None = None,
           sys_thr: float | None = None, sys_p90: float | None = None, comp_thr: float | None = None,
           comp_ms: float | None = None, executed: str | None = "fp32", precision: str = "fp32",
           notes: list[str] | None = None, error: str | None = None, micro: MicroInfo | None = None,
           dataset: str = "mnist", threads: int | None = None, streams: int = 1) -> PointResult:
    """A hand-made stored row with only the figures a test needs (each passed in by the test)."""
    point = RunPoint(model=str(model), model_name=name or f"m-{run}", dataset=dataset, backend=backend,
                     scenario=scenario, batch=batch, platform=platform, threads=threads, streams=streams)
    return PointResult(
        point=point, point_key=f"key-{run}", run_id=run, status=status, error=error, notes=list(notes or []),
        variant=Variant(family="mlp", precision=precision, model_sha256=f"sha-{run}"), micro=micro,
        system=SystemFigures(valid=status == "ok", throughput=sys_thr, lat_p90_ms=sys_p90,
                             lat_p50_ms=None if sys_p90 is None else sys_p90 / 2),
        compute=ComputeFigures(batch=point.batch, streams=streams, throughput=comp_thr, lat_mean_ms=comp_ms),
        accuracy=AccuracyFigures(value=acc) if acc is not None else None,
        runtime=RuntimeInfo(name=backend, compute_dtype=executed))


#: a hand-written `host` platform (catalog format, tiers/level0/platforms.yaml): round numbers for tests,
#: not a measurement of any machine
HOST_PLATFORM = """\
platforms:
- name: host
  kind: cpu
  description: test fixture, hand-written numbers (not measured)
  peak_tops: {fp32: 0.5, int8: 2.0}
  memory_bandwidth_gbs: 20.0
  source: tests/tiers/report/conftest.py (hand-written for tests)
"""


def write_host_platform(workdir: Path) -> Path:
    from tiers.level0.platforms import HOST_PLATFORM_FILE

    path = Path(workdir) / HOST_PLATFORM_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HOST_PLATFORM)
    return path


def micro_rows(model: Path, out_dir: Path, parent: str = "mlp", backend: str = "onnxruntime",
               batch: int = 8) -> list[PointResult]:
    """Hand-made micro rows on REAL level-1 cuts of `model` (files written under `out_dir`): per layer an
    Offline row at `batch` and a SingleStream row, with typed-in compute times (a Gemm slower than a Relu)."""
    from tiers.micro.cut import cut_model

    cuts = cut_model(model, name=parent, levels=(1,), sizes=()).level1.cuts
    rows = []
    for i, cut in enumerate(cuts):
        path = cut.save(out_dir / f"{cut.name}.onnx")
        info = MicroInfo(level=1, layer=cut.name, op_type=cut.op_type, occurrences=cut.occurrences,
                         parent_model=parent)
        ms = 0.05 if cut.op_type == "Gemm" else 0.01  # hand-made
        off = stored(f"micro-off-{i}", model=path, name=f"{parent}/{cut.name}", batch=batch, micro=info,
                     comp_thr=batch / ms * 1e3, comp_ms=ms, sys_thr=batch / ms * 500, sys_p90=4 * ms,
                     dataset=str(out_dir))
        single = stored(f"micro-ss-{i}", model=path, name=f"{parent}/{cut.name}", scenario="SingleStream",
                        micro=info, comp_thr=1e3 / ms, comp_ms=ms, sys_thr=250 / ms, sys_p90=3 * ms,
                        dataset=str(out_dir))
        rows += [off, single]
    return rows


def run_cli(monkeypatch, argv: list[str]) -> int:
    """`mlperf-ext ARGV` in this process (the commands come from pyproject's entry points)."""
    return cli.main(argv)


@pytest.fixture()
def mlp(tmp_path) -> Path:
    from tests.harness.conftest import make_mlp

    return make_mlp(tmp_path / "mlp.onnx")
