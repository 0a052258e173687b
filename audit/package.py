"""Stored rows -> an MLPerf v6.1 submission tree, built beside the destination and moved in whole.

For each result (audit.selection): LoadGen's logs copied unchanged, accuracy.txt as the run wrote
it, TEST01/TEST04 verified again on the logs in the tree, the accuracy logs truncated as upstream's
truncate_accuracy_log.py does (the full ones kept in a sibling directory), measurements.json from the
zoo's metadata (or the user's YAML), the user.conf lines the runs applied over mlperf.conf, and a
README with the commands that reproduce it. systems/<id>.json comes from audit.system. The checker
then reads the finished tree; its findings are written into src/README.md, and every packaged run's
own verdict goes into the store (audit.verdicts).

A `--mode submission` row (LoadGen's SubmissionRun) is copied into both accuracy/ and performance/run_1
from its own logs (audit.selection says why that is sound). Only the closed and open divisions are
packaged: a network-division result needs LoadGen to reach the SUT over the network, and mlperf-ext runs
the SUT inside LoadGen's own process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from audit import layout
from audit.checker.problems import Problem
from audit.checker.tree import TreeReport, check_tree_report
from audit.compliance import loadgen_dir, verify, write_test01_baseline
from audit.rules import MEASUREMENTS_REQUIRED_FIELDS, round_rules
from audit.selection import ResultRuns, runs_no_model, select_results
from audit.system import host_facts, system_description
from audit.truncate import truncate_accuracy_dir
from audit.verdicts import record_verdicts
from mlperf_ext import __version__
from mlperf_ext.errors import ConfigError
from mlperf_ext.logs import DETAIL_NAME, SUMMARY_NAME
from mlperf_ext.result import PointResult
from mlperf_ext.store import ResultsStore
from mlperf_ext.yaml_file import read_yaml
from tiers.runner import layout as runs_layout

#: the divisions this packager writes (audit.rules.DIVISIONS, which the checker reads, also has network)
PACKAGEABLE_DIVISIONS = ("closed", "open")
#: why no network-division tree can come from mlperf-ext's runs, and what to do instead
NETWORK_REFUSAL = ("--division network is for a SUT that LoadGen reaches over the network (its network harness), "
                   "but mlperf-ext runs the SUT inside LoadGen's own process, so its runs cannot be a network-division "
                   "result; fix: use --division closed or --division open")

#: TestSettings attribute -> (user.conf key, factor) (loadgen/test_settings_internal.cc, FromConfig)
CONF_KEYS = {
    "min_duration_ms": ("min_duration", 1), "max_duration_ms": ("max_duration", 1),
    "min_query_count": ("min_query_count", 1), "max_query_count": ("max_query_count", 1),
    "performance_sample_count_override": ("performance_sample_count_override", 1),
    "server_target_qps": ("target_qps", 1), "offline_expected_qps": ("target_qps", 1),
    "server_target_latency_ns": ("target_latency", 1e-6),
    "single_stream_expected_latency_ns": ("target_latency", 1e-6),
    "multi_stream_expected_latency_ns": ("target_latency", 1e-6),
    "server_target_latency_percentile": ("target_latency_percentile", 100),
    "multi_stream_target_latency_percentile": ("target_latency_percentile", 100),
    "single_stream_target_latency_percentile": ("target_latency_percentile", 100),
    "multi_stream_samples_per_query": ("samples_per_query", 1),
}


@dataclass
class PackageRequest:
    workdir: Path
    out: Path
    division: str
    submitter: str
    system_yaml: Path | None = None
    version: str = "v6.1"
    benchmarks: dict[str, str] = field(default_factory=dict)  # model name (or '*') -> official benchmark
    run_ids: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    measurements_yaml: Path | None = None
    force: bool = False


@dataclass
class PackageReport:
    root: Path
    kept_root: Path
    entries: list[ResultRuns]
    check: TreeReport

    @property
    def problems(self) -> list[Problem]:
        return self.check.problems


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "system"


def _validate_division(division: str) -> None:
    if division == "network":
        raise ConfigError(NETWORK_REFUSAL)
    if division not in PACKAGEABLE_DIVISIONS:
        raise ConfigError(f"unknown division '{division}'; fix: use one of {', '.join(PACKAGEABLE_DIVISIONS)}")


def _validate(req: PackageRequest) -> None:
    _validate_division(req.division)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", req.submitter or ""):
        raise ConfigError(f"submitter '{req.submitter}' must be a plain name (letters, digits, _ . -); fix: e.g. "
                          "--submitter MyOrg")
    round_rules(req.version)
    if not Path(req.out).parent.is_dir():
        raise ConfigError(f"the parent of --out '{req.out}' does not exist; fix: create it first")
    for target in (Path(req.out), layout.default_kept_root(req.out)):
        if target.exists() and not req.force:
            raise ConfigError(f"'{target}' exists; fix: choose another --out, or add --force to replace it")


def selected_rows(req: PackageRequest) -> list[PointResult]:
    """The ok rows the filters keep (--run names performance runs: select_entries applies it)."""
    path = runs_layout.store_path(req.workdir)
    if not path.is_file():
        raise ConfigError(f"'{req.workdir}' holds no results store; fix: run points into it first (mlperf-ext run "
                          "--workdir ...)")
    rows = ResultsStore(path, create=False).results(status="ok")
    if req.run_ids:
        wanted = set(req.run_ids)
        chosen = [r for r in rows if r.run_id in wanted]
        missing = wanted - {r.run_id for r in chosen}
        if missing:
            raise ConfigError(f"run {sorted(missing)[0]} is not an ok row of {req.workdir}; fix: pick one from "
                              "mlperf-ext results --workdir ...")
    for values, name in ((req.models, "model_name"), (req.backends, "backend"), (req.scenarios, "scenario")):
        if values:
            rows = [r for r in rows if getattr(r.point, name) in values]
    return rows


def select_entries(req: PackageRequest) -> list[ResultRuns]:
    """The results the request's rows form; --run limits which rows may be a performance run."""
    return select_results(selected_rows(req), round_rules(req.version), req.benchmarks,
                          performance_ids=set(req.run_ids) or None)


