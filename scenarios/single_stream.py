"""SingleStream: one sample per query, the next issued when it completes; run inline on the issue
thread so nothing but the backend sits between LoadGen's timestamps."""

from __future__ import annotations

from scenarios.base import MIN_EXPECTED_LATENCY_NS, ComputeEstimate, DispatchConfig, Inline, RunBatch, RunOne


class SingleStream:
    name = "SingleStream"

    def nominal_batch(self, config: DispatchConfig) -> int:
        return 1

    def auto_settings(self, estimate: ComputeEstimate, config: DispatchConfig) -> dict:
        # An expected latency below the real one only makes LoadGen pre-generate more queries;
        # one above it can run out of queries, so the compute (lower) latency is the safe hint.
        return {"single_stream_expected_latency_ns": max(int(estimate.latency_s * 1e9), MIN_EXPECTED_LATENCY_NS)}

    def make_dispatcher(self, run_batch: RunBatch, config: DispatchConfig, run_one: RunOne | None = None) -> Inline:
        return Inline(run_batch, 1)
