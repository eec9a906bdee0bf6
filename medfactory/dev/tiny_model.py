"""A tiny random-weight Qwen2 model on the real Qwen2.5 tokenizer.

Every stage of the pipeline (LLaMA-Factory training, export, vLLM serving) is
exercised on it without a GPU or a model hub: its answers are gibberish, but its
tokenizer, chat template and architecture are the real Qwen2.5 ones.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from medfactory.recipes.run import add_legacy_rope_keys

# head_dim = hidden / heads = 64: vLLM's CPU attention rejects smaller heads.
TINY_QWEN2 = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}
DEFAULT_SEED = 42
BUILD_STAMP = "medfactory_tiny_model.json"


def build_stamp(tokenizer_dir: Path, seed: int) -> dict:
    """What a build depends on: a folder whose stamp equals it is that build."""
    return {"architecture": TINY_QWEN2, "seed": seed, "tokenizer": str(tokenizer_dir),
            "config": "rope_theta too"}  # fmt: skip


def build_tiny_model(out_dir: Path, tokenizer_dir: Path, seed: int = DEFAULT_SEED) -> dict:
    """Write a seeded tiny Qwen2 model + the real tokenizer to ``out_dir``.

    Two builds with the same seed and tokenizer are byte-identical. Returns a
    summary (parameter count, vocabulary size, files written).
    """
    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "vocab.json").is_file():
        raise FileNotFoundError(
            f"{tokenizer_dir}: no Qwen2.5 tokenizer here (vocab.json missing); "
            "pass --tokenizer-dir pointing at shared/fixtures/qwen2.5-0.5b-instruct-tokenizer"
        )
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    real = json.loads((tokenizer_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Qwen2Config(
        **TINY_QWEN2,
        vocab_size=real["vocab_size"],
        bos_token_id=real["bos_token_id"],
        eos_token_id=real["eos_token_id"],
        rope_theta=real.get("rope_theta", 1000000.0),
        rms_norm_eps=real["rms_norm_eps"],
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    # .venv-rl's older transformers (PPO) reads `rope_theta`, not `rope_parameters`
    add_legacy_rope_keys(out_dir / "config.json")
    tokenizer.save_pretrained(out_dir)
    GenerationConfig.from_pretrained(tokenizer_dir).save_pretrained(out_dir)
    summary = {
        "path": str(out_dir),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "head_dim": config.hidden_size // config.num_attention_heads,
        "seed": seed,
        "files": sorted(p.name for p in out_dir.iterdir() if p.name != BUILD_STAMP),
    }
    (out_dir / BUILD_STAMP).write_text(json.dumps(build_stamp(tokenizer_dir, seed), indent=2))
    return summary


def ensure_tiny_model(out_dir: Path, tokenizer_dir: Path, seed: int = DEFAULT_SEED) -> Path:
    """Build the tiny model into `out_dir` unless an identical build is already there."""
    out_dir = Path(out_dir)
    stamp = out_dir / BUILD_STAMP
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time (two test workers): the second waits and reuses the first's.
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and json.loads(stamp.read_text()) == build_stamp(tokenizer_dir, seed):
            return out_dir
        build_tiny_model(out_dir, tokenizer_dir, seed=seed)
    return out_dir


def build_tiny_adapter(model_dir: Path, out_dir: Path, seed: int = DEFAULT_SEED) -> Path:
    """A random LoRA adapter for the tiny model (PEFT's own format, as training writes it).

    Its B matrices are random, not zero, so it answers differently from the base
    model: a second version to serve beside it without a training run.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(out_dir)
    return Path(out_dir)
