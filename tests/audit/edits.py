"""Edits a forger would make to LoadGen's logs: change one detail-log value, one summary line."""

from __future__ import annotations

import json
from pathlib import Path

MARKER = ":::MLLOG "


def detail_value(path: Path, key: str):
    for line in Path(path).read_text().splitlines():
        if line.startswith(MARKER):
            entry = json.loads(line[len(MARKER) :])
            if entry["key"] == key:
                return entry["value"]
    raise KeyError(key)


def set_detail_value(path: Path, key: str, value) -> None:
    """Rewrite the first entry of `key` with a new value, keeping LoadGen's line format."""
    path = Path(path)
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith(MARKER):
            entry = json.loads(line[len(MARKER) :])
            if entry["key"] == key:
                entry["value"] = value
                lines[i] = MARKER + json.dumps(entry) + "\n"
                path.write_text("".join(lines))
                return
    raise KeyError(key)


def insert_detail_line(path: Path, before_key: str, line: str) -> None:
    path = Path(path)
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, text in enumerate(lines) if f'"key": "{before_key}"' in text)
    lines.insert(at, line if line.endswith("\n") else line + "\n")
    path.write_text("".join(lines))


def set_summary_line(path: Path, key: str, value: str) -> None:
    """Rewrite the summary line `key ... : old` as `key ... : value` (LoadGen's padding kept)."""
    path = Path(path)
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        head, sep, _old = line.partition(":")
        if sep and head.strip().lstrip("* ").strip() == key:
            lines[i] = f"{head}: {value}\n"
            path.write_text("".join(lines))
            return
    raise KeyError(key)


def summary_value(path: Path, key: str) -> str:
    for line in Path(path).read_text().splitlines():
        head, sep, value = line.partition(":")
        if sep and head.strip().lstrip("* ").strip() == key:
            return value.strip()
    raise KeyError(key)
