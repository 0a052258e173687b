"""MultiStream: a query is `samples_per_query` samples (8 in MLPerf) run as one batch; with a
smaller batch the query is split, and the parts run on parallel streams when there are several (native
workers, scenarios/native.py; a Python stream pool without the extension)."""

from __future__ import annotations

import math

from scenarios.base import (
    MIN_EXPECTED_LATENCY_NS,
    ComputeEstimate,
    DispatchConfig,
    Inline,
    RunBatch,
    RunOne,
    StreamPool,
)
from scenarios.native import native_or_python


class MultiStream:
    name = "MultiStream"

    def nominal_batch(self, config: DispatchConfig) -> int:
        return min(config.batch, config.samples_per_query)

    def auto_settings(self, estimate: ComputeEstimate, config: DispatchConfig) -> dict:
        parts = math.ceil(config.samples_per_query / self.nominal_batch(config))
        rounds = math.ceil(parts / config.streams)
        return {"multi_stream_expected_latency_ns": max(int(estimate.latency_s * rounds * 1e9), MIN_EXPECTED_LATENCY_NS)}

    def make_dispatcher(self, run_batch: RunBatch, config: DispatchConfig, run_one: RunOne | None = None):
        batch = self.nominal_batch(config)
        if config.streams == 1 or batch >= config.samples_per_query:
            return Inline(run_batch, batch)
        return native_or_python(run_batch, batch, config.streams, 0,
                                lambda: StreamPool(run_batch, config.streams, batch))
