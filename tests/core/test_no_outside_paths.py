"""The project cites its own files and public sources only: no path into another checkout or this machine."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|/work/|shared/notes|ARCHITECTURE\.md")
SOURCES = ("mlperf_ext", "sut", "scenarios", "tiers", "audit", "demo", "benchmarks", "docs", "scripts", ".ci")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ""}


def test_docs_and_code_name_no_path_outside_the_repository():
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]
    files += [f for d in SOURCES for f in (ROOT / d).rglob("*") if f.is_file() and f.suffix in SUFFIXES]
    assert len(files) > 50
    hits = [f"{f.relative_to(ROOT)}:{n}: {line.strip()}" for f in files
            for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, hits
