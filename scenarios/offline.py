"""Offline: one query holding every sample, split into batches run by `streams` workers.

The workers are native (scenarios/native.py): LoadGen hands the query to the SUT in C++, so the
millions of samples of a query never become Python lists. Without the extension: inline with one stream,
else a Python stream pool."""

from __future__ import annotations

from scenarios.base import (
    MAX_OFFLINE_QPS,
    OFFLINE_QPS_MARGIN,
    ComputeEstimate,
    DispatchConfig,
    Inline,
    RunBatch,
    RunOne,
    StreamPool,
)
from scenarios.native import native_or_python


class Offline:
    name = "Offline"

    def nominal_batch(self, config: DispatchConfig) -> int:
        return config.batch

    def auto_settings(self, estimate: ComputeEstimate, config: DispatchConfig) -> dict:
        # Under-estimating QPS makes the query too small to reach min_duration (INVALID), while
        # over-estimating only lengthens the run. The compute rate over all streams (timed at once)
        # bounds what the system path can do, but a short compute timing on a busy host can read low
        # (seen in the demo: system 7.1 k/s against compute 5.9 k/s, INVALID), hence the margin.
        qps = estimate.throughput * OFFLINE_QPS_MARGIN
        return {"offline_expected_qps": min(qps, MAX_OFFLINE_QPS)}

    def make_dispatcher(self, run_batch: RunBatch, config: DispatchConfig, run_one: RunOne | None = None):
        def python():
            if config.streams == 1:
                return Inline(run_batch, config.batch)
            return StreamPool(run_batch, config.streams, config.batch)

        return native_or_python(run_batch, config.batch, config.streams, 0, python)
