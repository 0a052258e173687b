"""Atomic writes: the old file stays whole when the new one cannot be written."""

from __future__ import annotations

import pytest

from mlperf_ext import files
from mlperf_ext.errors import ConfigError


def test_the_write_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "report.html"
    out.write_text("the previous report")
    assert files.write_atomic(out, "new ü") == len("new ü".encode())
    assert out.read_text(encoding="utf-8") == "new ü"

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken)
    with pytest.raises(ConfigError, match=r"\(No space left on device\); fix:"):
        files.write_atomic(out, "half")
    assert out.read_text(encoding="utf-8") == "new ü" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
