"""Shared helpers for the power tests: a clock the test moves by hand."""

from __future__ import annotations

import pytest


class ManualClock:
    """time.time() stand-in: returns `now` until the test moves it (readings get exact timestamps)."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(100.0)
