"""`submission package|check` and `audit compliance|verdicts` (found through the mlperf_ext.commands
entry-point group, like every subcommand)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlperf_ext.commands import add_workdir
from mlperf_ext.errors import ConfigError


def _mapping(text: str) -> tuple[str, str]:
    if "=" not in text:
        return "*", text.strip()
    model, official = text.split("=", 1)
    return model.strip(), official.strip()


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", dest="run_ids", action="append", default=[], metavar="RUN_ID",
                   help="a stored performance (or --mode submission) run to take (repeatable; default: every ok one)")
    p.add_argument("--model", dest="models", action="append", default=[], help="only this model name (repeatable)")
    p.add_argument("--backend", dest="backends", action="append", default=[], help="only this backend (repeatable)")
    p.add_argument("--scenario", dest="scenarios", action="append", default=[], help="only this scenario (repeatable)")
    p.add_argument("--benchmark", dest="benchmarks", action="append", type=_mapping, default=[],
                   metavar="[MODEL=]BENCHMARK", help="the official benchmark a model stands for, e.g. "
                   "mlp-w256-fp32=resnet (default: the point's LoadGen model name, when the round knows it)")
    p.add_argument("--version", default="v6.1", help="the submission round's rules (v6.1)")
    add_workdir(p)


def register(sub: argparse._SubParsersAction) -> None:
    submission = sub.add_parser("submission", help="MLPerf submission trees: package stored rows, check a tree")
    ssub = submission.add_subparsers(dest="submission_command", metavar="ACTION", required=True)
    pkg = ssub.add_parser("package", help="stored performance + accuracy (+ TEST01/TEST04) rows -> a v6.1 tree")
    pkg.add_argument("--out", type=Path, required=True, help="the tree to write (its full accuracy logs go to a "
                     "sibling OUT-full-accuracy-logs/)")
    pkg.add_argument("--division", required=True, help="closed or open (mlperf-ext runs the SUT inside LoadGen's "
                     "process, so it has no network-division result)")
    pkg.add_argument("--submitter", required=True, help="the organisation's directory name")
    pkg.add_argument("--system", type=Path, default=None, help="YAML of systems JSON fields the host cannot tell "
                     "(system_name, status, system_type, host_storage_type, networking, cooling, notes ...)")
    pkg.add_argument("--measurements", type=Path, default=None, help="YAML of measurements.json fields the model's "
                     "metadata does not give")
    pkg.add_argument("--force", action="store_true", help="replace an existing --out tree")
    _add_filters(pkg)
    pkg.set_defaults(func=cmd_package)

    check = ssub.add_parser("check", help="check a submission tree: one line per problem; exit 1 when any")
    check.add_argument("tree", type=Path, help="the tree's root (holding closed/, open/ or network/)")
    check.add_argument("--version", default="v6.1", help="the submission round's rules (v6.1)")
    check.add_argument("--kept", type=Path, default=None, help="the full accuracy logs (default: the sibling "
                       "TREE-full-accuracy-logs/ when it exists)")
    check.add_argument("--csv", type=Path, default=None, help="write the per-result summary CSV here")
    check.set_defaults(func=cmd_check)

    audit = sub.add_parser("audit", help="compliance reruns (TEST01, TEST04) and the per-run verdicts in the store")
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    comp = asub.add_parser("compliance", help="rerun stored performance points under TEST01 or TEST04 and verify")
    comp.add_argument("--test", required=True, help="TEST01 or TEST04")
    comp.add_argument("--force", action="store_true", help="rerun even when the compliance run is stored")
    _add_filters(comp)
    comp.set_defaults(func=cmd_compliance)
    ver = asub.add_parser("verdicts", help="judge every stored run of each result with the checker; store it")
    ver.add_argument("--division", required=True, help="closed, open or network")
    _add_filters(ver)
    ver.set_defaults(func=cmd_verdicts)


def _entries(args):
    from audit.package import PackageRequest, select_entries

    req = PackageRequest(workdir=args.workdir, out=Path("."), division="open", submitter="x", version=args.version,
                         benchmarks=dict(args.benchmarks), run_ids=args.run_ids, models=args.models,
                         backends=args.backends, scenarios=args.scenarios)
    entries = select_entries(req)
    if not entries:
        raise ConfigError(f"no stored ok performance row in {args.workdir} matches; fix: run the point first "
                          "(mlperf-ext run ... --mode performance or --mode submission), or widen the filters")
    return entries


def cmd_compliance(args) -> int:
    from audit.compliance import run_compliance
    from audit.rules import COMPLIANCE_TESTS, round_rules

    if args.test not in COMPLIANCE_TESTS:
        raise ConfigError(f"unknown compliance test '{args.test}'; fix: use one of {', '.join(COMPLIANCE_TESTS)}")
    failed = 0
    for entry in _entries(args):
        if args.test not in round_rules(args.version).benchmark(entry.official).compliance_tests:
            print(f"{entry.performance.point.label()}: {entry.official} takes no {args.test}, skipped", file=sys.stderr)
            continue
        outcome = run_compliance(args.workdir, entry, args.test, args.version, force=args.force)
        for v in outcome.verifications:
            verdict = "TEST PASS" if v.passed else "TEST FAIL"
            reasons = f": {'; '.join(v.reasons)}" if v.reasons else ""
            print(f"{args.test} {v.kind} {verdict} for {entry.performance.point.label()} (run {outcome.run.run_id})"
                  f"{reasons}")
            for f in v.findings:  # where our reading of the same logs is stricter than upstream's script
                print(f"    mlperf-ext [{f.rule}] {f.message}")
        print(f"    verify files: {outcome.run.run_dir}")
        failed += not outcome.passed
    return 1 if failed else 0


def cmd_verdicts(args) -> int:
    from audit.verdicts import record_verdicts
    from mlperf_ext.store import ResultsStore
    from tiers.runner import layout

    found = record_verdicts(ResultsStore(layout.store_path(args.workdir)), _entries(args), args.division,
                            args.version)
    for run_id, problems in found.items():
        print(f"{run_id}: {'compliant' if not problems else f'not compliant ({len(problems)} problems)'}")
        for p in problems:
            print(f"    {p}")
    return 0


def cmd_package(args) -> int:
    from audit.package import PackageRequest, package

    req = PackageRequest(workdir=args.workdir, out=args.out, division=args.division, submitter=args.submitter,
                         system_yaml=args.system, version=args.version, benchmarks=dict(args.benchmarks),
                         run_ids=args.run_ids, models=args.models, backends=args.backends, scenarios=args.scenarios,
                         measurements_yaml=args.measurements, force=args.force)
    report = package(req, say=lambda line: print(line, file=sys.stderr))
    print(f"wrote {report.root} ({len(report.entries)} results; full accuracy logs in {report.kept_root})")
    _print_problems(report.problems, report.root)
    return 0


def _print_problems(problems, root: Path) -> None:
    if not problems:
        print("the checker finds no problem")
        return
    warnings = sum(p.is_warning for p in problems)
    print(f"the checker reports {len(problems) - warnings} problem(s) and {warnings} warning(s) (listed in the "
          "tree's src/README.md):")
    for p in problems:
        print(f"  {p}")


def cmd_check(args) -> int:
    from audit.checker.tree import check_tree_report

    if not args.tree.is_dir():
        raise ConfigError(f"'{args.tree}' is not a directory; fix: pass the root of a submission tree")
    report = check_tree_report(args.tree, args.version, args.kept)
    for p in report.problems:
        print(p)
    if args.csv:
        report.write_csv(args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    errors, warnings = len(report.errors), len(report.warnings)
    print(f"{len(report.rows)} result(s), {errors} problem(s), {warnings} warning(s)", file=sys.stderr)
    if warnings and not errors:
        print("only warnings: MLCommons' scripts accept this tree; each warning names a written rule that they "
              "apply more loosely", file=sys.stderr)
    return 1 if errors else 0
