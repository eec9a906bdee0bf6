"""Serving chat templates render exactly what LLaMA-Factory trains on, token for token.

Rendered with transformers' chat-template machinery (what vLLM uses) on the
real Qwen2.5 tokenizer; the reference is LLaMA-Factory's own template code.
"""

import functools

import pytest
from transformers import AutoTokenizer

from deploy.chat_templates import TemplateError, chat_template_path, known_templates
from deploy.parity import SUITE, first_mismatch, llamafactory_prompt_ids
from medfactory.recipes.presets import load_presets

# Special tokens of the model families, added to the Qwen2.5 vocabulary where
# it lacks them (DeepSeek-R1-Distill-Qwen is that vocabulary with these tokens).
FAMILY_TOKENS = {
    "deepseekr1": {
        "bos_token": "<｜begin▁of▁sentence｜>",
        "eos_token": "<｜end▁of▁sentence｜>",
        "additional_special_tokens": ["<｜User｜>", "<｜Assistant｜>"],
    },
    "llama3": {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>"],
    },
}
REASONING = {"qwen3", "deepseekr1"}


@functools.cache
def tokenizer_for(fixtures_dir, template):
    # LLaMA-Factory adjusts the tokenizer it encodes with (its EOS, a pad token) the
    # same way every time, so one tokenizer per template serves all cases.
    tokenizer = AutoTokenizer.from_pretrained(fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer")
    if template in FAMILY_TOKENS:
        tokenizer.add_special_tokens(FAMILY_TOKENS[template])
    return tokenizer


def served_ids(tokenizer, chat_template: str, messages, **kwargs):
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, add_generation_prompt=True, tokenize=True,
        return_dict=True, **kwargs,
    )["input_ids"]  # fmt: skip


def test_every_preset_template_has_a_serving_template():
    assert {preset.template for preset in load_presets().values()} <= set(known_templates())
    assert {"qwen", "qwen3", "deepseekr1", "llama3"} <= set(known_templates())


CASES = [
    (template, thinking, name)
    for template in ("qwen", "qwen3", "deepseekr1", "llama3")
    for thinking in ((True, False) if template in REASONING else (True,))
    for name in SUITE
]


@pytest.mark.parametrize(("template", "thinking", "conversation"), CASES)
def test_serving_template_renders_the_training_tokens(
    fixtures_dir, template, thinking, conversation
):
    tokenizer = tokenizer_for(fixtures_dir, template)
    messages = SUITE[conversation]
    trained = llamafactory_prompt_ids(tokenizer, template, messages, enable_thinking=thinking)
    served = served_ids(
        tokenizer, chat_template_path(template).read_text(), messages, enable_thinking=thinking
    )
    mismatch = first_mismatch(tokenizer, served, trained)
    assert mismatch is None, mismatch.describe()


def test_thinking_off_ends_the_prompt_with_an_empty_thought(fixtures_dir):
    tokenizer = tokenizer_for(fixtures_dir, "qwen3")
    text = tokenizer.apply_chat_template(
        SUITE["single turn, Chinese"], chat_template=chat_template_path("qwen3").read_text(),
        add_generation_prompt=True, tokenize=False, enable_thinking=False,
    )  # fmt: skip
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_official_deepseek_r1_distill_template_is_not_what_llamafactory_trains(fixtures_dir):
    tokenizer = tokenizer_for(fixtures_dir, "deepseekr1")
    official = (fixtures_dir / "chat_templates/deepseek-r1-distill-qwen.jinja").read_text()
    messages = SUITE["single turn, Chinese"]
    trained = llamafactory_prompt_ids(tokenizer, "deepseekr1", messages)
    mismatch = first_mismatch(tokenizer, served_ids(tokenizer, official, messages), trained)
    # The official one appends "<think>\n" to the prompt; LLaMA-Factory trains the
    # model to write it. `verify` reports exactly where.
    assert mismatch is not None
    assert mismatch.position == len(trained)
    assert mismatch.served.endswith("<｜Assistant｜><think>\n")
    assert mismatch.served_length > mismatch.trained_length


def test_official_qwen25_template_drops_the_default_system_prompt_for_an_empty_one(fixtures_dir):
    tokenizer = tokenizer_for(fixtures_dir, "qwen")
    official = (fixtures_dir / "chat_templates/qwen2.5-instruct.jinja").read_text()
    messages = SUITE["empty system prompt"]
    trained = llamafactory_prompt_ids(tokenizer, "qwen", messages)
    mismatch = first_mismatch(tokenizer, served_ids(tokenizer, official, messages), trained)
    assert mismatch is not None and "You are Qwen" in mismatch.trained


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(TemplateError, match="'qwen25'; known: deepseekr1, llama3, qwen, qwen3"):
        chat_template_path("qwen25")
