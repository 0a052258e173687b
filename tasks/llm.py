"""LLM: greedy generation from a decoder with a KV cache, timed by LoadGen per token.

A sample is a prompt (`input_ids`, one length for the whole dataset) and the number of tokens to generate
(`max_new_tokens`): greedy decoding runs exactly that many steps, so the work per sample is fixed by the data,
not by what the model happens to say. A batch runs one prefill over its prompts, reports each sample's first
token to LoadGen (`FirstTokenComplete`: time to first token), then decode steps of one token each, feeding the
`present.*` outputs back as `past_key_values.*`; a sample completes, with its tokens counted, when it has its
tokens (LoadGen's tokens per second and time per output token). A batch is static: it runs until its longest
sample is done, as a server without continuous batching does.

The model is read by names (ONNX Runtime GenAI's and Hugging Face's export convention): inputs `input_ids` and
`past_key_values.<layer>.key/value` (N, heads, past, head_dim), outputs `logits` (N, vocab) or (N, S, vocab)
and `present.<layer>.key/value`. The compute figures are the two steps a decoder repeats, each with its inputs
resident: the prefill of a batch of prompts, and one decode step of that batch at the middle of generation.
Nothing is scored: no reference outputs exist offline, and the tokens are in LoadGen's accuracy log as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mlperf_ext import loadgen
from mlperf_ext.errors import ConfigError, DatasetError, ModelError
from sut.adapter import SutAdapter
from tasks.base import BaseTask

PROMPT, NEW_TOKENS = "input_ids", "max_new_tokens"
PAST, PRESENT, LOGITS = "past_key_values.", "present.", "logits"
#: LoadGen's LLM benchmarks run Server and Offline (and SingleStream at the edge); a MultiStream query of
#: prompts has no token-latency meaning in LoadGen
SCENARIOS = ("SingleStream", "Server", "Offline")


@dataclass(frozen=True)
class CacheLayout:
    """The KV cache a decoder takes: which inputs, and each one's heads and head width."""

    past: tuple[str, ...]  # past_key_values.* input names, in the model's order
    heads: int
    head_dim: int
    dtype: str

    def empty(self, n: int) -> dict[str, np.ndarray]:
        return {name: np.zeros((n, self.heads, 0, self.head_dim), dtype=self.dtype) for name in self.past}

    @staticmethod
    def present_of(past_name: str) -> str:
        return PRESENT + past_name[len(PAST):]

    def next_step(self, out: dict[str, np.ndarray], last: np.ndarray) -> dict[str, np.ndarray]:
        """The inputs of the decode step after `out`: the tokens just chosen (N,) and its `present.*` as the past."""
        feeds = {PROMPT: last.reshape(-1, 1).astype(np.int64)}
        feeds.update({name: out[self.present_of(name)] for name in self.past})
        return feeds


def cache_layout(specs) -> CacheLayout:
    """The cache inputs of a decoder's input specs; ModelError naming the convention when they are not there."""
    past = [s for s in specs if s.name.startswith(PAST)]
    names = [s.name for s in specs]
    if PROMPT not in names or not past:
        raise ModelError(f"task llm feeds inputs named {PROMPT} and {PAST}<layer>.key/value; the model's are "
                         f"{', '.join(names)}; fix: export the decoder with a KV cache under those names (Hugging Face "
                         "/ ONNX Runtime GenAI convention)")
    shape = past[0].shape
    if len(shape) != 4 or shape[1] is None or shape[3] is None:
        raise ModelError(f"cache input {past[0].name} has shape {shape}, not (batch, heads, past, head_dim) with fixed "
                         "heads and head_dim; fix: export the KV cache as (N, heads, past, head_dim)")
    return CacheLayout(tuple(s.name for s in past), int(shape[1]), int(shape[3]), past[0].dtype)


