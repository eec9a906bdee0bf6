"""`data synthesize`: documents in, checked drafts out, every one accounted for.

The kept drafts go to DATASET_DIR/NAME.drafts.jsonl (with `--kind exam`,
multiple-choice questions to NAME.exam.jsonl, an `eval exam` file), the dropped
ones with their reason to NAME.drafts.dropped.jsonl (NAME.exam.dropped.jsonl),
with a row for each chunk without a usable reply (the model's reply in it); the
model's replies are kept in DATASET_DIR/.synthesis/NAME/responses.jsonl, which is
what makes a rerun cheap, and the model they came from in run.json beside it.
Doctors then review the kept drafts (`review create --drafts`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from converters.documents import SUFFIXES, Chunk, chunk_document, read_document
from converters.records import SourceError
from converters.safety import SafetyRules
from deploy.client import Endpoint, EndpointError
from deploy.replies import ParsedReplies
from medfactory.reporting import read_json_object, write_json, write_jsonl
from medfactory.synthesis.checks import CheckOptions, check_drafts
from medfactory.synthesis.drafts import (
    PROMPTS,
    CheckOnce,
    Drafting,
    Prompts,
    drafts_of,
    parse_pairs,
)
from medfactory.synthesis.exam import check_questions, parse_questions

# (description, total chunks) -> a context yielding advance(n)
CountProgress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@contextlib.contextmanager
def no_progress(_description: str, _total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n=1: None


@dataclass(frozen=True)
class DraftKind:
    """What is drafted: its prompts, how a reply is read and its drafts checked, and
    the files they go to (NAME.FILES.jsonl, NAME.FILES.dropped.jsonl)."""

    prompts: Prompts
    parse: Callable[[str], list[dict] | None]
    check: Callable  # (drafts, safety rules, CheckOptions) -> (kept, dropped)
    files: str
    shape: str  # a usable reply is a JSON array of these objects


KINDS = {
    "qa": DraftKind(Prompts(), parse_pairs, check_drafts, "drafts", "{question, answer}"),
    "exam": DraftKind(
        Prompts(PROMPTS / "exam"),
        parse_questions,
        check_questions,
        "exam",
        "{question, options, answer}",
    ),  # fmt: skip
}


@dataclass(frozen=True)
class SynthesisOptions:
    name: str
    dataset_dir: Path
    questions: int = 3
    chunk_chars: int = 1500
    overlap: int = 200
    concurrency: int = 4
    max_tokens: int = 2048
    checks: CheckOptions = field(default_factory=CheckOptions)
    rules: Path | None = None
    encoding: str | None = None  # of the text documents [default: detected]
    retry_unusable: bool = False  # ask again the chunks whose kept reply was not usable
    kind: str = "qa"  # a KINDS name: question-answer drafts, or exam questions


def documents(inputs: list[Path]) -> list[Path]:
    """The files given, and the documents inside the folders given, in a stable order."""
    found = []
    for path in inputs:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
            if not inside:
                raise SourceError(f"{path}: no documents in the folder ({', '.join(SUFFIXES)})")
            found += inside
        elif path.exists():
            found.append(path)
        else:
            raise SourceError(f"{path}: no such file or folder")
    return found


def read_chunks(paths: list[Path], options: SynthesisOptions) -> list[Chunk]:
    chunks = []
    for path in paths:
        text = read_document(path, options.encoding)
        chunks += chunk_document(str(path), text, options.chunk_chars, options.overlap)
    if not chunks:
        raise SourceError("the documents hold no text to draft from")
    return chunks


def synthesize_documents(
    inputs: list[Path],
    endpoint: Endpoint,
    options: SynthesisOptions,
    progress: CountProgress = no_progress,
) -> dict:
    """`data synthesize` as one call: the documents read and chunked (a bad one is one
    message, before any request), then drafted with progress, checked and written."""
    from converters.convert import check_name

    check_name(options.name)
    chunks = read_chunks(documents(inputs), options)
    with progress(f"drafting {options.name}", len(chunks)) as advance:
        return synthesize(chunks, endpoint, options, on_progress=advance)


def synthesize(
    chunks: list[Chunk],
    endpoint: Endpoint,
    options: SynthesisOptions,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Draft, check and write; the summary that accounts for every chunk and draft."""
    rules = SafetyRules.load(options.rules)
    kind = KINDS[options.kind]
    folder = Path(options.dataset_dir)
    state = folder / ".synthesis" / options.name
    replies = ParsedReplies(endpoint, state / "responses.jsonl")
    drafting = Drafting(
        replies, options.questions, options.concurrency, options.max_tokens,
        prompts=kind.prompts, parse=kind.parse, retry_unusable=options.retry_unusable,
    )  # fmt: skip
    checked = _settle_model(endpoint, drafting, chunks, state / "run.json")
    drafting.before_request = CheckOnce(endpoint, done=checked)
    results = drafting.draft_all(chunks, on_progress)
    drafts, unusable = drafts_of(chunks, results, kind.shape)
    kept, dropped = kind.check(drafts, rules, options.checks)
    files = {
        "drafts": folder / f"{options.name}.{kind.files}.jsonl",
        "dropped": folder / f"{options.name}.{kind.files}.dropped.jsonl",
    }
    for rows, path in ((kept, files["drafts"]), (dropped + unusable, files["dropped"])):
        write_jsonl(path, rows)
    if replies.asked:
        write_json(state / "run.json", {"model": endpoint.model})
    return {
        "name": options.name,
        "kind": options.kind,
        "documents": len({chunk.file for chunk in chunks}),
        "chunks": len(chunks),
        "requests": replies.asked,
        "chunks_from_earlier_runs": sum(result.cached for result in results),
        "unparseable_chunks": len(unusable),
        # kept unusable replies, asked again only with --retry-unusable
        "unusable_waiting": sum(row["reason"] == "unparseable" for row in unusable),
        "drafts": len(drafts),
        "kept": len(kept),
        "dropped": dict(sorted(Counter(d["reason"] for d in dropped).items())),
        "files": {kind: str(path) for kind, path in files.items()},
    }


def _settle_model(endpoint: Endpoint, drafting: Drafting, chunks: list[Chunk], state: Path) -> bool:
    """Name the drafting model, which the replies are keyed by; whether the server was
    checked to do it. Without --model it is the server's; when no server answers, the
    previous run's model serves a rerun that needs no request."""
    if endpoint.model is not None:
        return False  # checked when the first request is due
    try:
        endpoint.check()
        return True
    except EndpointError as error:
        if error.status is not None:  # it answered, and refused
            raise
        previous = read_json_object(state).get("model")
        if previous is None:
            raise
        endpoint.model = previous
        if any(drafting.due(drafting.key(chunk)[0]) for chunk in chunks):
            endpoint.model = None
            raise
        return False
