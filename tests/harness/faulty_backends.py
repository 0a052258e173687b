"""Backends that fail on purpose, to test that a crashing or hanging child becomes a failure row.

They are real backends loaded through the `module:Class` backend reference, so the launcher, child
process and LoadGen run exactly as for any backend. They misbehave on the system path only (`infer`,
which only the LoadGen run calls); their compute path is the null backend's.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from sut.null import NullBackend


class AbortingBackend(NullBackend):
    """Dies like a native runtime crash: abort() in the middle of the LoadGen run."""

    name = "aborting"

    def infer(self, batch, stream=0):
        print("AbortingBackend: simulated native crash", file=sys.stderr, flush=True)
        os.abort()


class HangingBackend(NullBackend):
    """Never returns from a batch once LoadGen runs: LoadGen would wait forever for the samples."""

    name = "hanging"

    def infer(self, batch, stream=0):
        while True:
            time.sleep(3600)


class RaisingBackend(NullBackend):
    """Raises inside infer during the run: the adapter must complete the samples and record it."""

    name = "raising"

    def infer(self, batch, stream=0):
        raise ValueError("simulated inference failure")


class SlowSystemBackend(NullBackend):
    """A device behind a link: the system path copies each batch over (a counted host-side copy and a
    fixed transfer time), the compute path only executes on what is already resident. The fake stands
    for an accelerator this machine lacks and runs the same harness path a real one would."""

    name = "slow-system"
    TRANSFER_S = 0.002

    def infer(self, batch, stream=0):
        np.copy(batch)  # host -> device
        time.sleep(self.TRANSFER_S)
        return super().infer(batch, stream)


class NotABackend:
    """A class that does not implement the Backend protocol."""


class SlowComputeBackend(NullBackend):
    """Its compute path is far slower than its system path (a boundary drawn wrongly): the automatic
    Offline hint it yields is far too low, and the system figure exceeds the compute figure."""

    name = "slow-compute"
    COMPUTE_S = 0.001

    def compute_step(self, batch, stream=0):
        def step() -> float:
            time.sleep(self.COMPUTE_S)
            return self.COMPUTE_S

        return step