def _entries(req: PackageRequest) -> list[ResultRuns]:
    rules = round_rules(req.version)
    entries = select_entries(req)
    if not entries:
        raise ConfigError(f"no stored ok performance row in {req.workdir} matches; fix: run the point with --mode "
                          "submission (or with --mode performance and --mode accuracy)")
    for e in entries:
        no_model = runs_no_model(e.performance)
        if no_model:
            raise ConfigError(f"{e.performance.point.label()}: {no_model}, so it is no submission; fix: package runs "
                              "of a backend that runs the model (filter with --backend)")
        if e.accuracy is None:
            raise ConfigError(f"{e.performance.point.label()} has no accuracy run of the same deployment; fix: run "
                              "the same point with --mode accuracy")
        needed = rules.benchmark(e.official).compliance_tests if req.division == "closed" else ()
        for test in needed:
            if test not in e.compliance:
                raise ConfigError(f"{e.performance.point.label()} has no {test} run; fix: mlperf-ext audit compliance "
                                  f"--test {test} --run {e.performance.run_id} --workdir {req.workdir}")
    return entries


def system_id(system_name: str, backend: str) -> str:
    return f"{_slug(system_name)}-{backend}"


def _copy(src_dir: Path, dst_dir: Path, *names: str) -> None:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(src_dir / name, dst_dir / name)


def _runtime(r: PointResult) -> str:
    rt = r.runtime
    return f"{rt.name} {rt.version}" if rt and rt.name else r.point.backend


