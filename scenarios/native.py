"""The native dispatcher (`scenarios/native_batcher.cpp`, built by `pip install` as `scenarios._native`).

It is a LoadGen SUT in C++: LoadGen's issue thread queues samples without taking the GIL, and `streams`
worker threads form batches and call the adapter's `run_batch` once per batch. The Python dispatchers in
`scenarios/base.py` and `scenarios/server.py` remain for a host where the extension could not be built,
and for a LoadGen other than the one whose SUT interface the extension declares; a row says which one
ran (`dispatch_impl`) and, for the Python one, why (`dispatch_impl_note`).
"""

from __future__ import annotations

import importlib
import sys
from functools import cache

from mlperf_ext.loadgen import LOADGEN_VERSION
from scenarios.base import RunBatch, RunOne

#: the LoadGen whose SUT interface (loadgen/system_under_test.h, query_sample.h) native_batcher.cpp declares;
#: the handle is only given to this one
NATIVE_LOADGEN_VERSION = "6.0.17"
#: LoadGen's issue thread needs no GIL here, but the stream workers share it: a short switch interval
#: keeps one stream's Python from holding the others' batches back (as for the Python batcher)
SWITCH_INTERVAL_S = 0.0005


@cache
def unavailable() -> str | None:
    """Why the native dispatcher cannot run in this process, or None when it can."""
    if LOADGEN_VERSION != NATIVE_LOADGEN_VERSION:
        return (f"mlcommons-loadgen {LOADGEN_VERSION} is installed; the native dispatcher declares the SUT "
                f"interface of {NATIVE_LOADGEN_VERSION} only")
    try:
        importlib.import_module("scenarios._native")
    except ImportError as exc:
        return (f"the native extension scenarios._native is not built ({exc}); fix: install a C++ compiler "
                "and reinstall mlperf-ext (pip install -e .)")
    return None


class NativeBatcher:
    """Batches of up to `max_batch` samples on `streams` native workers; a partial batch waits at most
    `max_wait_us` after its oldest sample arrived (0: never waits, as Offline and MultiStream need).
    `run_inline` (one stream, batches of one): no workers; LoadGen's issue thread runs each sample, through
    `run_one(id, index)` where given, else as a batch of one."""

    impl = "native"
    impl_note = None

    def __init__(self, run_batch: RunBatch, max_batch: int, streams: int, max_wait_us: int, run_inline: bool = False,
                 run_one: RunOne | None = None):
        from scenarios._native import Batcher

        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._batcher = Batcher(run_batch, max_batch, streams, max_wait_us, name="mlperf-ext native batcher",
                                run_inline=run_inline, run_one=run_one)
        self.inline = run_inline
        self.issue = self._batcher.issue  # a FastSUT callback's form, for callers that issue from Python
        self.flush = self._batcher.flush

    @property
    def sut_handle(self) -> int:
        """LoadGen drives this object directly: pass it as the `sut` of StartTestWithLogSettings."""
        return self._batcher.handle

    @property
    def failed_batches(self) -> int:
        """Batches whose run_batch raised (the adapter never raises; a non-zero count is a harness bug)."""
        return self._batcher.failed_batches

    def close(self) -> None:
        self._batcher.close()
        sys.setswitchinterval(self._old_switch)


def native_or_python(run_batch: RunBatch, max_batch: int, streams: int, max_wait_us: int, python,
                     run_inline: bool = False, run_one: RunOne | None = None):
    """The native batcher where it can run; otherwise `python()` (a dispatcher of the same policy), marked
    with the reason, so the row says which dispatcher ran and why."""
    reason = unavailable()
    if reason is None:
        return NativeBatcher(run_batch, max_batch, streams, max_wait_us, run_inline, run_one)
    dispatcher = python()
    dispatcher.impl_note = reason
    return dispatcher
