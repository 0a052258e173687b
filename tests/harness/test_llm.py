"""Token latencies: a random-weight decoder with a KV cache, generating greedily through LoadGen with
FirstTokenComplete and token counts, in Server and Offline on ONNX Runtime and OpenVINO; TTFT, TPOT and tokens/s
stored next to the prefill and decode-step compute figures; the tokens in the accuracy log are the greedy tokens
of a run without LoadGen."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlperf_ext.datasets import open_dataset
from mlperf_ext.errors import ConfigError, DatasetError, ModelError
from mlperf_ext.zoo.decoder import DecoderConfig, build_model, list_models, past_names
from sut.base import DeploymentOptions
from tasks.llm import LlmTask, generate
from tests.sut.conftest import assert_user_error, build_mlp, cli, run_spec
from tiers.runner import layout


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    return build_model(list_models()[0], tmp_path_factory.mktemp("decoder"))


def _backend(name: str, model):
    from sut.registry import create_backend

    backend = create_backend(name)
    backend.load(model, DeploymentOptions(max_batch=8, threads=1))
    return backend


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_kv_cache_gives_the_logits_of_a_full_prefill(decoder, runtime):
    if runtime == "openvino":
        pytest.importorskip("openvino")
    backend = _backend(runtime, decoder)
    config = DecoderConfig()
    prompt = open_dataset("prompts").load(np.arange(4))["input_ids"]
    empty = {n: np.zeros((4, config.heads, 0, config.head_dim), np.float32) for n in past_names(config.layers)}
    full = backend.infer_outputs({"input_ids": prompt, **empty})
    head = backend.infer_outputs({"input_ids": prompt[:, :-1], **empty})
    step = backend.infer_outputs({"input_ids": prompt[:, -1:],
                                  **{n: head[n.replace("past_key_values", "present")] for n in empty}})
    np.testing.assert_allclose(step["logits"], full["logits"], rtol=1e-4, atol=1e-4)
    assert step["present.0.key"].shape == (4, config.heads, prompt.shape[1], config.head_dim)
    backend.close()


def _tokens_logged(work) -> dict[int, np.ndarray]:
    out = {}
    for log in work.glob(f"runs/*/{layout.LOADGEN_DIR}/mlperf_log_accuracy.json"):
        for entry in json.loads(log.read_text() or "[]"):
            out.setdefault(entry["qsl_idx"], np.frombuffer(bytes.fromhex(entry["data"]), "<i4"))
    return out


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_server_and_offline_store_token_latencies_through_the_cli(decoder, tmp_path, runtime):
    if runtime == "openvino":
        pytest.importorskip("openvino")
    common = {"models": [str(decoder)], "dataset": "prompts", "backends": [runtime], "batch": 8, "threads": 1,
              "task": "llm"}
    proc, rows = run_spec([
        # TTFT's early stopping at p99 wants several hundred queries (0.99^n <= 0.01: n >= 459 with none late).
        # 150/s is about half of what a 2-core host sustains (300/s saturated it: 279/s completed, TTFT p99
        # 187 ms), and a 500 ms TTFT bound leaves room for the tail a busy 2-core host adds (p99.9 103 ms seen
        # at 150/s, over the default 100 ms): this test is about the token figures, the search has its own
        {**common, "scenarios": ["Server"], "mode": "performance",
         "settings": {"min_duration_ms": 3500, "server_target_qps": 150, "ttft_latency": 500_000_000}},
        {**common, "scenarios": ["Offline"], "mode": "submission", "settings": {"min_duration_ms": 500}},
    ], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for scenario, row in rows.items():
        assert row.status == "ok" and row.system.valid is True, (scenario, row.error)
        assert row.callback_errors == 0 and row.runtime.name == runtime
        tokens = row.tokens
        assert tokens.tokens_per_s > 0 and tokens.prefill_ms > 0 and tokens.decode_step_ms > 0
        assert tokens.prompt_tokens == 32 and tokens.decode_context > 32
        assert row.settings.requested["use_token_latencies"] is True and row.settings.auto["use_token_latencies"] is True
    server = rows["Server"].tokens
    assert 0 < server.ttft_p50_ms <= server.ttft_p90_ms <= server.ttft_p99_ms
    assert 0 < server.tpot_p50_ms <= server.tpot_p90_ms <= server.tpot_p99_ms
    assert rows["Offline"].tokens.ttft_p50_ms is None  # LoadGen reports no TTFT in Offline
    assert rows["Offline"].accuracy is None and any("scores nothing" in n for n in rows["Offline"].notes)
    # the submission run's accuracy phase logged every prompt's tokens: the greedy tokens of a run without LoadGen
    dataset = open_dataset("prompts")
    logged = _tokens_logged(tmp_path)
    assert sorted(logged) == list(range(len(dataset)))
    backend = _backend(runtime, decoder)
    records = dataset.load(np.arange(len(dataset)))
    for start in range(0, len(dataset), 8):
        batch = records[start:start + 8]
        expected = generate(backend, batch["input_ids"], int(batch["max_new_tokens"].max()))
        for k, count in enumerate(batch["max_new_tokens"]):
            np.testing.assert_array_equal(logged[start + k], expected[k, :count])
    backend.close()
    if runtime == "onnxruntime":  # level 0's two steps next to the measured ones, for every stored llm row
        shown = cli("token-roofline", "--platform", "xeon-8480plus", "--workdir", str(tmp_path))
        assert shown.returncode == 0, shown.stderr
        steps = [line.split() for line in shown.stdout.splitlines() if " prefill " in line or " decode " in line]
        assert len(steps) == 4 and all(line[-1].endswith("%") for line in steps)  # measured beside predicted
        assert {(line[4], line[9]) for line in steps} == {("prefill", "compute"), ("decode", "memory")}


def test_level0_counts_a_decoders_prefill_and_decode_step(decoder):
    """The step counts follow the transformer's arithmetic: per token 2 x (4 W^2 + 2 W F) per layer and the
    2 W V head, plus attention over the context (QK^T and AV); a decode step reads the whole cache."""
    from tiers.level0.decoder import decoder_steps, step_roofline
    from tiers.level0.platforms import load_catalog

    c, prompt, context = DecoderConfig(), 32, 40
    prefill, decode = decoder_steps(decoder, prompt, context)
    linear = 2 * c.layers * (4 * c.width ** 2 + 2 * c.width * c.ffn)
    attention = 2 * c.layers * 2 * c.width * (context + 1)  # the new token against past + itself
    assert decode.ops == pytest.approx(linear + attention + 2 * c.width * c.vocab, rel=0.02)
    causal = 2 * c.layers * 2 * c.width * prompt * prompt  # every query against every key (the mask is not skipped)
    assert prefill.ops == pytest.approx(prompt * linear + causal + 2 * c.width * c.vocab, rel=0.02)
    assert decode.cache_bytes == 2 * c.layers * c.heads * context * c.head_dim * 4 and prefill.cache_bytes == 0
    point = load_catalog().get("xeon-8480plus").points()[0]
    assert step_roofline(prefill, point, "fp32", 8).bound == "compute"
    assert step_roofline(decode, point, "fp32", 8).bound == "memory"


def test_what_task_llm_cannot_run_is_refused_in_one_line(decoder, tmp_path):
    task = LlmTask()
    with pytest.raises(ConfigError) as exc:
        task.check_scenario("MultiStream")
    assert "fix: use --scenario Server or Offline" in assert_user_error(exc.value)
    with pytest.raises(DatasetError) as exc:
        task.check_dataset(open_dataset("mnist"), "performance")
    assert "reads prompts as input_ids" in assert_user_error(exc.value)
    with pytest.raises(ModelError) as exc:
        task.check_outputs(("logits",))
    assert "present.<layer>" in assert_user_error(exc.value)
    proc = cli("run", "--model", str(decoder), "--dataset", "prompts", "--backend", "onnxruntime",
               "--scenario", "MultiStream", "--task", "llm", "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2 and "task llm runs in" in proc.stderr
    classifier = build_mlp(tmp_path / "mlp.onnx", dims=(32, 10)).path
    proc = cli("run", "--model", str(classifier), "--dataset", "prompts", "--backend", "onnxruntime",
               "--scenario", "Offline", "--task", "llm", "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2 and "task llm feeds inputs named input_ids and past_key_values." in proc.stderr


def test_micro_cuts_a_decoder_step_into_layers_and_stacks(decoder, tmp_path):
    """A decoder's lengths are symbolic: micro cuts one step of it (here a decode step, one token after 48), whose
    transformer block falls into layers and stacks, and measures the whole step on synthetic named arrays; a
    decoder without the lengths is refused in one line. (The points are planned, not run: running cuts is the
    other micro tests'.)"""
    from tiers.micro.bench import plan_micro
    from tiers.micro.commands import decoder_step
    from tiers.runner.validate import PointValidator

    step, name = decoder_step(decoder, "decoder", 1, 48, tmp_path)
    assert name == "decoder-s1-p48" and step.is_file()
    targets, sets = plan_micro(step, name, (1, 2), (4,), ["onnxruntime"], 8, None, tmp_path / name)
    ops = {op for cut in sets["1"].cuts for op in cut.layer_ops}
    assert {"MatMul", "Softmax", "LayerNormalization", "Concat"} <= ops and not sets["1"].skipped
    ffn = [c for c in sets["2x4"].cuts if c.layer_ops == ("MatMul", "Relu", "MatMul", "Add")]
    assert len(ffn) == 1 and ffn[0].cost.ops > 0  # the MLP of a block is one stack
    whole = targets[-1]
    assert whole.level == 3 and str(whole.dataset).endswith(".npz")
    validator = PointValidator()
    for point in [p for t in targets for p in t.points]:
        validator.check(point)  # every planned point, the whole step's named arrays included, is well formed
    with pytest.raises(ConfigError) as exc:
        decoder_step(decoder, "decoder", None, None, tmp_path)
    assert "fix: cut one step of it with --tokens S --past P" in assert_user_error(exc.value)
    refused = cli("micro", "--model", str(decoder), "--level", "2", "--workdir", str(tmp_path))
    assert refused.returncode == 2 and "fix: cut one step of it with --tokens S --past P" in refused.stderr
