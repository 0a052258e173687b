"""Backends that fail on purpose, to test that a crashing or hanging child becomes a failure row.

They are real backends loaded through the `module:Class` backend reference, so the launcher, child
process and LoadGen run exactly as for any backend. They misbehave on the system path only (`infer`,
which only the LoadGen run calls); their compute path is the null backend's (ONNX Runtime's for the one
that injects a load).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from sut.null import NullBackend
from sut.onnxruntime import OnnxRuntimeBackend
from sut.openvino import OpenVinoBackend


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


#: a competing load: a process that keeps one CPU busy for the given seconds, then exits on its own
BURNER = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


class InjectsLoad:
    """A runtime with a competing load that starts mid-run: the first system-path batch (LoadGen is
    running) starts busy processes, three per CPU this process may use, so that the measured thread gets a
    third of a core or less (N cores shared by 3N + 1 busy threads) however many cores the host has. They
    outlive the run and the compute timing after it and end when the backend closes (LOAD_S bounds them
    should it never close). The load is real (other processes on the same cores); only its start is arranged."""

    LOAD_S = 300.0
    BURNERS_PER_CPU = 3

    def infer(self, batch, stream=0):
        if not getattr(self, "_burners", None):
            self._burners = [subprocess.Popen([sys.executable, "-c", BURNER, str(self.LOAD_S)])
                             for _ in range(self.BURNERS_PER_CPU * len(os.sched_getaffinity(0)))]
        return super().infer(batch, stream)

    def close(self) -> None:
        for burner in getattr(self, "_burners", None) or []:
            burner.kill()
            burner.wait()
        super().close()


class LoadInjectingBackend(InjectsLoad, OnnxRuntimeBackend):
    name = "load-injecting"


class LoadInjectingOpenVinoBackend(InjectsLoad, OpenVinoBackend):
    name = "load-injecting-openvino"