def measurements(entry: ResultRuns, given: dict) -> dict:
    """measurements.json: the user's YAML where it says, else the zoo's metadata beside the model."""
    meta_path = Path(entry.performance.point.model).with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    producer, training = meta.get("producer") or {}, meta.get("training") or {}
    dtype = (meta.get("input") or {}).get("dtype")
    derived = {
        "input_data_types": {"float32": "fp32", "float16": "fp16", "int8": "int8", "uint8": "uint8"}.get(dtype, dtype),
        "retraining": (f"Yes: {training.get('kind', 'trained')} by the mlperf-ext zoo" if training else None),
        "starting_weights_filename": (f"{meta['name']}.onnx (sha256 {meta['sha256']})"
                                      if meta.get("name") and meta.get("sha256") else None),
        "weight_data_types": producer.get("weights") or meta.get("precision"),
        "weight_transformations": producer.get("recipe") or ("none" if meta.get("precision") == "fp32" else None),
    }
    out = {**{k: v for k, v in derived.items() if v}, **given}
    missing = [k for k in MEASUREMENTS_REQUIRED_FIELDS if not out.get(k)]
    if missing:
        raise ConfigError(f"measurements.json of {entry.model_name} needs {', '.join(missing)}, which the model's "
                          "metadata does not give; fix: write them in a YAML passed with --measurements")
    out["mlperf_ext_model"] = entry.model_name
    return out


def user_conf_text(r: PointResult) -> str:
    """The settings the run applied over LoadGen's embedded mlperf.conf, as user.conf lines."""
    point = r.point
    lines = [f"# settings this result's runs applied over LoadGen's embedded mlperf.conf (mlperf-ext {__version__}, "
             f"profile {point.profile})"]
    if point.user_conf and Path(point.user_conf).is_file():
        lines.append(f"# from {Path(point.user_conf).name}:")
        lines += [ln for ln in Path(point.user_conf).read_text().splitlines() if ln.strip()]
    applied = dict(r.settings.auto if r.settings else {})
    requested = r.settings.requested if r.settings else {}
    for key in (point.settings or {}):
        applied[key] = point.settings[key]
    if point.profile == "quick":
        from mlperf_ext.loadgen import QUICK_SETTINGS

        for key in QUICK_SETTINGS[point.scenario]:
            applied.setdefault(key, requested.get(key, QUICK_SETTINGS[point.scenario][key]))
    for key, value in sorted(applied.items()):
        if key in CONF_KEYS:
            name, factor = CONF_KEYS[key]
            number = value * factor
            text = f"{int(number)}" if float(number).is_integer() else f"{number:g}"
            lines.append(f"{point.mlperf_model}.{point.scenario}.{name} = {text}")
        else:
            lines.append(f"# set through LoadGen's TestSettings (no user.conf key): {key} = {value}")
    return "\n".join(lines) + "\n"


def _cli_model(r: PointResult) -> str:
    return r.point.model_name if r.variant and r.variant.family else r.point.model


def power_left_out(run: PointResult) -> str | None:
    """Why a run's measured power is not in the tree (None when it measured none): an MLPerf power result
    is a SPEC PTDaemon session's files (power/, ranging/, spl.txt; audit.checker.power), which no meter of
    this tool produces."""
    if run.power is None or run.power.meter == "none":
        return None
    return (f"power left out of the tree: run {run.run_id} measured it with {run.power.meter}, not SPEC PTDaemon "
            "through the MLPerf power workflow; its figures stay in the results store")


def _main_runs(entry: ResultRuns) -> list[PointResult]:
    """The distinct runs behind accuracy/ and performance/ (one for a SubmissionRun row), accuracy first."""
    if entry.one_run:
        return [entry.performance]
    return [r for r in (entry.accuracy, entry.performance) if r is not None]


def _runs_list(entry: ResultRuns) -> str:
    """The README's list of the runs each directory came from."""
    if entry.one_run:
        main = [("performance and accuracy (one LoadGen SubmissionRun: its accuracy phase, then its performance "
                 "phase)", entry.performance)]
    else:
        main = [("performance", entry.performance), ("accuracy", entry.accuracy)]
    return "\n".join(f"- {what}: run {r.run_id}" for what, r in main + sorted(entry.compliance.items()))


