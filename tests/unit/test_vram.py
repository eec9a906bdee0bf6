"""The memory estimate against LLaMA-Factory's published hardware table."""

import json

import pytest
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.vram import GIB, count_parameters, estimate, load_architecture

# LLaMA-Factory README, "Hardware Requirement" (estimated), 7B row, in GB.
PUBLISHED_7B = {"lora": 16, "qlora": 6, "full": 120}


@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_7b_within_a_quarter_of_the_published_table(method):
    total = estimate(load_architecture("qwen2.5-7b-instruct"), method).total / GIB
    assert abs(total - PUBLISHED_7B[method]) / PUBLISHED_7B[method] < 0.25, total


def test_parameter_counts_match_the_released_models():
    parameters, _ = count_parameters(load_architecture("qwen2.5-7b-instruct"))
    assert abs(parameters - 7.62e9) / 7.62e9 < 0.01
    parameters, _ = count_parameters(load_architecture("llama3.1-8b-instruct"))
    assert abs(parameters - 8.03e9) / 8.03e9 < 0.01


def test_tiny_preset_matches_the_built_model_count():
    parameters, _ = count_parameters(load_architecture("tiny"))
    assert parameters == 19_743_872  # what `medfactory dev tiny-model` reports


def test_lora_rank_8_on_all_linear_layers():
    result = estimate(load_architecture("qwen2.5-7b-instruct"), "lora")
    assert abs(result.trainable - 20_185_088) < 1  # what PEFT reports for this model


def test_zero3_shards_model_states_not_activations():
    arch = load_architecture("qwen2.5-7b-instruct")
    one, four = estimate(arch, "full"), estimate(arch, "full", gpus=4, zero=3)
    assert four.optimizer == pytest.approx(one.optimizer / 4)
    assert four.activations == one.activations
    assert not one.verdicts()[80] and four.verdicts()[80]


def test_longer_sequences_cost_more(tmp_path):
    arch = load_architecture("qwen2.5-1.5b-instruct")
    assert estimate(arch, "lora", seq=4096).activations == 4 * estimate(arch, "lora").activations


def test_config_json_path_works_like_a_preset(tmp_path):
    config = load_architecture("qwen3-8b").model_dump()
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "qwen3"}))
    assert estimate(load_architecture(str(tmp_path)), "lora") == estimate(
        load_architecture("qwen3-8b"), "lora"
    )


def test_cli_prints_the_verdicts():
    result = CliRunner().invoke(cli, ["vram", "--model", "qwen2.5-7b-instruct", "--method", "full"])
    assert result.exit_code == 0, result.output
    assert "80 GB card" in result.output and "does not fit" in result.output
