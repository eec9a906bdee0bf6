"""Serving chat templates that match LLaMA-Factory's training templates.

`templates/chat/NAME.jinja` renders, for LLaMA-Factory template NAME, the
exact text training encodes (a test proves it token for token). Reasoning
templates also get vLLM's reasoning parser, so `<think>` lands in
`reasoning_content` instead of the answer.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates" / "chat"
REASONING_PARSERS = {"qwen3": "qwen3", "deepseekr1": "deepseek_r1"}


class TemplateError(ValueError):
    """No serving template for a name; the message lists the ones there are."""


def known_templates() -> list[str]:
    return sorted(path.stem for path in CHAT_TEMPLATE_DIR.glob("*.jinja"))


def chat_template_path(name: str) -> Path:
    path = CHAT_TEMPLATE_DIR / f"{name}.jinja"
    if not path.is_file():
        raise TemplateError(
            f"no serving chat template for LLaMA-Factory template {name!r}; known: "
            f"{', '.join(known_templates())}. Use the `template:` of your training recipe, "
            "or add templates/chat/NAME.jinja (tests/unit/test_chat_templates.py checks it)"
        )
    return path


def reasoning_parser(name: str) -> str | None:
    return REASONING_PARSERS.get(name)
