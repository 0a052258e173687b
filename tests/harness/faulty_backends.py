"""Backends that fail on purpose, to test that a crashing or hanging child becomes a failure row.

They are real backends loaded through the `module:Class` backend reference, so the launcher, child
process and LoadGen run exactly as for any backend.
"""

from __future__ import annotations

import os
import sys
import time

from sut.null import NullBackend


class _ArmedAfterCompute(NullBackend):
    """Behaves until the compute timing (which precedes the LoadGen run) is over, then misbehaves."""

    _armed = False

    def time_compute(self, batch, iterations):
        self._armed = False
        out = super().time_compute(batch, iterations)
        self._armed = True  # fail on the samples LoadGen issues
        return out


class AbortingBackend(_ArmedAfterCompute):
    """Dies like a native runtime crash: abort() in the middle of the LoadGen run."""

    name = "aborting"

    def infer(self, batch, stream=0):
        if self._armed:
            print("AbortingBackend: simulated native crash", file=sys.stderr, flush=True)
            os.abort()
        return super().infer(batch, stream)



class HangingBackend(_ArmedAfterCompute):
    """Never returns from a batch once LoadGen runs: LoadGen would wait forever for the samples."""

    name = "hanging"

    def infer(self, batch, stream=0):
        if self._armed:
            while True:
                time.sleep(3600)
        return super().infer(batch, stream)



class RaisingBackend(_ArmedAfterCompute):
    """Raises inside infer during the run: the adapter must complete the samples and record it."""

    name = "raising"

    def infer(self, batch, stream=0):
        if self._armed:
            raise ValueError("simulated inference failure")
        return super().infer(batch, stream)

