import json
import math

from medfactory.dev.tiny_model import BUILD_STAMP, build_tiny_model


def test_two_builds_with_the_same_seed_are_byte_identical(tiny_model, fixtures_dir, tmp_path):
    summary = build_tiny_model(tmp_path, fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer")
    ours = sorted(p.name for p in tiny_model.iterdir() if p.name != BUILD_STAMP)
    assert sorted(summary["files"]) == ours
    for name in ours:
        assert (tmp_path / name).read_bytes() == (tiny_model / name).read_bytes(), name


def test_another_seed_gives_other_weights(tiny_model, fixtures_dir, tmp_path):
    build_tiny_model(tmp_path, fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer", seed=7)
    assert (tmp_path / "model.safetensors").read_bytes() != (
        tiny_model / "model.safetensors"
    ).read_bytes()


def test_tiny_model_is_a_qwen2_on_the_real_tokenizer(tiny_model, fixtures_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    real = AutoTokenizer.from_pretrained(fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer")
    text = "患者血压180/110mmHg，HbA1c 8.2%。<|im_end|>"
    assert tokenizer(text)["input_ids"] == real(text)["input_ids"]
    assert len(tokenizer) == 151665

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = model.config
    assert config.model_type == "qwen2"
    assert config.hidden_size // config.num_attention_heads == 64  # vLLM CPU needs >= 64
    assert tokenizer.convert_ids_to_tokens(config.eos_token_id) == "<|im_end|>"
    parameters = sum(p.numel() for p in model.parameters())
    assert 15e6 < parameters < 25e6

    # Random weights: next-token loss is close to uniform, ln(vocab).
    import torch

    ids = torch.tensor([tokenizer(text)["input_ids"]])
    loss = model(input_ids=ids, labels=ids).loss.item()
    assert abs(loss - math.log(config.vocab_size)) < 0.5
    assert json.loads((tiny_model / BUILD_STAMP).read_text())["seed"] == 42
