"""Estimate the GPU memory of a fine-tuning run before it starts.

The estimate, in bytes, for P parameters, trainable parameters T, micro-batch
b, sequence length s, hidden size h, layers L, MLP width m, vocabulary V and N
GPUs (ZeRO-3 shards the model states over N; plain data parallelism does not):

  weights      full: 2P (bf16 copy) + 4P (fp32 master, AMP)
               lora: 2P + 2T (bf16 base and adapters)
               qlora: 0.55(P - E) + 2E + 2T (bitsandbytes quantises the decoder's
               linear layers to 4 bits + scales; the E embedding and LM-head
               parameters stay bf16)
  gradients    full: 2P        lora/qlora: 4T (fp32)
  optimizer    AdamW m and v in fp32: 8P (full) or 8T (lora/qlora)
  activations  gradient checkpointing (LLaMA-Factory's default) keeps each layer's
               input, 2bsh per layer, recomputes one layer at a time,
               2bs(10h + 3m), and the loss over the vocabulary: bf16 logits, their
               fp32 copy, fp32 log-probabilities and fp32 gradient, 14bsV (measured
               on an H100 with `benchmarks/vram.py`: it is most of the growth
               with batch and length)
  overhead     CUDA context, allocator caching and fragmentation: 1.5 GiB

DPO and KTO (LLaMA-Factory): chosen and rejected (KTO: the answer and its
mismatched KL pair) go through one forward, so twice the tokens a micro-batch;
the reference model is the base with the adapter switched off for LoRA and
QLoRA (no extra weights; its forward runs without gradients, so it keeps no
activations), and a second, frozen bf16 copy, 2P, for full fine-tuning (none
for orpo and simpo). These preference terms follow LLaMA-Factory's trainers;
unlike the SFT terms they have not yet been checked against a GPU run.

PPO (LLaMA-Factory, trl): the policy carries a value head, a linear h -> 1 trained with
it (h + 1 parameters); the reference is the base with the adapter off for LoRA and QLoRA
and a frozen bf16 copy, 2P, for full fine-tuning. A model reward is, for LoRA, a second
adapter and head on the same base (2T more) and, for full fine-tuning, a second bf16
model (2P); a reward server (`reward_model_type: api`) takes no GPU memory here. The
update's forward runs on prompt + answer, one sequence a sample, as in SFT.

LoRA on all linear layers with rank r trains T = r * sum(in + out) per layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from medfactory.recipes.presets import Architecture, get_preset

GIB = 1024**3
CARDS = (24, 48, 80)
OVERHEAD = 1.5 * GIB
STAGES = ("sft", "dpo", "kto", "ppo")
REWARDS = ("model", "api")  # PPO: a trained reward model on the GPU, or a reward server


@dataclass(frozen=True)
class Estimate:
    parameters: int
    trainable: int
    weights: float
    gradients: float
    optimizer: float
    activations: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead

    def verdicts(self, usable: float = 0.9) -> dict[int, bool]:
        """Whether it fits each common card, keeping 10 % of the card free."""
        return {card: self.total <= card * GIB * usable for card in CARDS}


def load_architecture(model: str) -> Architecture:
    """A preset name, or the path of a model's config.json (or its folder)."""
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        return Architecture(**json.loads(path.read_text()))
    return get_preset(model).architecture


def embedding_parameters(arch: Architecture) -> int:
    """The input embeddings and, unless tied to them, the LM head."""
    return arch.vocab_size * arch.hidden_size * (1 if arch.tie_word_embeddings else 2)


def count_parameters(arch: Architecture) -> tuple[int, int]:
    """(all parameters, parameters of the linear layers LoRA targets per layer) of a decoder."""
    h, m = arch.hidden_size, arch.intermediate_size
    head_dim = arch.head_dim or h // arch.num_attention_heads
    q = arch.num_attention_heads * head_dim
    kv = (arch.num_key_value_heads or arch.num_attention_heads) * head_dim
    bias = arch.attention_bias if arch.attention_bias is not None else arch.model_type == "qwen2"
    linear = h * q + 2 * h * kv + q * h + 3 * h * m + (q + 2 * kv if bias else 0)
    lora_dims = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + m) + (m + h)
    total = arch.num_hidden_layers * (linear + 2 * h) + embedding_parameters(arch) + h
    return total, arch.num_hidden_layers * lora_dims


