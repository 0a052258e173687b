"""SUTs for the compliance tests: the real ONNX Runtime backend behind a fake device with a fixed
time per batch (so the throughputs TEST01/TEST04 compare are set by the device, not by whatever else
this shared machine runs), and two such devices that cheat the way the tests are built to catch.

They are loaded through the `module:Class` backend reference, so the point runner, the child process
and LoadGen run exactly as for any backend.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from sut.onnxruntime import OnnxRuntimeBackend

DEVICE_S = 0.005  # the fake device's time per batch: long enough that sleep overshoot on a busy host stays a few %


class FakeSteadyDevice(OnnxRuntimeBackend):
    """Answers what ONNX Runtime computes, DEVICE_S after it is asked; its compute step takes the same
    device time, so the harness's hints (the expected latency LoadGen sizes its query list and TEST01's
    accuracy-log sampling by) come from the device as they would on hardware."""

    name = "fake-steady"

    def infer(self, batch, stream=0):
        out = super().infer(batch, stream)
        time.sleep(DEVICE_S)
        return out

    def compute_step(self, batch, stream=0):
        run = super().compute_step(batch, stream)
        clock = time.perf_counter_ns

        def step() -> float:
            start = clock()
            run()
            time.sleep(DEVICE_S)
            return (clock() - start) * 1e-9

        step.keep_alive = run
        return step


class FakeCheatingDevice(FakeSteadyDevice):
    """Answers honestly in accuracy mode and skips the work in performance mode (it reads the mode from
    the run's point.json in its working directory): what TEST01 is for."""

    name = "fake-cheating"

    def cheating(self) -> bool:
        if not hasattr(self, "_cheat"):
            point = Path("point.json")
            self._cheat = point.is_file() and json.loads(point.read_text()).get("mode") == "performance"
        return self._cheat

    def infer(self, batch, stream=0):
        if self.cheating():
            return np.zeros((len(batch), 10), dtype=np.float32)
        return super().infer(batch, stream)

    def compute_step(self, batch, stream=0):
        # skipping the device in performance mode makes its compute fast too
        if self.cheating():
            return OnnxRuntimeBackend.compute_step(self, batch, stream)
        return super().compute_step(batch, stream)


class FakeCachingDevice(FakeSteadyDevice):
    """Returns the previous answer at once when asked the same batch again: what TEST04 is for."""

    name = "fake-caching"

    def infer(self, batch, stream=0):
        key = np.ascontiguousarray(batch).tobytes()
        if getattr(self, "_last", None) is not None and self._last[0] == key:
            return self._last[1]
        out = super().infer(batch, stream)
        self._last = (key, out)
        return out

    def compute_step(self, batch, stream=0):
        # the compute path asks for one batch again and again: the cache answers it, as on such hardware
        clock = time.perf_counter_ns

        def step() -> float:
            start = clock()
            self.infer(batch, stream)
            return (clock() - start) * 1e-9

        return step
