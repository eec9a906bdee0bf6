"""The retrieved passages put before the question, by a template a team can edit.

templates/rag/zh.jinja and en.jinja (chosen by the question's language, as
`data synthesize` chooses its prompts) receive `passages` (rank, file,
heading, text, start, end, score) and `question`. Only the last user turn is
rewritten; the system prompt and earlier turns stay as they were, so the same
conversation reaches the model with and without retrieval.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from medfactory import paths
from medfactory.rag.errors import NoQuestion
from medfactory.synthesis.drafts import language

TEMPLATES = paths.PROJECT_ROOT / "templates" / "rag"


@functools.cache
def _template(folder: Path, lang: str) -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )  # fmt: skip
    return environment.get_template(f"{lang}.jinja")


def render(question: str, passages: list, folder: Path = TEMPLATES) -> str:
    """The user turn that carries `passages` (Passage objects) and `question`."""
    template = _template(Path(folder), language(question))
    return template.render(passages=passages, question=question).strip()


def question_of(messages: list[dict]) -> tuple[int, str]:
    """(position, text) of the last user turn; its text parts joined when it has parts."""
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # OpenAI content parts
                content = "\n".join(
                    part.get("text", "") for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )  # fmt: skip
            if isinstance(content, str) and content.strip():
                return position, content
            break
    raise NoQuestion("the conversation has no user question to retrieve passages for")


def augment(retriever, messages: list[dict], top: int) -> tuple[list[dict], list[dict]]:
    """(messages with the last user turn rendered with its passages, their sources)."""
    position, question = question_of(messages)
    passages = retriever.search(question, top)
    augmented = list(messages)
    augmented[position] = {**messages[position], "content": render(question, passages)}
    return augmented, [passage.source() for passage in passages]
