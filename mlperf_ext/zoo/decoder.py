"""A small decoder-only transformer with a KV cache, built as ONNX here with seeded random weights, and prompts for it.

No LLM weights are available offline. What the token-latency path needs is a real decoder's shape of work: a
prefill over the whole prompt (matmul-heavy, compute-bound at scale) and decode steps of one token that read
every weight and the whole KV cache (memory-bound). This graph has that shape, in plain ONNX ops that ONNX
Runtime and OpenVINO both run:

- inputs `input_ids` (N, S) int64 and, per layer l, `past_key_values.l.key` / `.value` (N, H, P, Dh) float32
  (P = 0 for the prefill);
- pre-LayerNorm blocks of causal multi-head attention over past + new keys (a token at position P + i sees keys
  0..P + i) and a ReLU MLP, with learned positions P..P + S - 1;
- outputs `logits` (N, V) of the last position (tied embeddings), and `present.l.key` / `.value`
  (N, H, P + S, Dh): the cache the next step takes.

Its outputs mean nothing: a row that runs it says so. `prompts(n, seed)` gives prompts of one length with a
number of tokens to generate per prompt (greedy decoding runs exactly that many steps).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mlperf_ext.zoo.metadata import ModelInfo, is_current, onnx_facts, versions, write_artifact
from mlperf_ext.zoo.registry import Progress, register_family

FAMILY = "decoder"
ARTIFACT_CODE_VERSION = 2
WEIGHT_SEED = 0
#: prompts of the built-in `prompts` dataset: how many, their length, the tokens generated per prompt, the seed
PROMPTS, PROMPT_LENGTH, NEW_TOKENS, PROMPT_SEED = 64, 32, (8, 24), 0


@dataclass(frozen=True)
class DecoderConfig:
    layers: int = 2
    width: int = 128
    heads: int = 4
    ffn: int = 512
    vocab: int = 1024
    max_positions: int = 256

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


CONFIGS = {"decoder-l2-w128": DecoderConfig()}


def past_names(layers: int) -> list[str]:
    return [f"past_key_values.{layer}.{kind}" for layer in range(layers) for kind in ("key", "value")]


def present_names(layers: int) -> list[str]:
    return [f"present.{layer}.{kind}" for layer in range(layers) for kind in ("key", "value")]


class _Graph:
    """Nodes and initializers of one graph, with fresh names."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self._n = rng, [], [], 0

    def const(self, value, name: str | None = None) -> str:
        self._n += 1
        name = name or f"c{self._n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, shape: tuple[int, ...], scale: float) -> str:
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), name)

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attrs) -> list[str] | str:
        self._n += 1
        names = [f"{op_type.lower()}{self._n}_{k}" for k in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=f"{op_type}_{self._n}", **attrs))
        return names[0] if outputs == 1 else names


