"""`models list` on a terminal: every model's facts keep their width and the long "produced by" text gives
way (cut with an ellipsis, or left out with a caption when there is no room); `--wide` shows it whole."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mlperf_ext.tables import print_models
from mlperf_ext.zoo import registry


def _printed(width: int, tmp_path, wide: bool = False) -> str:
    out = io.StringIO()
    print_models(registry.list_models(), tmp_path, console=Console(file=out, width=width), wide=wide)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_names_and_facts_are_whole_at_every_width(width, tmp_path):
    text = _printed(width, tmp_path)
    assert max(len(line) for line in text.splitlines()) <= width
    for info in registry.list_models():
        assert f" {info.name} " in text, info.name
        assert f" {info.family} " in text


def test_the_description_gives_way_and_wide_shows_it_whole(tmp_path):
    longest = max((m.description for m in registry.list_models()), key=len)
    assert "produced by" in _printed(120, tmp_path) and longest not in _printed(120, tmp_path)
    assert "not shown at this width" in _printed(80, tmp_path)
    assert longest.split()[0] in _printed(400, tmp_path, wide=True)
