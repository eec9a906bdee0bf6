"""`data synthesize`: documents in, checked drafts out, every one accounted for.

The kept drafts go to DATASET_DIR/NAME.drafts.jsonl, the dropped ones with
their reason to NAME.drafts.dropped.jsonl; the model's replies are kept in
DATASET_DIR/.synthesis/NAME/responses.jsonl, which is what makes a rerun cheap.
Doctors then review the kept drafts (`review create --drafts`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from converters.documents import SUFFIXES, Chunk, chunk_document, read_document
from converters.records import SourceError
from converters.safety import SafetyRules
from deploy.replies import ParsedReplies
from medfactory.synthesis.checks import CheckOptions, check_drafts
from medfactory.synthesis.drafts import Drafting, drafts_of


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
        chunks += chunk_document(
            str(path), read_document(path), options.chunk_chars, options.overlap
        )
    if not chunks:
        raise SourceError("the documents hold no text to draft from")
    return chunks


def synthesize(
    chunks: list[Chunk],
    endpoint,
    options: SynthesisOptions,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Draft, check and write; the summary that accounts for every chunk and draft."""
    rules = SafetyRules.load(options.rules)
    folder = Path(options.dataset_dir)
    replies = ParsedReplies(endpoint, folder / ".synthesis" / options.name / "responses.jsonl")
    drafting = Drafting(replies, options.questions, options.concurrency, options.max_tokens)
    results = drafting.draft_all(chunks, on_progress)
    drafts, unparseable = drafts_of(chunks, results)
    kept, dropped = check_drafts(drafts, rules, options.checks)
    files = {
        "drafts": folder / f"{options.name}.drafts.jsonl",
        "dropped": folder / f"{options.name}.drafts.dropped.jsonl",
    }
    for rows, path in ((kept, files["drafts"]), (dropped, files["dropped"])):
        _write_lines(path, rows)
    return {
        "name": options.name,
        "documents": len({chunk.file for chunk in chunks}),
        "chunks": len(chunks),
        "requests": replies.asked,
        "chunks_from_earlier_runs": sum(cached for _, cached in results),
        "unparseable_chunks": unparseable,
        "drafts": len(drafts),
        "kept": len(kept),
        "dropped": dict(sorted(Counter(d["reason"] for d in dropped).items())),
        "files": {kind: str(path) for kind, path in files.items()},
    }


def _write_lines(path: Path, rows: list[dict]) -> None:
    """Whole or not at all: a temporary file renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    with temporary.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(temporary, path)