class GenerationAdapter(SutAdapter):
    """Runs a batch of prompts to completion: prefill, first tokens to LoadGen, decode steps, each sample completed
    with its tokens when it has them. The counts and the failure handling of the other adapters: a sample not yet
    completed when a step raises is completed empty, and the error is recorded, never raised into LoadGen."""

    def __init__(self, backend, library, errors: loadgen.CallbackErrors):
        super().__init__(backend, library, errors)
        self._run = backend.infer_outputs
        self.cache = cache_layout(backend.input_specs())

    def run_batch(self, ids: Sequence[int], indices: Sequence[int], stream: int = 0) -> None:
        n = len(ids)
        pending = list(range(n))
        try:
            sizes = self._stream_sizes(stream)
            records = self._gather(indices)
            lengths = records[NEW_TOKENS].astype(np.int64)
            out = self._run({PROMPT: np.ascontiguousarray(records[PROMPT]), **self.cache.empty(n)}, stream)
            tokens = np.zeros((n, int(lengths.max())), dtype="<i4")
            tokens[:, 0] = last_logits(out[LOGITS], n).argmax(-1)
            loadgen.first_tokens(ids, np.ascontiguousarray(tokens[:, 0]))
            for step in range(1, tokens.shape[1] + 1):
                done = [k for k in pending if lengths[k] == step]
                if done:
                    loadgen.complete_payloads([ids[k] for k in done], [tokens[k, :step] for k in done], tokens=True)
                    pending = [k for k in pending if lengths[k] != step]
                if not pending:
                    break
                out = self._run(self.cache.next_step(out, tokens[:, step - 1]), stream)
                tokens[:, step] = last_logits(out[LOGITS], n).argmax(-1)
        except BaseException as exc:  # noqa: BLE001 - recorded; the samples not yet completed still are
            self.errors.record(exc, f"generate(stream {stream})")
            if pending:
                loadgen.complete_empty([ids[k] for k in pending])
            return
        sizes[n] = sizes.get(n, 0) + 1

    def run_one(self, sample_id: int, index: int) -> None:
        self.run_batch([sample_id], [index], 0)


def last_logits(logits: np.ndarray, n: int) -> np.ndarray:
    """(N, vocab) logits of each sample's last position, from (N, vocab) or (N, S, vocab)."""
    if logits.ndim == 3:
        logits = logits[:, -1]
    if logits.ndim != 2 or len(logits) != n:
        raise ValueError(f"logits of shape {logits.shape} for {n} samples; want (N, vocab) or (N, S, vocab)")
    return logits


def generate(backend, prompt: np.ndarray, new_tokens: int) -> np.ndarray:
    """Greedy tokens (N, new_tokens) for a batch of prompts, outside LoadGen (what a test compares the log with)."""
    cache = cache_layout(backend.input_specs())
    out = backend.infer_outputs({PROMPT: prompt, **cache.empty(len(prompt))})
    tokens = [last_logits(out[LOGITS], len(prompt)).argmax(-1)]
    for _ in range(new_tokens - 1):
        out = backend.infer_outputs(cache.next_step(out, tokens[-1]))
        tokens.append(last_logits(out[LOGITS], len(prompt)).argmax(-1))
    return np.stack(tokens, axis=1).astype(np.int32)


def _ms(values: dict, key: str) -> float | None:
    value = values.get(key)
    return None if value is None else float(value) / 1e6


