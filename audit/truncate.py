"""MLPerf's accuracy-log truncation, and the hash that lets anyone check the cut log against the full one.

What github.com/mlcommons/inference tools/submission/truncate_accuracy_log.py does to each
`accuracy/` directory: append `hash=<sha256 of the full mlperf_log_accuracy.json>` to accuracy.txt
(after an empty line), then cut the JSON to its first and last 4096 characters joined by
"\\n\\n...\\n\\n" (the checker then requires at most 10 KiB). The full log is kept elsewhere (its
`--backup`); here the caller names where, and the checker compares the hash against that copy.

Every log of 4096 bytes or more is cut, as upstream's `truncate_file` does (it returns early only when
`size < VIEWABLE_SIZE`): a log of 4096-8198 bytes comes out *larger* than it went in (head and tail
overlap), 8199 bytes in all, which a tree that upstream truncated holds, so the checker must expect
it. A log under 4096 bytes stays whole. LoadGen writes the log in ASCII (hex payloads), so characters
and bytes are the same thing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from audit.layout import ACCURACY_JSON_NAME, ACCURACY_TXT_NAME
from audit.rules import ACCURACY_VIEWABLE_SIZE, HASH_LINE_PATTERN, MAX_ACCURACY_LOG_SIZE
from mlperf_ext.errors import ConfigError
from mlperf_ext.logs import LogParseError

ELLIPSIS = b"\n\n...\n\n"  # what truncate_accuracy_log.py writes between head and tail
_HASH_LINE = re.compile(HASH_LINE_PATTERN)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def truncated(data: bytes) -> bytes:
    """The bytes the tree keeps of a full accuracy log."""
    if len(data) < ACCURACY_VIEWABLE_SIZE:  # truncate_accuracy_log.py truncate_file
        return data
    return data[:ACCURACY_VIEWABLE_SIZE] + ELLIPSIS + data[-ACCURACY_VIEWABLE_SIZE:]


def is_truncated(data: bytes) -> bool:
    """Whether these bytes are a cut log (head, the ellipsis, tail) rather than a whole one."""
    return (
        len(data) == 2 * ACCURACY_VIEWABLE_SIZE + len(ELLIPSIS)
        and data[ACCURACY_VIEWABLE_SIZE : ACCURACY_VIEWABLE_SIZE + len(ELLIPSIS)] == ELLIPSIS
    )


def read_hash(accuracy_txt: Path) -> str | None:
    """The hash an accuracy.txt carries (the first `hash=...` line, as accuracy_check.py reads it)."""
    path = Path(accuracy_txt)
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _HASH_LINE.match(line.strip())
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class TruncationRecord:
    """What truncation did to one accuracy directory."""

    accuracy_json: Path
    full_sha256: str
    full_size: int
    truncated_size: int
    kept_copy: Path | None

    @property
    def fits(self) -> bool:
        return self.truncated_size <= MAX_ACCURACY_LOG_SIZE


def truncate_accuracy_dir(accuracy_dir: Path, kept_copy: Path | None) -> TruncationRecord:
    """Hash, keep (when `kept_copy` is given) and cut the mlperf_log_accuracy.json of one directory.

    accuracy.txt must exist already (it carries the accuracy line; upstream stops with "missing,
    generate to continue") and must not carry a hash yet: a second pass would hash the cut log.
    """
    accuracy_dir = Path(accuracy_dir)
    log = accuracy_dir / ACCURACY_JSON_NAME
    txt = accuracy_dir / ACCURACY_TXT_NAME
    if not log.is_file():
        raise LogParseError(
            f"'{log}' does not exist; fix: copy the accuracy run's mlperf_log_accuracy.json "
            "into the accuracy directory before truncating"
        )
    if not txt.is_file():
        raise LogParseError(
            f"'{txt}' does not exist; fix: write the accuracy script's output there first "
            "(the hash line is appended to it)"
        )
    if read_hash(txt) is not None:
        raise ConfigError(
            f"'{txt}' already has a hash line, so '{log}' may be cut already; fix: rebuild the "
            "directory from the run's full logs and truncate once"
        )
    data = log.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if kept_copy is not None:
        kept_copy = Path(kept_copy)
        kept_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, kept_copy)
    with txt.open("a", encoding="utf-8") as f:
        f.write(f"\nhash={digest}\n")
    cut = truncated(data)
    if cut is not data:
        tmp = log.with_name(log.name + ".tmp")
        tmp.write_bytes(cut)
        os.replace(tmp, log)
    return TruncationRecord(log, digest, len(data), len(cut), kept_copy)


__all__ = [
    "ELLIPSIS",
    "TruncationRecord",
    "is_truncated",
    "read_hash",
    "sha256_of",
    "truncate_accuracy_dir",
    "truncated",
]