def estimate(
    arch: Architecture,
    method: str,
    batch: int = 1,
    seq: int = 1024,
    gpus: int = 1,
    zero: int = 0,
    lora_rank: int = 8,
    stage: str = "sft",
    reference: bool = True,
    reward: str = "model",
) -> Estimate:
    for name, value in (("batch", batch), ("seq", seq), ("gpus", gpus), ("lora_rank", lora_rank)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    parameters, lora_dims = count_parameters(arch)
    trainable = parameters if method == "full" else lora_rank * lora_dims
    if method == "full":
        weights, gradients, optimizer = 6.0 * parameters, 2.0 * parameters, 8.0 * parameters
    else:
        weights = 2.0 * parameters + 2.0 * trainable
        if method == "qlora":
            weights -= (2.0 - 0.55) * (parameters - embedding_parameters(arch))
        gradients, optimizer = 4.0 * trainable, 8.0 * trainable
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if stage == "ppo":  # the value head trains with the policy
        head = arch.hidden_size + 1
        trainable += head
        weights, gradients, optimizer = (
            weights + 2.0 * head,
            gradients + 4.0 * head,
            optimizer + 8.0 * head,
        )
        if reward == "model":
            weights += (
                2.0 * parameters if method == "full" else 2.0 * (trainable - head) + 2.0 * head
            )
    if stage != "sft" and method == "full" and reference:
        weights += 2.0 * parameters  # the frozen reference copy
    if zero == 3 and gpus > 1:  # model states sharded over the GPUs
        weights, gradients, optimizer = weights / gpus, gradients / gpus, optimizer / gpus
    h, m, L = arch.hidden_size, arch.intermediate_size, arch.num_hidden_layers
    tokens = batch * seq * (1 if stage in ("sft", "ppo") else 2)
    activations = tokens * (2 * h * L + 2 * (10 * h + 3 * m) + 14 * arch.vocab_size)
    return Estimate(parameters, trainable, weights, gradients, optimizer, activations, OVERHEAD)


# --- serving ---------------------------------------------------------------------------
#
# What one GPU holds when vLLM serves P parameters with tensor parallel size t and
# pipeline parallel size p (t x p GPUs a replica), for S sequences of up to n tokens
# (--max-num-seqs, --max-model-len), with L layers, K KV heads of dimension d and b bytes
# a value (2 for bf16/fp16; vLLM's dtype `auto` serves fp32 checkpoints in 16 bits):
#
#   weights      bP / (t p)  (each layer's matrices split t ways, the layers p ways;
#                the embeddings are split t ways too)
#   KV cache     2 ceil(L/p) max(1, K/t) d b S n  (keys and values of every token of
#                every sequence; a GPU keeps the layers of its stage and its share of the
#                KV heads, a whole head when there are fewer heads than GPUs)
#   activations  one prefill chunk of C = 8192 tokens (vLLM's default
#                max_num_batched_tokens for its API server) through one layer,
#                bC(2h + 3m/t), and fp32 logits for S sequences, 4SV/t
#   overhead     CUDA context, CUDA graphs, allocator: 1.5 GiB
#
# vLLM fills the card up to --gpu-memory-utilization (0.9) with KV cache; the estimate
# says whether S full-length sequences fit, and how many full-length sequences the
# rest of the card would hold. Unlike the training terms, these have not been checked
# against a GPU run.

SERVE_DTYPES = ("auto", "bfloat16", "float16", "float32")
PREFILL_CHUNK = 8192
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class ServeEstimate:
    parameters: int
    dtype: str
    weights: float
    kv_cache: float
    kv_per_sequence: float
    activations: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.activations + self.overhead

    def verdicts(self, usable: float = 0.9) -> dict[int, bool]:
        """Whether it fits each common card at vLLM's default --gpu-memory-utilization."""
        return {card: self.total <= card * GIB * usable for card in CARDS}

    def sequences(self, usable: float = 0.9) -> dict[int, int]:
        """Full-length sequences the KV cache left on each card would hold (0: none)."""
        fixed = self.weights + self.activations + self.overhead
        return {card: max(0, int((card * GIB * usable - fixed) // self.kv_per_sequence))
                for card in CARDS}  # fmt: skip


def model_dtype(model: str) -> str:
    """The dtype in a model's config.json (transformers 4: torch_dtype, 5: dtype); a
    preset's, and a config without one, are bfloat16."""
    path = Path(model)
    config = path / "config.json" if path.is_dir() else path
    if not config.is_file():
        return "bfloat16"
    fields = json.loads(config.read_text())
    return str(fields.get("dtype") or fields.get("torch_dtype") or "bfloat16")


def serving_dtype(config_dtype: str, requested: str = "auto") -> str:
    """vLLM's --dtype rule: `auto` keeps a 16-bit checkpoint's dtype, serves fp32 in bf16."""
    if requested not in SERVE_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(SERVE_DTYPES)}, got {requested!r}")
    if requested != "auto":
        return requested
    return config_dtype if config_dtype in ("bfloat16", "float16") else "bfloat16"


def estimate_serving(
    arch: Architecture,
    max_model_len: int = 4096,
    max_num_seqs: int = 256,
    tp: int = 1,
    pp: int = 1,
    dtype: str = "bfloat16",
) -> ServeEstimate:
    for name, value in (("max_model_len", max_model_len), ("max_num_seqs", max_num_seqs),
                        ("tp", tp), ("pp", pp)):  # fmt: skip
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if dtype not in BYTES:
        raise ValueError(f"dtype must be one of {', '.join(BYTES)}, got {dtype!r}")
    heads = arch.num_attention_heads
    kv_heads = arch.num_key_value_heads or heads
    if heads % tp:
        raise ValueError(
            f"tp {tp} must divide the {heads} attention heads (vLLM refuses it); "
            f"try one of {', '.join(str(n) for n in range(1, heads + 1) if heads % n == 0)}"
        )
    if pp > arch.num_hidden_layers:
        raise ValueError(f"pp {pp} is more stages than the {arch.num_hidden_layers} layers")
    size = BYTES[dtype]
    parameters, _ = count_parameters(arch)
    head_dim = arch.head_dim or arch.hidden_size // heads
    layers = -(-arch.num_hidden_layers // pp)  # the largest stage
    per_token = 2 * layers * max(1, kv_heads // tp) * head_dim * size
    per_sequence = float(per_token * max_model_len)
    h, m = arch.hidden_size, arch.intermediate_size
    activations = (
        size * PREFILL_CHUNK * (2 * h + 3 * m / tp) + 4 * max_num_seqs * arch.vocab_size / tp
    )
    return ServeEstimate(
        parameters=parameters, dtype=dtype, weights=size * parameters / (tp * pp),
        kv_cache=per_sequence * max_num_seqs, kv_per_sequence=per_sequence,
        activations=activations, overhead=OVERHEAD,
    )  # fmt: skip