def reproduce_commands(entry: ResultRuns, workdir: str = "W") -> list[str]:
    p = entry.performance.point
    opts = [f"--model {_cli_model(entry.performance)}", f"--dataset {p.dataset}", f"--backend {p.backend}",
            f"--scenario {p.scenario}", f"--batch {p.batch}", f"--streams {p.streams}", f"--profile {p.profile}"]
    if p.threads:
        opts.append(f"--threads {p.threads}")
    if p.device != "cpu":
        opts.append(f"--device {p.device}")
    if p.exec_precision != "model":
        opts.append(f"--exec-precision {p.exec_precision}")
    if p.operating_mode:
        opts.append(f"--operating-mode {p.operating_mode}")
    opts += [f"--runtime-option {k}={v}" for k, v in sorted(p.runtime_options.items())]
    opts += [f"--setting {k}={v}" for k, v in sorted(p.settings.items())]
    base = "mlperf-ext run " + " ".join(opts) + f" --workdir {workdir}"
    cmds = [f"{base} --mode {r.point.mode}" for r in _main_runs(entry)]
    cmds += [f"mlperf-ext audit compliance --test {t} --model {p.model_name} --backend {p.backend} --scenario "
             f"{p.scenario} --workdir {workdir}" for t in sorted(entry.compliance)]
    return cmds


def _scenario_readme(entry: ResultRuns, system: str, req: PackageRequest) -> str:
    perf = entry.performance
    cmds = "\n".join(reproduce_commands(entry))
    runs = _runs_list(entry)
    return (f"# {entry.model_name} · {entry.scenario} · {system}\n\n"
            f"Measured with mlperf-ext {__version__} on {_runtime(perf)} ({perf.point.backend}, device "
            f"{perf.point.device}), batch {perf.point.batch}, threads {perf.point.threads or 'runtime default'}, "
            f"streams {perf.point.streams}, LoadGen profile `{perf.point.profile}`; it stands for the "
            f"`{entry.official}` benchmark.\n\n"
            f"## Reproduce\n\nWith mlperf-ext {__version__} installed (`pip install -e .` in its repository):\n\n"
            f"```\n{cmds}\n"
            f"mlperf-ext submission package --workdir W --division {req.division} --submitter {req.submitter} "
            f"--system system.yaml --out submission\n```\n\n## Runs\n\n{runs}\n")


def _write_result(entry: ResultRuns, paths: layout.ScenarioPaths, kept: Path, req: PackageRequest,
                  given_measurements: dict) -> None:
    perf, acc = entry.performance, entry.accuracy
    _copy(loadgen_dir(perf), paths.performance_run, DETAIL_NAME, SUMMARY_NAME)
    _copy(loadgen_dir(acc), paths.accuracy_dir, DETAIL_NAME, SUMMARY_NAME, layout.ACCURACY_JSON_NAME)
    shutil.copyfile(Path(acc.run_dir) / runs_layout.ACCURACY_FILE, paths.accuracy_dir / layout.ACCURACY_TXT_NAME)
    accuracy_dirs = [paths.accuracy_dir]
    for test, run in sorted(entry.compliance.items()):
        _copy(loadgen_dir(run), paths.test_performance_run(test), DETAIL_NAME, SUMMARY_NAME)
        if test == "TEST01":
            _copy(loadgen_dir(run), paths.test_accuracy_dir(test), layout.ACCURACY_JSON_NAME)
            shutil.copyfile(Path(run.run_dir) / runs_layout.ACCURACY_FILE,
                            paths.test_accuracy_dir(test) / layout.ACCURACY_TXT_NAME)
            accuracy_dirs.append(paths.test_accuracy_dir(test))
        for verification in verify(test, entry, run):  # again, on the logs as they are now
            verification.write(paths.test_dir(test))
            if test == "TEST01" and verification.kind == "accuracy" and not verification.passed:
                write_test01_baseline(entry, run, paths.test_accuracy_dir(test))
    for acc_dir in accuracy_dirs:  # after verification, which needs the full logs
        truncate_accuracy_dir(acc_dir, layout.kept_accuracy_log(kept, acc_dir.relative_to(paths.root)))
    paths.measurements.write_text(json.dumps(measurements(entry, given_measurements), indent=2) + "\n")
    paths.user_conf.write_text(user_conf_text(perf))
    paths.readme.write_text(_scenario_readme(entry, paths.system, req))


def _where(path: Path, report: TreeReport) -> str:
    """A problem's file relative to the tree (or to the kept logs beside it), so the text stays true
    after the staging directory is moved into place."""
    for base, label in ((report.root, ""), (report.kept_root, f"{Path(report.kept_root).name}/" if report.kept_root else "")):
        if base is not None and Path(path).is_relative_to(base):
            return label + str(Path(path).relative_to(base))
    return str(path)