def token_figures(detail_path, prefill: list, decode: list, records: np.ndarray):
    """TokenFigures from LoadGen's detail log (its result_first_token_* and result_time_per_output_token_* keys,
    mlcommons/inference loadgen/results.cc) and the compute timings of the two steps (before and after the run)."""
    from mlperf_ext.logs import read_detail_values
    from mlperf_ext.result import TokenFigures

    values = read_detail_values(detail_path)
    pct = "result_first_token_{}_percentile_latency_ns"
    tpot = "result_time_per_output_token_{}_percentile_ns"
    rate = values.get("result_completed_tokens_per_second", values.get("result_tokens_per_second"))
    prefill_s = float(np.median([s for t in prefill for s in t.latencies_s]))
    decode_s = float(np.median([s for t in decode for s in t.latencies_s]))
    decode_rate = float(np.median([r for t in decode for r in t.window_throughputs]))
    return TokenFigures(
        ttft_mean_ms=_ms(values, "result_first_token_mean_latency_ns"), ttft_p50_ms=_ms(values, pct.format("50.00")),
        ttft_p90_ms=_ms(values, pct.format("90.00")), ttft_p99_ms=_ms(values, pct.format("99.00")),
        tpot_mean_ms=_ms(values, "result_time_to_output_token_mean"), tpot_p50_ms=_ms(values, tpot.format("50.00")),
        tpot_p90_ms=_ms(values, tpot.format("90.00")), tpot_p99_ms=_ms(values, tpot.format("99.00")),
        tokens_per_s=None if rate is None else float(rate), prefill_ms=1e3 * prefill_s, decode_step_ms=1e3 * decode_s,
        decode_tokens_per_s=decode_rate, prompt_tokens=int(records[PROMPT].shape[1]),
        decode_context=int(records[PROMPT].shape[1]) + int(records[NEW_TOKENS].mean()) // 2)


class LlmTask(BaseTask):
    """Generation, timed per token; nothing scored (`metric` None)."""

    name: ClassVar[str] = "llm"
    #: TestSettings the task needs unless the user set them: LoadGen times first tokens and counts tokens
    loadgen_settings: ClassVar[dict] = {"use_token_latencies": True}

    def check_scenario(self, scenario: str) -> None:
        if scenario not in SCENARIOS:
            raise ConfigError(f"task llm runs in {', '.join(SCENARIOS)}, not {scenario} (LoadGen has no token "
                              "latencies for a query of several prompts); fix: use --scenario Server or Offline")

    def check_dataset(self, dataset, mode: str) -> None:
        fields = np.dtype(dataset.dtype).names or ()
        if PROMPT not in fields or NEW_TOKENS not in fields:
            raise DatasetError(f"dataset '{dataset.name}' holds {', '.join(fields) or 'one array per sample'}, but task "
                               f"llm reads prompts as {PROMPT} (one length) and {NEW_TOKENS} per sample; fix: save "
                               f"an .npz with those two arrays (e.g. the built-in dataset 'prompts')")
        lengths = dataset.load(np.arange(len(dataset)))[NEW_TOKENS]
        if lengths.min() < 1:
            raise DatasetError(f"dataset '{dataset.name}' asks for {int(lengths.min())} new tokens for a prompt; fix: "
                               f"{NEW_TOKENS} of 1 or more")

    def check_outputs(self, output_names: Sequence[str]) -> None:
        if LOGITS not in output_names or not any(n.startswith(PRESENT) for n in output_names):
            raise ModelError(f"task llm reads outputs named {LOGITS} and {PRESENT}<layer>.key/value; the model's are "
                             f"{', '.join(output_names)}; fix: export the decoder with its KV cache as outputs")

    def check_inputs(self, dataset, specs) -> None:
        """The prompts must be what `input_ids` takes; the cache inputs are the task's to build."""
        cache_layout(specs)
        prompt = next(s for s in specs if s.name == PROMPT)
        field = np.dtype(dataset.dtype)[PROMPT]
        if np.dtype(field.base) != np.dtype(prompt.dtype) or len(field.shape) != 1:
            raise DatasetError(f"dataset '{dataset.name}' prompts are {field.base} {field.shape} but the model's "
                               f"{PROMPT} takes {prompt.dtype} (N, S); fix: save {PROMPT} as (N, S) {prompt.dtype}")

    def make_adapter(self, backend, library, errors: loadgen.CallbackErrors) -> GenerationAdapter:
        return GenerationAdapter(backend, library, errors)

    def compute_inputs(self, backend, records: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """The two steps a decoder repeats, as named inputs: the prefill of these prompts, and one decode step of
        the batch with the cache at the middle of its generation."""
        cache = cache_layout(backend.input_specs())
        n, prompt = len(records), np.ascontiguousarray(records[PROMPT])
        context = prompt.shape[1] + int(records[NEW_TOKENS].mean()) // 2
        rng = np.random.default_rng(0)
        past = {name: rng.standard_normal((n, cache.heads, context, cache.head_dim)).astype(cache.dtype)
                for name in cache.past}
        return {"prefill": {PROMPT: prompt, **cache.empty(n)},
                "decode": {PROMPT: prompt[:, -1:].copy(), **past}}

    token_figures = staticmethod(token_figures)

    @staticmethod
    def generation_seconds(records: np.ndarray, prefill_s: float, decode_s: float) -> float:
        """A batch's time to generate, from the two compute steps: one prefill and its longest sample's decodes."""
        return prefill_s + (int(records[NEW_TOKENS].max()) - 1) * decode_s

