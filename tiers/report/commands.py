"""`mlperf-ext report --workdir W --out report.html`: one self-contained, interactive HTML file.

Why a command of its own: it runs nothing; it reads the store, level 0's catalog and the run directories'
latency files, and writes one file that opens offline (plotly's JavaScript is inside it). Registered
through the `mlperf_ext.commands` entry-point group (`register(subparsers)`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlperf_ext.commands import add_workdir
from mlperf_ext.errors import ConfigError
from mlperf_ext.files import write_atomic

DEFAULT_OUT = Path("report.html")


def check_out(path: Path) -> Path:
    """The output file, refused (one line) when it names a directory or lies in a missing one."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a directory; fix: name an .html file, e.g. --out {path / 'report.html'}")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {path}: folder {path.parent} does not exist; fix: create it or name another path")
    return path


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def cmd_report(args) -> int:
    from tiers.report.data import ReportOptions, collect
    from tiers.report.page import render

    out = check_out(args.out)
    options = ReportOptions(platforms_files=tuple(args.platforms_file), platform_mode=args.platform_mode,
                            heatmap_batch=args.batch, borrow_accuracy=args.borrow_accuracy)
    data = collect(args.workdir, options)
    size = write_atomic(out, render(data))
    print(f"wrote {out} ({_size(size)}, {size} bytes; {data.total} rows)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write one self-contained interactive HTML report of a workdir's results "
                                      "(level 0, roofline, curves, latencies, Pareto, micro, the table)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="FILE",
                   help="the HTML file to write (default: ./report.html); its folder must exist")
    p.add_argument("--batch", type=int, default=1, help="batch of the level-0 heatmaps (as 'predict --batch')")
    p.add_argument("--borrow-accuracy", action="store_true",
                   help="Pareto: give a row without accuracy its variant's agreed accuracy (as 'pareto "
                        "--borrow-accuracy'; marked in the hover text)")
    p.add_argument("--platforms-file", action="append", default=[], type=Path,
                   help="extra platform YAML (format of tiers/level0/platforms.yaml); repeatable")
    p.add_argument("--platform-mode", default=None, metavar="MODE",
                   help="platform mode level 0 uses for rows that name none (e.g. 'measured' for host)")
    add_workdir(p)
    p.set_defaults(func=cmd_report)
