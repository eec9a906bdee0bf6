"""Take apart the texts LLaMA-Factory's PPO trainer sends: each is the query and the
response token ids decoded together, chat template and special tokens included
(`tokenizer.batch_decode(..., skip_special_tokens=False)`)."""

from __future__ import annotations

import re

# <|im_end|>, <|start_header_id|>, <｜Assistant｜> (DeepSeek's full-width bars), <|endoftext|>
SPECIAL = re.compile(r"<[|｜][^<>\n]{1,40}[|｜]>")
# the last assistant turn's header, when no question locates the response
ASSISTANT = re.compile(r"(?:<\|im_start\|>assistant\n|<\|start_header_id\|>assistant"
                       r"<\|end_header_id\|>\n*|<｜Assistant｜>)")  # fmt: skip
ROLE_LINE = re.compile(r"^\s*(?:assistant|model)\s*\n", re.IGNORECASE)
THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)


def clean(text: str) -> str:
    """The words without template tokens."""
    return SPECIAL.sub("", text).strip()


def split(text: str, question: str | None = None) -> tuple[str, str]:
    """(prompt, response): the response follows the assistant header after the question
    (the options and instructions may follow the question), else the last header."""
    start = text.rfind(question) + len(question) if question and question in text else 0
    headers = list(ASSISTANT.finditer(text, start))
    end = headers[-1].end() if headers else start
    response = ROLE_LINE.sub("", SPECIAL.sub("", text[end:]), count=1)
    return clean(text[:end]), response.strip()


def final_answer(response: str) -> str:
    """The response without its reasoning (`<think>...</think>`)."""
    return THINK.sub("", response).strip()
