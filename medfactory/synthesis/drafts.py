"""Question-answer drafts from document chunks, written by a model behind any
OpenAI-compatible endpoint.

Each chunk is one request with the prompt of `templates/synthesis/` in the
chunk's language. The reply must be a JSON array of {"question", "answer"}
objects (a ```json fence around it is accepted); anything else is asked again
once, then the chunk is counted as unparseable. Every reply is kept in a
responses file keyed by model, prompt and chunk, so a rerun asks only for the
chunks it has no reply for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jinja2

from converters.documents import Chunk
from deploy.replies import ParsedReplies, reply_key
from medfactory import paths

PROMPTS = paths.PROJECT_ROOT / "templates" / "synthesis"
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)
_CJK = re.compile(r"[\u3400-\u9fff]")


def language(text: str) -> str:
    """zh when a fifth or more of the letters are Chinese characters, else en."""
    letters = sum(ch.isalpha() for ch in text) or 1
    return "zh" if len(_CJK.findall(text)) / letters >= 0.2 else "en"


@dataclass(frozen=True)
class Prompts:
    folder: Path = PROMPTS

    def render(self, chunk: Chunk, questions: int) -> str:
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.folder), undefined=jinja2.StrictUndefined
        )
        template = environment.get_template(f"{language(chunk.text)}.jinja")
        return template.render(
            questions=questions, text=chunk.text, heading=chunk.heading, source=chunk.file
        ).strip()


def parse_pairs(reply: str) -> list[dict] | None:
    """The reply's question-answer pairs, or None when it is not exactly the JSON asked for."""
    fenced = _FENCE.match(reply or "")
    try:
        pairs = json.loads(fenced.group(1) if fenced else reply)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(pairs, list) or not pairs:
        return None
    for pair in pairs:
        if not (
            isinstance(pair, dict)
            and isinstance(pair.get("question"), str)
            and isinstance(pair.get("answer"), str)
        ):
            return None
    return [{"question": p["question"].strip(), "answer": p["answer"].strip()} for p in pairs]


@dataclass
class Drafting:
    replies: ParsedReplies  # the drafting model's endpoint, with its file of replies
    questions: int = 3
    concurrency: int = 4
    max_tokens: int = 2048
    prompts: Prompts = Prompts()

    def draft(self, chunk: Chunk) -> tuple[list[dict] | None, bool]:
        """(the chunk's pairs, or None when no reply parsed; whether it came from the file).
        A chunk whose replies never parsed is kept as done: a rerun does not ask again."""
        prompt = self.prompts.render(chunk, self.questions)
        key = reply_key(self.replies.endpoint.model, prompt)
        return self.replies.ask(
            key, prompt, parse_pairs, keep_failures=True, temperature=0.7,
            max_tokens=self.max_tokens,
        )  # fmt: skip

    def draft_all(
        self, chunks: list[Chunk], on_progress: Callable[[int], None] | None = None
    ) -> list[tuple[list[dict] | None, bool]]:
        def run(chunk: Chunk):
            result = self.draft(chunk)
            if on_progress:
                on_progress(1)
            return result

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(run, chunks))


def drafts_of(chunks: list[Chunk], results: list) -> tuple[list[dict], int]:
    """Every pair as a draft that keeps its source; and the chunks without usable reply."""
    drafts, unparseable = [], 0
    for chunk, (pairs, _cached) in zip(chunks, results, strict=True):
        if pairs is None:
            unparseable += 1
            continue
        for number, pair in enumerate(pairs, 1):
            drafts.append({
                "id": f"{Path(chunk.file).name}#{chunk.index}.{number}",
                "question": pair["question"], "answer": pair["answer"],
                "source": {"file": chunk.file, "chunk": chunk.index, "heading": chunk.heading,
                           "start": chunk.start, "end": chunk.end},
                "chunk_text": chunk.text,
            })  # fmt: skip
    return drafts, unparseable