def build_decoder(config: DecoderConfig, seed: int = WEIGHT_SEED) -> onnx.ModelProto:
    """The decoder graph (opset 17, dynamic batch, prompt and past lengths)."""
    g = _Graph(np.random.default_rng(seed))
    c = config
    tokens = g.weight("token_embedding", (c.vocab, c.width), 0.5)
    positions_table = g.weight("position_embedding", (c.max_positions, c.width), 0.1)
    zero, one, two = g.const(np.array(0, np.int64)), g.const(np.array(1, np.int64)), g.const(np.array(2, np.int64))
    past_len = g.op("Gather", [g.op("Shape", ["past_key_values.0.key"]), two], axis=0)  # P
    new_len = g.op("Gather", [g.op("Shape", ["input_ids"]), one], axis=0)  # S

    def counting(shape: str) -> str:
        """0, 1, 2 ... over a tensor of this shape along its last axis: built from the shape, not from Range,
        so that ONNX shape inference (and level 0's op counts) knows its length."""
        filled = g.op("ConstantOfShape", [shape], value=numpy_helper.from_array(np.array([1], np.int64)))
        return g.op("Sub", [g.op("CumSum", [filled, g.const(np.array(-1, np.int64))]), one])

    positions = g.op("Add", [counting(g.op("Shape", ["input_ids"])), past_len])  # (N, S): P .. P + S - 1
    h = g.op("Add", [g.op("Gather", [tokens, "input_ids"]), g.op("Gather", [positions_table, positions])])
    where = g.op("Gather", [positions, zero], axis=0)  # (S,): the same for every sample
    blocked = g.const(np.array(-1e9, np.float32))
    split_heads = g.const(np.array([0, 0, c.heads, c.head_dim], np.int64))
    merge_heads = g.const(np.array([0, 0, c.width], np.int64))
    scale = g.const(np.array(1.0 / np.sqrt(c.head_dim), np.float32))
    allowed = None
    for layer in range(c.layers):
        gamma, beta = g.const(np.ones(c.width, np.float32)), g.const(np.zeros(c.width, np.float32))
        x = g.op("LayerNormalization", [h, gamma, beta], axis=-1)
        heads = {}
        for kind in ("query", "key", "value"):
            w = g.weight(f"layer{layer}.{kind}", (c.width, c.width), 1.0 / np.sqrt(c.width))
            heads[kind] = g.op("Transpose", [g.op("Reshape", [g.op("MatMul", [x, w]), split_heads])], perm=[0, 2, 1, 3])
        key = g.op("Concat", [f"past_key_values.{layer}.key", heads["key"]], axis=2)
        value = g.op("Concat", [f"past_key_values.{layer}.value", heads["value"]], axis=2)
        g.nodes.append(helper.make_node("Identity", [key], [f"present.{layer}.key"]))
        g.nodes.append(helper.make_node("Identity", [value], [f"present.{layer}.value"]))
        if allowed is None:  # causal mask over past + new keys: query i (position P + i) sees keys 0 .. P + i
            keys = counting(g.op("Slice", [g.op("Shape", [key]), g.const(np.array([2], np.int64)),
                                           g.const(np.array([3], np.int64))]))
            allowed = g.op("LessOrEqual", [g.op("Unsqueeze", [keys, g.const(np.array([0], np.int64))]),
                                           g.op("Unsqueeze", [where, g.const(np.array([1], np.int64))])])
        scores = g.op("Mul", [g.op("MatMul", [heads["query"], g.op("Transpose", [key], perm=[0, 1, 3, 2])]), scale])
        weights = g.op("Softmax", [g.op("Where", [allowed, scores, blocked])], axis=-1)
        attended = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [weights, value])], perm=[0, 2, 1, 3]),
                                    merge_heads])
        out = g.weight(f"layer{layer}.output", (c.width, c.width), 1.0 / np.sqrt(c.width))
        h = g.op("Add", [h, g.op("MatMul", [attended, out])])
        x = g.op("LayerNormalization", [h, g.const(np.ones(c.width, np.float32)),
                                        g.const(np.zeros(c.width, np.float32))], axis=-1)
        up = g.weight(f"layer{layer}.up", (c.width, c.ffn), 1.0 / np.sqrt(c.width))
        down = g.weight(f"layer{layer}.down", (c.ffn, c.width), 1.0 / np.sqrt(c.ffn))
        h = g.op("Add", [h, g.op("MatMul", [g.op("Relu", [g.op("MatMul", [x, up])]), down])])
    last = g.op("Gather", [h, g.op("Sub", [new_len, one])], axis=1)  # (N, width): the last position
    final = g.op("LayerNormalization", [last, g.const(np.ones(c.width, np.float32)),
                                        g.const(np.zeros(c.width, np.float32))], axis=-1)
    g.nodes.append(helper.make_node("MatMul", [final, g.op("Transpose", [tokens], perm=[1, 0])], ["logits"],
                                    name="lm_head"))
    cache = ["N", c.heads, "P", c.head_dim]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "S"])]
    inputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, cache) for name in past_names(c.layers)]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", c.vocab])]
    outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", c.heads, "T", c.head_dim])
                for name in present_names(c.layers)]
    graph = helper.make_graph(g.nodes, "decoder", inputs, outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlperf-ext")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def prompts(n: int = PROMPTS, seed: int = PROMPT_SEED, length: int = PROMPT_LENGTH, vocab: int = 1024,
            new_tokens: tuple[int, int] = NEW_TOKENS) -> dict[str, np.ndarray]:
    """Prompts of one length (`input_ids` (n, length) int64) and the tokens to generate for each (`max_new_tokens`)."""
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, vocab, (n, length)).astype(np.int64),
            "max_new_tokens": rng.integers(new_tokens[0], new_tokens[1] + 1, n).astype(np.int64)}


def list_models() -> list[ModelInfo]:
    return [ModelInfo(name=name, family=FAMILY, architecture=name, pruning=None, precision="fp32", dataset=None,
                      description=f"decoder with KV cache, {c.layers} layers x {c.width} wide, seeded random weights "
                                  "(token latencies only; run with --task llm --dataset prompts)")
            for name, c in CONFIGS.items()]


def build_model(info: ModelInfo, models_dir: Path, progress: Progress | None = None, force: bool = False) -> Path:
    path = Path(models_dir) / f"{info.name}.onnx"
    config = CONFIGS[info.name]
    recipe = f"{FAMILY}/{info.name}/seed{WEIGHT_SEED}/code{ARTIFACT_CODE_VERSION}"
    say = progress or (lambda _m: None)
    if not force and is_current(path, recipe):
        say(f"{info.name}: cached")
        return path
    start = time.perf_counter()
    model = build_decoder(config)
    meta = {**info.to_dict(), "recipe": recipe, "task": "llm", "config": asdict(config), "accuracy": None,
            "accuracy_reason": "seeded random weights: the generated tokens mean nothing",
            "weights": {"kind": "seeded random (normal, 1/sqrt(fan_in))", "seed": WEIGHT_SEED},
            "onnx": onnx_facts(model), "versions": versions(), "build_time_s": round(time.perf_counter() - start, 3)}
    write_artifact(model.SerializeToString(), path, meta)
    say(f"{info.name}: built")
    return path


register_family(FAMILY, list_models, build_model)