def _src_readme(req: PackageRequest, entries: list[ResultRuns], report: TreeReport) -> str:
    found = "\n".join(f"- `{p.rule}`{' (warning: a written rule the scripts apply more loosely)' if p.is_warning else ''}"
                      f" {p.message} ({_where(p.path, report)})" for p in report.problems)
    quick = any(e.performance.point.profile == "quick" for e in entries)
    why = ("\nThese runs used the `quick` LoadGen profile (short runs for exploration), so the duration and "
           "query-count rules cannot pass; the dataset coverage and performance-sample count are measured "
           "against the mapped benchmark's dataset.\n" if quick else "")
    return (f"# Source\n\nPackaged by mlperf-ext {__version__} from the results store of `{req.workdir.name}`; "
            f"`points.json` holds every packaged run's point and run id. Each scenario's README.md has the "
            f"commands that reproduce it.\n\n## What the checker reports on this tree\n\n"
            f"{found or 'No problem.'}\n{why}")


def package(req: PackageRequest, say: Callable[[str], None] = print) -> PackageReport:
    """Build the tree (and its kept full accuracy logs) for the selected rows; see the module docstring."""
    _validate(req)
    entries = _entries(req)
    given = {}
    if req.measurements_yaml is not None:
        data = read_yaml(req.measurements_yaml, "measurements")
        if not isinstance(data, dict):
            raise ConfigError(f"measurements '{req.measurements_yaml}' must be a mapping of field: value; fix: "
                              "write 'weight_data_types: int8' lines")
        given = {k: str(v) for k, v in data.items()}
    out = Path(req.out).resolve()
    kept_final = layout.default_kept_root(out)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    root, kept = staging / out.name, staging / kept_final.name
    shutil.rmtree(staging, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        by_backend: dict[str, list[ResultRuns]] = {}
        for e in entries:
            by_backend.setdefault(e.performance.point.backend, []).append(e)
        for backend, group in by_backend.items():
            accelerators = sorted({r.runtime.device for e in group for r in [e.performance]
                                   if r.point.device != "cpu" and r.runtime and r.runtime.device})
            facts = host_facts(sorted({_runtime(e.performance) for e in group}), Path(req.workdir), accelerators)
            desc = system_description(req.division, req.submitter, req.system_yaml, facts)
            sid = system_id(desc["system_name"], backend)
            path = layout.system_json_path(root, req.division, req.submitter, sid)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(desc, indent=2) + "\n")
            for e in group:
                bench_dir = e.official if req.division != "open" else e.model_name
                paths = layout.scenario_paths(root, req.division, req.submitter, sid, bench_dir, e.scenario)
                say(f"packaging {e.model_name} {backend} {e.scenario} -> {paths.relative}")
                power_note = power_left_out(e.performance)
                if power_note:
                    say(f"  {power_note}")
                _write_result(e, paths, kept, req, given)
        if req.division == "open":
            mapping = {e.model_name: e.official for e in entries}
            layout.model_mapping_path(root, req.division, req.submitter).write_text(json.dumps(mapping, indent=2) + "\n")
        src = layout.src_dir(root, req.division, req.submitter)
        src.mkdir(parents=True, exist_ok=True)
        points = [{"role": role, "run_id": r.run_id, "point": r.point.to_dict()}
                  for e in entries for role, r in [("performance", e.performance), ("accuracy", e.accuracy)]
                  + sorted(e.compliance.items())]
        (src / "points.json").write_text(json.dumps({"mlperf_ext": __version__, "runs": points}, indent=1) + "\n")
        for target in (out, kept_final):
            if target.exists():
                shutil.rmtree(target)
        os.replace(root, out)
        os.replace(kept, kept_final) if kept.exists() else kept_final.mkdir()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    final = check_tree_report(out, req.version, kept_final)
    # the findings go into src/README.md, which no check reads (the checker only needs src/ to exist)
    (layout.src_dir(out, req.division, req.submitter) / "README.md").write_text(_src_readme(req, entries, final))
    record_verdicts(ResultsStore(runs_layout.store_path(req.workdir)), entries, req.division, req.version)
    return PackageReport(root=out, kept_root=kept_final, entries=entries, check=final)
