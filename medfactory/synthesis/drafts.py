"""Question-answer drafts from document chunks, written by a model behind any
OpenAI-compatible endpoint.

Each chunk is one request with the prompt of `templates/synthesis/` in the
chunk's language. The reply must be a JSON array of {"question", "answer"}
objects (a ```json fence around it is accepted); anything else is asked again
once, then the chunk is counted as unparseable and its last reply kept for a
person to read. Every reply is kept in a responses file keyed by model, prompt
and chunk, so a rerun asks only for the chunks it has no reply for (and, with
`retry_unusable`, for those whose reply was not usable). The server is checked
only when a request is due.
"""

from __future__ import annotations

import json
import re
import threading
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


def parse_json_array(reply: str) -> list | None:
    """The reply as a non-empty JSON array (a ```json fence around it is accepted), or None."""
    fenced = _FENCE.match(reply or "")
    try:
        items = json.loads(fenced.group(1) if fenced else reply)
    except (json.JSONDecodeError, TypeError):
        return None
    return items if isinstance(items, list) and items else None


def parse_pairs(reply: str) -> list[dict] | None:
    """The reply's question-answer pairs, or None when it is not exactly the JSON asked for."""
    pairs = parse_json_array(reply)
    if pairs is None:
        return None
    for pair in pairs:
        if not (
            isinstance(pair, dict)
            and isinstance(pair.get("question"), str)
            and isinstance(pair.get("answer"), str)
        ):
            return None
    return [{"question": p["question"].strip(), "answer": p["answer"].strip()} for p in pairs]


@dataclass(frozen=True)
class Drafted:
    """What one chunk's request (or the responses file) gave."""

    pairs: list[dict] | None  # None: no usable reply
    cached: bool  # from the responses file, not asked this run
    reply: str | None = None  # the model's last reply, when it was not usable
    kept: bool = True  # in the responses file (a refused request is not: asked next run)


class CheckOnce:
    """The server checked (reached, key accepted, model settled) once, when the first
    request is due: a rerun that asks nothing needs no server."""

    def __init__(self, endpoint, done: bool = False):
        self.endpoint, self.done = endpoint, done
        self._lock = threading.Lock()
        self._error: Exception | None = None

    def __call__(self) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error  # one failed check, not one per waiting chunk
            if not self.done:
                try:
                    self.endpoint.check()
                except Exception as error:
                    self._error = error
                    raise
                self.done = True


@dataclass
class Drafting:
    replies: ParsedReplies  # the drafting model's endpoint, with its file of replies
    questions: int = 3
    concurrency: int = 4
    max_tokens: int = 2048
    prompts: Prompts = Prompts()
    parse: Callable[[str], list[dict] | None] = parse_pairs  # the reply's drafts, or None
    retry_unusable: bool = False  # ask again the chunks whose kept reply was not usable
    before_request: Callable[[], None] = lambda: None

    def key(self, chunk: Chunk) -> tuple[str, str]:
        """(the chunk's key in the responses file, its prompt)."""
        prompt = self.prompts.render(chunk, self.questions)
        return reply_key(self.replies.endpoint.model, prompt), prompt

    def due(self, key: str) -> bool:
        """Whether the chunk of `key` needs a request this run."""
        kept = self.replies.kept
        return key not in kept or (self.retry_unusable and kept[key] is None)

    def draft(self, chunk: Chunk) -> Drafted:
        """The chunk's pairs from the file, or asked for. A chunk whose replies never
        parsed is kept with the last one, and asked again only with `retry_unusable`."""
        key, prompt = self.key(chunk)
        if self.due(key):
            self.before_request()
        pairs, cached = self.replies.ask(
            key, prompt, self.parse, keep_failures=True, retry_failures=self.retry_unusable,
            temperature=0.7, max_tokens=self.max_tokens,
        )  # fmt: skip
        if pairs is not None:
            return Drafted(pairs, cached)
        return Drafted(None, cached, self.replies.raw.get(key), key in self.replies.kept)

    def draft_all(
        self, chunks: list[Chunk], on_progress: Callable[[int], None] | None = None
    ) -> list[Drafted]:
        def run(chunk: Chunk) -> Drafted:
            result = self.draft(chunk)
            if on_progress:
                on_progress(1)
            return result

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(run, chunks))


def _source(chunk: Chunk) -> dict:
    return {"file": chunk.file, "chunk": chunk.index, "heading": chunk.heading,
            "start": chunk.start, "end": chunk.end}  # fmt: skip


def drafts_of(
    chunks: list[Chunk], results: list[Drafted], shape: str = "{question, answer}"
) -> tuple[list[dict], list[dict]]:
    """Every pair (or question) as a draft that keeps its source; and a row for each chunk
    without a usable reply (not a JSON array of `shape` objects), with the model's reply
    when there was one."""
    drafts, unusable = [], []
    for chunk, result in zip(chunks, results, strict=True):
        if result.pairs is None:
            unusable.append({
                "id": f"{Path(chunk.file).name}#{chunk.index}", "question": "", "answer": "",
                "source": _source(chunk), "chunk_text": chunk.text, **_unusable(result, shape),
            })  # fmt: skip
            continue
        for number, pair in enumerate(result.pairs, 1):
            drafts.append({
                "id": f"{Path(chunk.file).name}#{chunk.index}.{number}",
                **pair, "source": _source(chunk), "chunk_text": chunk.text,
            })  # fmt: skip
    return drafts, unusable


def _unusable(result: Drafted, shape: str) -> dict:
    if not result.kept:
        return {
            "reason": "refused",
            "detail": "the server refused the request (HTTP 400: a prompt too long for its "
            "context?); asked again on the next run",
            "reply": None,
        }
    return {
        "reason": "unparseable",
        "detail": f"the reply is not a JSON array of {shape} objects; ask again "
        "with --retry-unusable",
        "reply": result.reply,  # None only for a reply kept before replies were kept whole
    }
