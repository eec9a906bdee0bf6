"""Convert source files into LLaMA-Factory splits, accounting for every record.

Each input record ends up in exactly one place: a split file, the rejects file
(with its source line and reason), or the duplicate count. Parsing, scrubbing
and formatting run in worker processes over chunks of records; de-duplication,
writing and the summary stay in this process, in input order, so the output is
the same whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from converters.clean import fold, might_hold_pii, scrub_pii
from converters.formats import FORMATS, dataset_entry
from converters.records import Dialogue, RecordError, SourceError
from converters.registry import check_conflicts, read_registry, register
from converters.sources import Chunk, get_source
from converters.split import SPLIT_NAMES, assign_split

DEFAULT_MAX_CHARS = 16384


@dataclass(frozen=True)
class ConvertOptions:
    fmt: str
    name: str
    dataset_dir: Path
    split: tuple[float, ...] = (0.7, 0.2, 0.1)
    seed: int = 42
    cot: str = "think"
    system: str = ""
    max_chars: int | None = DEFAULT_MAX_CHARS
    dedup: bool = True
    scrub: bool = True
    force: bool = False
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass
class Summary:
    name: str
    read: int = 0
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLIT_NAMES, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: {"exact": 0, "normalised": 0})
    rejected: Counter = field(default_factory=Counter)
    dropped_trailing_questions: int = 0
    pii: Counter = field(default_factory=Counter)
    turns: array = field(default_factory=lambda: array("I"))
    chars: array = field(default_factory=lambda: array("I"))
    files: dict[str, str] = field(default_factory=dict)

    @property
    def accounted(self) -> int:
        return sum(self.written.values()) + sum(self.duplicates.values()) + self.rejected.total()

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "read": self.read,
            "written": dict(self.written),
            "duplicates": dict(self.duplicates),
            "rejected": dict(sorted(self.rejected.items())),
            "dropped_trailing_questions": self.dropped_trailing_questions,
            "pii_replaced": dict(sorted(self.pii.items())),
            "turns": percentiles(self.turns),
            "chars": percentiles(self.chars),
            "files": self.files,
        }


def percentiles(values) -> dict[str, int]:
    """p50/p90/p99/max of a sequence of counts."""
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


# --- worker side: pure, one chunk at a time ----------------------------------


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _convert_one(dialogue: Dialogue, options: ConvertOptions, pii: Counter) -> tuple:
    texts = "\x00".join(dialogue.texts())
    folded = fold(texts)
    if options.scrub and might_hold_pii(texts, folded):
        turns = tuple((scrub_pii(q, pii), scrub_pii(a, pii)) for q, a in dialogue.turns)
        dialogue = Dialogue(turns=turns, system=dialogue.system)
        folded = fold("\x00".join(dialogue.texts()))
    chars = dialogue.chars
    if options.max_chars and chars > options.max_chars:
        raise RecordError("too_long", f"{chars} characters > --max-chars {options.max_chars}")
    try:
        line = orjson.dumps(FORMATS[options.fmt](dialogue)) + b"\n"
    except orjson.JSONEncodeError:  # a lone surrogate escaped in the source JSON
        raise RecordError("invalid_unicode", "text holds an unpaired UTF-16 surrogate") from None
    exact_key = _hash64(line)
    folded_bytes = folded.encode()
    folded_key = _hash64(folded_bytes)
    split = assign_split(folded_bytes, options.seed, options.split)
    return exact_key, folded_key, split, line, len(dialogue.turns), chars


def _raw_for_rejects(payload: object) -> object:
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload


def convert_chunk(source_name: str, options: ConvertOptions, chunk: Chunk) -> tuple[list, Counter]:
    """Convert one chunk: results in input order, and the PII replacements made."""
    source = get_source(source_name)
    pii: Counter = Counter()
    results = []
    for line_no, payload in source.records(chunk):
        try:
            dialogue = source.parse(payload, options.cot, options.system)
            converted = _convert_one(dialogue, options, pii)
            results.append((line_no, dialogue.dropped_trailing_question, converted))
        except RecordError as error:
            reject = (error.reason, error.detail, _raw_for_rejects(payload))
            results.append((line_no, False, reject))
    return results, pii


# --- converting process -------------------------------------------------------


def _run_chunks(source_name: str, options: ConvertOptions, chunks: Iterable[Chunk]):
    """Yield (chunk, results, pii) in input order, with a bounded number in flight."""
    if options.workers <= 1:
        for chunk in chunks:
            yield chunk, *convert_chunk(source_name, options, chunk)
        return
    with ProcessPoolExecutor(max_workers=options.workers) as pool:
        pending: list = []
        for chunk in chunks:
            pending.append((chunk, pool.submit(convert_chunk, source_name, options, chunk)))
            if len(pending) >= 2 * options.workers:  # keeps memory flat
                done, future = pending.pop(0)
                yield done, *future.result()
        for done, future in pending:
            yield done, *future.result()


def check_inputs(inputs: list[Path]) -> list[Path]:
    paths = [Path(p) for p in inputs]
    if not paths:
        raise SourceError("no input files given")
    for path in paths:
        if not path.is_file():
            raise SourceError(f"{path}: no such file; pass a downloaded data file")
    return paths


def convert(
    source_name: str,
    inputs: list[Path],
    options: ConvertOptions,
    on_progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Convert `inputs`, write the splits and rejects, and register the splits."""
    source = get_source(source_name)
    inputs = check_inputs(inputs)
    if options.fmt not in FORMATS:
        raise SourceError(f"unknown format {options.fmt!r}; known: {', '.join(FORMATS)}")
    dataset_dir = Path(options.dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    split_names = SPLIT_NAMES[: len(options.split)]
    planned = {
        f"{options.name}_{split}": dataset_entry(
            options.fmt, f"{options.name}_{split}.jsonl", bool(options.system)
        )
        for split in split_names
    }
    if not options.force:  # fail before the work, not after it
        check_conflicts(dataset_dir, read_registry(dataset_dir), planned)

    summary = Summary(name=options.name)
    pid = os.getpid()
    tmp = {split: dataset_dir / f".{options.name}_{split}.jsonl.{pid}" for split in split_names}
    tmp_rejects = dataset_dir / f".{options.name}.rejects.jsonl.{pid}"
    total_bytes = sum(p.stat().st_size for p in inputs)

    def progress(done: int) -> None:
        if on_progress:
            on_progress(done, summary.read)

    try:
        with contextlib.ExitStack() as files:
            splits = {split: files.enter_context(open(path, "wb")) for split, path in tmp.items()}
            rejects = files.enter_context(open(tmp_rejects, "wb"))
            account = _Accounting(summary, options.dedup, splits, rejects)
            done_before = 0
            for path in inputs:
                chunks = source.chunks(path)
                for chunk, results, pii in _run_chunks(source_name, options, chunks):
                    summary.pii.update(pii)
                    account.take(chunk.path, results)
                    progress(done_before + chunk.end)
                done_before += path.stat().st_size
        progress(total_bytes)
        _publish(options, summary, tmp, tmp_rejects, planned)
    finally:  # after an error or Ctrl-C, nothing half-written stays behind
        for path in (*tmp.values(), tmp_rejects):
            path.unlink(missing_ok=True)
    return summary


def _dump_any(value: dict) -> bytes:
    """JSON for a rejected record, which may hold what orjson refuses (huge ints, surrogates)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value).encode()


class SeenHashes:
    """A growing set of 64-bit hashes kept as one sorted array: 8 bytes per record.

    Membership is tested a chunk at a time, so the index of a 226k-line file
    costs under 2 MB and a Python set's per-entry overhead never builds up.
    """

    def __init__(self) -> None:
        self.sorted = np.empty(0, dtype=np.uint64)

    def seen(self, keys: np.ndarray) -> np.ndarray:
        """For each key: was it added before, or does it occur earlier in `keys`?"""
        earlier = np.ones(len(keys), dtype=bool)
        earlier[np.unique(keys, return_index=True)[1]] = False
        if len(self.sorted):
            at = np.minimum(np.searchsorted(self.sorted, keys), len(self.sorted) - 1)
            earlier |= self.sorted[at] == keys
        return earlier

    def add(self, keys: np.ndarray, seen: np.ndarray) -> None:
        """Add `keys`, given what `seen(keys)` answered for them (one merge, no re-sort)."""
        new = np.unique(keys[~seen])
        self.sorted = np.insert(self.sorted, np.searchsorted(self.sorted, new), new)


class _Accounting:
    """Routes each converted record: split file, rejects file, or duplicate count.

    A record is an exact duplicate when an identical record came earlier in the
    input, a normalised one when only its folded text did; the first one stays.
    """

    def __init__(self, summary: Summary, dedup: bool, splits: dict, rejects):
        self.summary, self.dedup, self.splits, self.rejects = summary, dedup, splits, rejects
        self.seen_exact, self.seen_folded = SeenHashes(), SeenHashes()

    def take(self, source: str, results: list) -> None:
        summary = self.summary
        converted = [outcome for _, _, outcome in results if len(outcome) != 3]
        if self.dedup and converted:
            exact = np.fromiter((c[0] for c in converted), dtype=np.uint64, count=len(converted))
            folded = np.fromiter((c[1] for c in converted), dtype=np.uint64, count=len(converted))
            exact_seen, folded_seen = self.seen_exact.seen(exact), self.seen_folded.seen(folded)
            self.seen_exact.add(exact, exact_seen)
            self.seen_folded.add(folded, folded_seen)
            duplicate = iter(np.where(exact_seen, 1, np.where(folded_seen, 2, 0)).tolist())
        else:
            duplicate = iter([0] * len(converted))
        for line_no, dropped, outcome in results:
            summary.read += 1
            if len(outcome) == 3:
                reason, detail, raw = outcome
                summary.rejected[reason] += 1
                reject = {
                    "source": source,
                    "line": line_no,
                    "reason": reason,
                    "detail": detail,
                    "record": raw,
                }
                self.rejects.write(_dump_any(reject) + b"\n")
                continue
            _, _, split, line, turns, chars = outcome
            summary.dropped_trailing_questions += dropped
            kind = next(duplicate)
            if kind:
                summary.duplicates["exact" if kind == 1 else "normalised"] += 1
                continue
            self.splits[split].write(line)
            summary.written[split] += 1
            summary.turns.append(turns)
            summary.chars.append(chars)


def _publish(options, summary: Summary, tmp: dict, tmp_rejects: Path, planned: dict) -> None:
    """Move the files into place and register the non-empty splits, under the lock."""
    dataset_dir = Path(options.dataset_dir)
    keep = {split for split, count in summary.written.items() if count and split in tmp}
    entries = {name: e for name, e in planned.items() if name.rsplit("_", 1)[1] in keep}
    stale = tuple(name for name in planned if name not in entries)
    rejects_path = dataset_dir / f"{options.name}.rejects.jsonl"

    def move_files() -> None:
        for split, path in tmp.items():
            final = dataset_dir / f"{options.name}_{split}.jsonl"
            if split in keep:
                os.replace(path, final)
                summary.files[split] = str(final)
            else:
                path.unlink()
                final.unlink(missing_ok=True)
        if summary.rejected:
            os.replace(tmp_rejects, rejects_path)
            summary.files["rejects"] = str(rejects_path)
        else:
            tmp_rejects.unlink()
            rejects_path.unlink(missing_ok=True)

    register(dataset_dir, entries, force=options.force, remove=stale, before_write=move_files)
