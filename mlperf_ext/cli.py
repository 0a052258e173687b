"""`mlperf-ext` command line: a thin composition root. User errors print one line (problem and fix) and
exit 2.

Each package registers its own subcommands through the `mlperf_ext.commands` entry-point group
(`register(subparsers)`; see pyproject.toml), so the core names no tier and an installed package can
add commands. The core's own commands are in `mlperf_ext.commands`.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from mlperf_ext import __version__
from mlperf_ext.errors import ConfigError, MlperfExtError

ENTRY_POINT_GROUP = "mlperf_ext.commands"


class OneLineParser(argparse.ArgumentParser):
    """argparse with the project's error form: one line naming the problem and the fix, exit 2 (no usage
    block; `--help` shows it). Subcommand parsers are of the same class."""

    def error(self, message: str):
        self.exit(2, f"mlperf-ext: error: {self.prog}: {message}; fix: see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    from mlperf_ext.loadgen import LOADGEN_VERSION

    parser = OneLineParser(prog="mlperf-ext", description="MLPerf-LoadGen-compatible inference benchmark "
                                     "with theoretical, micro and sweep tiers")
    parser.add_argument("--version", action="version",
                        version=f"mlperf-ext {__version__} (mlcommons-loadgen {LOADGEN_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    entries = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    if not entries:
        raise ConfigError("no mlperf-ext commands are registered (the package is not installed); fix: "
                          "pip install -e . in the project")
    for entry in entries:
        entry.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except MlperfExtError as exc:
        print(f"mlperf-ext: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args, extra = parser.parse_known_args(argv)
    rest = getattr(args, "rest_into", None)  # options may come before a command's list of names
    if extra and rest and not any(e.startswith("-") for e in extra):
        getattr(args, rest).extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except MlperfExtError as exc:
        print(f"mlperf-ext: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mlperf-ext: interrupted; stored rows are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
