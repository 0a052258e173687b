"""The map's arrows (docs/architecture.md) run one way: demo -> audit -> tiers -> scenarios, sut ->
mlperf_ext. Every import in a package's source, lazy ones inside functions included, is checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: package -> the top-level packages it must never import
FORBIDDEN = {
    "mlperf_ext": {"tiers", "audit", "sut", "scenarios", "demo"},
    "sut": {"tiers", "audit", "demo"},
    "scenarios": {"tiers", "audit", "demo"},
    "tiers": {"audit", "demo"},
    "audit": {"demo"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add((node.module.split(".")[0], node.lineno))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    wrong = [f"{f.relative_to(ROOT)}:{line} imports {name}" for f in files
             for name, line in sorted(imported_packages(f)) if name in FORBIDDEN[package]]
    assert not wrong, wrong
