"""The `demo` subcommand (found through the mlperf_ext.commands entry-point group)."""

from __future__ import annotations

import argparse

from mlperf_ext.commands import add_wide, add_workdir


def cmd_demo(args) -> int:
    from demo.run import run_demo

    return run_demo(args.workdir, full=args.full, wide=args.wide)


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="the trained MLP family on both backends in all four scenarios, a "
                                       "submission of one point with its compliance runs, and the HTML report")
    demo.add_argument("--full", action="store_true",
                      help="every variant in all four scenarios, each as accuracy then performance (default: every "
                           "variant in Offline, the 12.5 %% width's variants in the three latency scenarios)")
    add_wide(demo)
    add_workdir(demo)
    demo.set_defaults(func=cmd_demo)
