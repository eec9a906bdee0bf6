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
    end = split_point(text, question)
    response = ROLE_LINE.sub("", SPECIAL.sub("", text[end:]), count=1)
    return clean(text[:end]), response.strip()


def split_point(text: str, question: str | None = None) -> int:
    """Where the response starts: after the last assistant header past the question."""
    start = text.rfind(question) + len(question) if question and question in text else 0
    headers = list(ASSISTANT.finditer(text, start))
    return headers[-1].end() if headers else start


def final_answer(response: str) -> str:
    """The response without its reasoning (`<think>...</think>`)."""
    return THINK.sub("", response).strip()


CHATML_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL)


def chat_text(messages: list[dict], answer: str) -> str:
    """What the reward server receives for `answer` to `messages` from a Qwen (ChatML)
    policy: the prompt with its template, the answer and the eos, decoded together."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return f"{turns}<|im_start|>assistant\n{answer}<|im_end|>"


def prompt_messages(text: str, question: str | None = None) -> list[dict]:
    """The chat before the response, as messages: ChatML turns read back, or for another
    template the prompt's words as one user message."""
    end = split_point(text, question)
    turns = [
        {"role": role, "content": content.strip()}
        for role, content in CHATML_TURN.findall(text[:end])
        if role in ("system", "user", "assistant") and content.strip()
    ]
    return turns or [{"role": "user", "content": clean(text[:end])}]
