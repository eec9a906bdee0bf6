"""Token-for-token parity between a served prompt and LLaMA-Factory's training encoding.

The reference is LLaMA-Factory's own template code (`.venv`): the conversation
plus an empty answer, encoded by `Template.encode_multiturn` exactly as the
supervised data processor encodes training samples; the prompt is everything
before that last answer. The served side is whatever the server will feed the
model: vLLM's `/tokenize` with `messages` and `add_generation_prompt`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Conversations every template must serve exactly as trained.
SUITE: dict[str, list[dict]] = {
    "single turn, Chinese": [{"role": "user", "content": "我头痛三天了，需要吃药吗？"}],
    "single turn, English, system prompt": [
        {"role": "system", "content": "You are a careful medical assistant."},
        {"role": "user", "content": "What is the first-line treatment for hypertension?"},
    ],
    "empty system prompt": [
        {"role": "system", "content": ""},
        {"role": "user", "content": "血压180/110mmHg怎么办？"},
    ],
    "multi-turn, Chinese, system prompt": [
        {"role": "system", "content": "你是一名经验丰富的全科医生。"},
        {"role": "user", "content": "孩子发烧38.5度，咳嗽。"},
        {"role": "assistant", "content": "有没有精神差、呼吸急促？"},
        {"role": "user", "content": "没有，精神还可以。"},
    ],
    "multi-turn, reasoning in the history": [
        {"role": "user", "content": "HbA1c 8.2% means what?"},
        {
            "role": "assistant",
            "content": "<think>\nHbA1c above 6.5% is diabetic range.\n</think>\n\n"
            "It indicates poorly controlled diabetes.",
        },
        {"role": "user", "content": "那应该怎么调整？"},
    ],
}


def llamafactory_prompt_ids(
    tokenizer, template: str, messages: list[dict], enable_thinking: bool = True
) -> list[int]:
    """The prompt ids LLaMA-Factory trains the answer to `messages` on."""
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    data_args = DataArguments(template=template, enable_thinking=enable_thinking)
    encoder = get_template_and_fix_tokenizer(tokenizer, data_args)
    system = None
    if messages and messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    turns = [dict(m) for m in messages] + [{"role": "assistant", "content": ""}]
    pairs = encoder.encode_multiturn(tokenizer, turns, system)
    return [i for prompt, answer in pairs[:-1] for i in prompt + answer] + pairs[-1][0]


@dataclass(frozen=True)
class Mismatch:
    position: int
    served: str  # decoded context around the first differing token
    trained: str
    served_length: int
    trained_length: int

    def describe(self) -> str:
        return (
            f"first difference at token {self.position} "
            f"(served {self.served_length} tokens, trained {self.trained_length})\n"
            f"      served : {self.served!r}\n"
            f"      trained: {self.trained!r}"
        )


def first_mismatch(tokenizer, served: list[int], trained: list[int]) -> Mismatch | None:
    if served == trained:
        return None
    position = next(
        (i for i, (a, b) in enumerate(zip(served, trained, strict=False)) if a != b),
        min(len(served), len(trained)),
    )
    start = max(0, position - 6)

    def context(ids: list[int]) -> str:
        return tokenizer.decode(ids[start : position + 6])

    return Mismatch(position, context(served), context(trained), len(served), len(trained))
