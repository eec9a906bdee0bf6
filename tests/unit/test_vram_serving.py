"""`vram --serve`: weights split over tp x pp GPUs and the KV cache, against a hand count."""

import json

import pytest
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.recipes.vram import (
    GIB,
    OVERHEAD,
    count_parameters,
    estimate_serving,
    load_architecture,
    model_dtype,
    serving_dtype,
)

QWEN_7B = "qwen2.5-7b-instruct"  # 28 layers, 4 KV heads of 128, bf16


def test_qwen_7b_kv_cache_by_hand():
    arch = load_architecture(QWEN_7B)
    result = estimate_serving(arch, max_model_len=32768, max_num_seqs=8)
    # keys and values x 28 layers x 4 KV heads x 128 dims x 2 bytes = 57,344 bytes a token
    assert result.kv_per_sequence == 57_344 * 32768 == 1.75 * GIB
    assert result.kv_cache == 8 * 1.75 * GIB == 14 * GIB
    assert result.weights == 2 * 7_615_616_512  # bf16, the released model's count
    assert result.overhead == OVERHEAD


def test_tp_splits_weights_and_kv_heads_pp_splits_layers():
    arch = load_architecture(QWEN_7B)
    parameters, _ = count_parameters(arch)
    tp2 = estimate_serving(arch, max_model_len=4096, max_num_seqs=1, tp=2)
    assert tp2.weights == parameters  # 2 bytes / 2 GPUs
    assert tp2.kv_per_sequence == 2 * 28 * 2 * 128 * 2 * 4096  # 2 of the 4 KV heads
    tp4pp2 = estimate_serving(arch, max_model_len=4096, max_num_seqs=1, tp=4, pp=2)
    assert tp4pp2.weights == 2 * parameters / 8
    assert tp4pp2.kv_per_sequence == 2 * 14 * 1 * 128 * 2 * 4096  # 14 layers, 1 KV head
    # 7 GPUs would split the 28 heads, but there are only 4 KV heads: each GPU keeps one whole
    tp7 = estimate_serving(arch, max_model_len=4096, max_num_seqs=1, tp=7)
    assert tp7.kv_per_sequence == 2 * 28 * 1 * 128 * 2 * 4096


def test_fits_and_sequences_follow_the_card():
    arch = load_architecture(QWEN_7B)
    result = estimate_serving(arch, max_model_len=32768, max_num_seqs=16)
    fixed = result.weights + result.activations + result.overhead
    assert result.sequences()[80] == int((80 * GIB * 0.9 - fixed) // (1.75 * GIB))
    # 14.2 GiB of weights + 28 GiB of KV cache + 2.5 GiB: past 90 % of 48 GB
    assert result.verdicts() == {24: False, 48: False, 80: True}
    assert result.sequences()[24] < result.sequences()[48] < 16 <= result.sequences()[80]


def test_impossible_splits_are_named():
    arch = load_architecture(QWEN_7B)
    with pytest.raises(ValueError, match="tp 3 must divide the 28 attention heads.*1, 2, 4, 7"):
        estimate_serving(arch, tp=3)
    with pytest.raises(ValueError, match="pp 29 is more stages than the 28 layers"):
        estimate_serving(arch, pp=29)


def test_dtype_from_the_config_as_vllm_serves_it(tmp_path):
    config = load_architecture(QWEN_7B).model_dump()
    (tmp_path / "config.json").write_text(json.dumps({**config, "torch_dtype": "float32"}))
    assert model_dtype(str(tmp_path)) == "float32"
    assert serving_dtype("float32") == "bfloat16" and serving_dtype("float16") == "float16"
    assert serving_dtype("float32", "float32") == "float32"
    assert model_dtype(QWEN_7B) == "bfloat16"
    fp32 = estimate_serving(load_architecture(str(tmp_path)), dtype="float32")
    bf16 = estimate_serving(load_architecture(str(tmp_path)))
    assert fp32.weights == 2 * bf16.weights and fp32.kv_cache == 2 * bf16.kv_cache


def test_cli_prints_the_split_and_the_room():
    result = CliRunner().invoke(
        cli, ["vram", "--model", QWEN_7B, "--serve", "--tp", "2", "--max-model-len", "32768",
              "--max-num-seqs", "16"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 GPU(s) a replica (tp 2 x pp 1)" in result.output
    assert "14.0 GiB" in result.output  # KV cache: 16 x 0.875 GiB
    assert "48 GB card" in result.output and "room for" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tp", "2"], "--tp: for serving estimates; add --serve"),
        (["--serve", "--method", "full"], "--method: for training estimates, not with --serve"),
        (["--serve", "--tp", "3"], "tp 3 must divide the 28 attention heads"),
        (["--serve", "--pp", "0"], "Invalid value for '--pp'"),
    ],
)
def test_cli_mistakes_are_one_message(args, message):
    result = CliRunner().invoke(cli, ["vram", "--model", QWEN_7B, *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
