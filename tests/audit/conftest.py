"""Real LoadGen runs (resnet50's official settings, a null SUT, 200 ms) and the submission tree built
around them, shared by the audit tests. Each run is its own process. The untimed runs go first, all at
once; then the three runs whose throughputs the compliance verifications compare, together, so they
share the machine alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.rules import audit_config_text

from . import tree_builder
from .loadgen_resnet_run import finish, start

BUSY_S = "2.0"  # the SUT's time per Offline query: throughput set by the SUT, far more than by machine load


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("loadgen")
    configs = {}
    for test in ("TEST01", "TEST04"):
        configs[test] = base / f"{test}.audit.config"
        configs[test].write_text(audit_config_text(test, "resnet"))
    plan = {
        "performance": ("performance", "--busy-s", BUSY_S),
        "accuracy": ("accuracy",),
        "TEST01": ("performance", "--busy-s", BUSY_S, "--audit-config", str(configs["TEST01"])),
        "TEST04": ("performance", "--busy-s", BUSY_S, "--audit-config", str(configs["TEST04"])),
        # 24576 null answers take far less than 5 s: LoadGen reports INVALID (minimum duration not met)
        "invalid": ("performance", "--min-duration-ms", "5000"),
        # LoadGen stops at max_duration long before min_duration: an ERROR line ("Max test duration reached")
        "error": (
            "performance",
            "--scenario",
            "SingleStream",
            "--min-duration-ms",
            "2000",
            "--max-duration-ms",
            "100",
            "--expected-latency-ns",
            "10000",
        ),
    }
    done: dict[str, Path] = {}
    for phase in (("accuracy", "invalid", "error"), ("performance", "TEST01", "TEST04")):
        procs = {name: start(plan[name][0], base / name, *plan[name][1:]) for name in phase}
        done.update({name: finish(proc, base / name) for name, proc in procs.items()})
    return done


@pytest.fixture(scope="session")
def base_tree(runs, tmp_path_factory) -> tuple[Path, Path]:
    """A closed-division edge tree: resnet Offline with accuracy, TEST01 and TEST04 (root, kept root)."""
    return tree_builder.build_tree(tmp_path_factory.mktemp("tree"), runs)


@pytest.fixture
def tree(base_tree, tmp_path) -> tuple[Path, Path]:
    """A private copy of the base tree for one test to damage."""
    return tree_builder.copy_tree(*base_tree, tmp_path)
