"""Convert source files into LLaMA-Factory splits, accounting for every record.

Each input record ends up in exactly one place: a split file, the rejects file
(with its source line and reason), or the duplicate count. Parsing, scrubbing
and formatting run over chunks of records, in worker processes and in this one;
de-duplication, writing and the summary stay in this process, in input order,
so the output is the same whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import pickle
import re
import sys
import tempfile
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from converters.clean import bmp_fold_table, fold_batch, scrub_pii
from converters.deid.audit import Audit
from converters.deid.engine import DeidOptions, deidentifier
from converters.formats import FORMATS, dataset_entry
from converters.records import Dialogue, RecordError, SourceError
from converters.registry import check_conflicts, conversion_manifest, read_registry, register
from converters.safety import LINT_LEVELS, SafetyRules
from converters.sources import Chunk, describe_file, get_source, matching_sources
from converters.split import SPLIT_NAMES, content_keys, split_indices
from converters.table_files import BlankRow

DEFAULT_MAX_CHARS = 16384
AUDIT_PER_RECORD = 3  # replacements of one record offered to the audit's sample
DEID_LEVELS = ("off", "basic", "strict")


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
    # off; basic: the fast scrubber (phones, IDs, e-mails, URLs); strict: Presidio as well
    deid: str = "basic"
    deid_options: DeidOptions = DeidOptions()
    # off; flag: count records breaking a safety rule; reject: send them to the rejects file
    lint: str = "flag"
    lint_rules: Path | None = None  # [default: templates/safety/rules.yaml]
    force: bool = False
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    table: object = None  # converters.column_map.ColumnMap, for the table source

    @property
    def with_system(self) -> bool:
        return bool(self.system) or bool(self.table and self.table.has_system)


@dataclass
class Summary:
    name: str
    read: int = 0
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLIT_NAMES, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: {"exact": 0, "normalised": 0})
    rejected: Counter = field(default_factory=Counter)
    dropped_trailing_questions: int = 0
    blank: int = 0  # blank rows of a table: skipped, counted
    pii: Counter = field(default_factory=Counter)
    # Histograms (value -> records), not one entry per record: the memory of a
    # conversion must not grow with its input.
    turns: Counter = field(default_factory=Counter)
    chars: Counter = field(default_factory=Counter)
    files: dict[str, str] = field(default_factory=dict)
    deid: str = "basic"
    audit: Audit | None = None  # what de-identification replaced, sampled
    lint: str = "flag"
    flagged: Counter = field(default_factory=Counter)  # safety rule -> records breaking it

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
            "blank": self.blank,
            "deid": self.deid,
            "pii_replaced": dict(sorted(self.pii.items())),
            "lint": self.lint,
            "flagged": dict(sorted(self.flagged.items())),
            "turns": percentiles(self.turns),
            "chars": percentiles(self.chars),
            "files": self.files,
        }


def percentiles(histogram: Counter) -> dict[str, int]:
    """p50/p90/p99/max of counts given as a histogram (count -> how many records)."""
    total = histogram.total()
    if not total:
        return {}
    values = sorted(histogram)
    below = np.cumsum([histogram[value] for value in values])  # records up to each value

    def pick(q: float) -> int:  # the value at rank q * total of the sorted records
        return values[int(np.searchsorted(below, min(total - 1, int(q * total)), side="right"))]

    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": values[-1]}


# --- worker side: pure, one chunk at a time ----------------------------------


@dataclass
class ChunkResult:
    """One chunk converted: its records grouped by split, in input order within a split.

    Grouping lets the converting process write each split as a few large slices
    of `lines`; a duplicate always shares its split with the record it repeats,
    since the split follows the folded text.
    """

    lines: bytes  # the output lines, concatenated
    ends: np.ndarray  # end offset of each line in `lines`
    split: np.ndarray  # index into SPLIT_NAMES, non-decreasing
    exact: np.ndarray  # key of the output line
    folded: np.ndarray  # keyed hash of the folded text (it also chose the split)
    turns: np.ndarray
    chars: np.ndarray
    dropped_trailing_questions: int
    rejects: list  # (line number in the chunk, reason, detail, raw record), in input order
    line_count: int  # lines the chunk spans
    pii: Counter
    replaced: list  # (line number in the chunk, audit entry): what de-identification replaced
    flagged: Counter  # safety rule -> records of the chunk breaking it
    blank: int = 0  # blank table rows the chunk spans

    @property
    def read(self) -> int:
        return len(self.ends) + len(self.rejects)


def _raw_for_rejects(payload: object) -> object:
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload


def _scrubbed(dialogue: Dialogue, pii: Counter, replaced: list) -> Dialogue:
    turns = tuple(
        (scrub_pii(q, pii, replaced), scrub_pii(a, pii, replaced)) for q, a in dialogue.turns
    )
    return dialogue._replace(turns=turns, system=scrub_pii(dialogue.system, pii, replaced))


def _texts(dialogue: Dialogue) -> list[str]:
    return [dialogue.system, *(text for pair in dialogue.turns for text in pair)]


def _deidentified(
    dialogue: Dialogue, texts: list[str], options: DeidOptions, hints, pii: Counter, replaced: list
) -> Dialogue:
    """`texts` (the record's, `_texts`) all at once: a name found in one turn goes in
    all of them."""
    system, *rest = deidentifier(options).record(texts, pii, replaced, hints)
    return dialogue._replace(turns=tuple(zip(rest[0::2], rest[1::2], strict=True)), system=system)


@contextlib.contextmanager
def _cycle_collector_paused():
    """Pause the cycle collector while a chunk converts.

    Records are trees of dicts, lists and strings, which reference counting
    frees; the collector would only walk a chunk's thousands of new containers
    again and again (5-8 % of a chunk's time).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@_cycle_collector_paused()
def convert_chunk(source_name: str, options: ConvertOptions, chunk: Chunk) -> ChunkResult:
    """Parse, scrub, check, format and key one chunk of records."""
    source = get_source(source_name)
    records, line_count = source.records(chunk)
    rejects: list = []
    parsed: list = []  # (line number, payload, dialogue)
    blank = 0
    for line_no, payload in records:
        if isinstance(payload, BlankRow):
            blank += 1
            continue
        try:
            parsed.append((line_no, payload, source.parse(payload, options)))
        except RecordError as error:
            line = line_no if error.row is None else error.row  # the row the problem is on
            rejects.append((line, error.reason, error.detail, _raw_for_rejects(payload)))

    dialogues = [dialogue for _, _, dialogue in parsed]
    texts = [dialogue.text for dialogue in dialogues]
    folded, suspect = fold_batch(texts)
    pii: Counter = Counter()
    replaced: list = []
    if options.deid == "strict":  # the pre-check says what to look for in which text
        record_texts = [_texts(dialogue) for dialogue in dialogues]
        hints = deidentifier(options.deid_options).record_candidates(record_texts)
        suspect = np.fromiter((any(h is None or h for h in hint) for hint in hints), dtype=bool)
    suspects = np.flatnonzero(suspect).tolist() if options.deid != "off" else []
    if suspects:  # only the records the pre-check found a candidate identifier in
        for i in suspects:
            found: list = []
            if options.deid == "strict":
                texts_of = record_texts[i]
                dialogues[i] = _deidentified(
                    dialogues[i], texts_of, options.deid_options, hints[i], pii, found
                )
            else:
                dialogues[i] = _scrubbed(dialogues[i], pii, found)
            replaced += [(parsed[i][0], entry) for entry in found[:AUDIT_PER_RECORD]]
            texts[i] = dialogues[i].text
        refolded, _ = fold_batch([texts[i] for i in suspects])
        for i, key in zip(suspects, refolded, strict=True):
            folded[i] = key
    sizes = list(map(len, texts))
    unsafe, flagged = _linted(dialogues, texts, options)

    def reject(i: int, reason: str, detail: str) -> None:
        line_no, payload, _ = parsed[i]
        rejects.append((line_no, reason, detail, _raw_for_rejects(payload)))

    to_record, limit = FORMATS[options.fmt], options.max_chars or sys.maxsize
    lines, kept = [], []
    for i, dialogue in enumerate(dialogues):
        if sizes[i] > limit:
            reject(i, "too_long", f"{sizes[i]} characters > --max-chars {limit}")
            continue
        if options.lint == "reject" and i in unsafe:
            first = unsafe[i][0]
            reject(i, f"safety:{first.rule}", _lint_detail(unsafe[i]))
            continue
        try:
            lines.append(orjson.dumps(to_record(dialogue), option=orjson.OPT_APPEND_NEWLINE))
        except orjson.JSONEncodeError:  # a lone surrogate escaped in the source JSON
            reject(i, "invalid_unicode", "text holds an unpaired UTF-16 surrogate")
            continue
        kept.append(i)
    rejects.sort(key=lambda reject: reject[0])

    folded_keys = content_keys([folded[i] for i in kept], options.seed)
    # Identical lines have identical folded text, so the folded key with the
    # line's CRC mixed in tells them apart from near-duplicates; a CRC clash
    # (2**-32) would only count a near-duplicate as exact -- it is dropped either way.
    crcs = np.fromiter(map(zlib.crc32, lines), dtype=np.uint64, count=len(lines))
    split = split_indices(folded_keys, options.split)
    order = np.argsort(split, kind="stable")
    lines = [lines[i] for i in order.tolist()]
    return ChunkResult(
        lines=b"".join(lines),
        ends=np.cumsum(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))),
        split=split[order],
        exact=(folded_keys ^ crcs)[order],
        folded=folded_keys[order],
        turns=np.array([len(dialogues[i].turns) for i in kept], dtype=np.uint32)[order],
        chars=np.array(sizes, dtype=np.uint32)[kept][order],
        dropped_trailing_questions=sum(dialogues[i].dropped_trailing_question for i in kept),
        rejects=rejects,
        line_count=line_count,
        pii=pii,
        replaced=replaced,
        flagged=flagged,
        blank=blank,
    )


def _linted(
    dialogues: list[Dialogue], texts: list[str], options: ConvertOptions
) -> tuple[dict, Counter]:
    """{record index: its safety violations}, and records per broken rule."""
    unsafe: dict = {}
    flagged: Counter = Counter()
    if options.lint == "off":
        return unsafe, flagged
    rules = SafetyRules.load(options.lint_rules)
    for i, dialogue in enumerate(dialogues):
        # The record's text, run together, is a superset for the pre-check: a claim that
        # spans two texts only sends the record to the exact check.
        if violations := rules.check(dialogue.turns, texts[i]):
            unsafe[i] = violations
            flagged.update({v.rule for v in violations})
    return unsafe, flagged


def _lint_detail(violations: list) -> str:
    return "; ".join(f"{v.rule} in turn {v.turn}: {v.matched!r} ({v.context})" for v in violations)


# --- converting process -------------------------------------------------------


def _run_chunks(source_name: str, options: ConvertOptions, chunks: Iterable[Chunk]):
    """Yield (chunk, result) in input order, with a bounded number in flight.

    With N workers, N - 1 run in a pool and this process is the Nth: besides
    writing the results in order, it converts a chunk itself whenever each
    pool worker has work queued. Every core converts, none is shared by two
    busy processes, and a chunk converted here is never copied between them.
    """
    here = functools.partial(convert_chunk, source_name, options)
    bmp_fold_table()  # built before the pool forks, so the workers share it
    if options.deid == "strict":
        deidentifier(options.deid_options)  # likewise: Presidio takes a second to set up
    if options.workers <= 1:
        for chunk in chunks:
            yield chunk, here(chunk)
        return
    helpers = options.workers - 1
    with (
        tempfile.TemporaryDirectory(prefix="medfactory-") as spill_dir,
        ProcessPoolExecutor(max_workers=helpers) as pool,  # shut down before the folder goes
    ):
        pending: deque = deque()  # (chunk, Future or ChunkResult), in input order
        for chunk in chunks:
            in_pool = sum(not _ready(outcome) for _, outcome in pending)
            if in_pool < 3 * helpers:  # one running and two queued per worker
                converting = pool.submit(_convert_in_pool, spill_dir, source_name, options, chunk)
                pending.append((chunk, converting))
            else:
                pending.append((chunk, here(chunk)))
            # Hand over what is ready at the front; wait for it once too much is held.
            while pending and (_ready(pending[0][1]) or len(pending) > 4 * options.workers):
                done, outcome = pending.popleft()
                yield done, _result(outcome)
        for done, outcome in pending:
            yield done, _result(outcome)


def _convert_in_pool(
    spill_dir: str, source_name: str, options: ConvertOptions, chunk: Chunk
) -> str:
    """convert_chunk in a pool worker; the result travels back through a file.

    Through the result pipe, half a megabyte of lines arrives 64 kB at a time,
    each read waiting for this process's busy thread to let go of the GIL, and
    the worker sits blocked on its write until the last piece is read.
    """
    result = convert_chunk(source_name, options, chunk)
    handle, path = tempfile.mkstemp(dir=spill_dir)
    with open(handle, "wb") as spill:
        pickle.dump(result, spill, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _ready(outcome: Future | ChunkResult) -> bool:
    return not isinstance(outcome, Future) or outcome.done()


def _result(outcome: Future | ChunkResult) -> ChunkResult:
    if isinstance(outcome, ChunkResult):
        return outcome
    spill = Path(outcome.result())
    result = pickle.loads(spill.read_bytes())
    spill.unlink()
    return result


# A dataset name becomes file names and dataset_info.json keys: nothing that leaves the folder.
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def check_name(name: str) -> None:
    if not NAME_RULE.fullmatch(name):
        raise SourceError(
            f"--name {name!r}: a dataset name is letters, digits, '_' and '-', starting with a "
            "letter or digit (it names NAME_train.jsonl and the dataset_info.json entries)"
        )


def check_inputs(inputs: list[Path]) -> list[Path]:
    paths = [Path(p) for p in inputs]
    if not paths:
        raise SourceError("no input files given")
    for path in paths:
        if path.is_dir():
            raise SourceError(f"{path}: is a folder, not a data file; pass the file inside it")
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
    check_name(options.name)
    inputs = check_inputs(inputs)
    if options.fmt not in FORMATS:
        raise SourceError(f"unknown format {options.fmt!r}; known: {', '.join(FORMATS)}")
    if options.deid not in DEID_LEVELS:
        raise SourceError(f"unknown --deid {options.deid!r}; known: {', '.join(DEID_LEVELS)}")
    if options.lint not in LINT_LEVELS:
        raise SourceError(f"unknown --lint {options.lint!r}; known: {', '.join(LINT_LEVELS)}")
    if options.lint != "off":
        SafetyRules.load(options.lint_rules)  # a broken rules file stops before the work
    if source_name == "table" and options.table is None:
        raise SourceError("the table source needs a column map: --column FIELD=COLUMN ...")
    dataset_dir = Path(options.dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    split_names = SPLIT_NAMES[: len(options.split)]
    planned = {
        f"{options.name}_{split}": dataset_entry(
            options.fmt, f"{options.name}_{split}.jsonl", options.with_system
        )
        for split in split_names
    }
    if not options.force:  # fail before the work, not after it
        check_conflicts(dataset_dir, read_registry(dataset_dir), planned)

    summary = Summary(
        name=options.name, deid=options.deid, audit=Audit(options.seed), lint=options.lint
    )
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
                chunks, next_line = source.chunks(path, options), 0
                for chunk, result in _run_chunks(source_name, options, chunks):
                    line_base = next_line if chunk.line_base is None else chunk.line_base
                    account.take(chunk.path, result, line_base)
                    next_line = line_base + result.line_count
                    progress(done_before + chunk.end)
                done_before += path.stat().st_size
        progress(total_bytes)
        if not any(summary.written.values()):  # register nothing, keep the reasons
            if summary.rejected:
                os.replace(tmp_rejects, dataset_dir / f"{options.name}.rejects.jsonl")
            raise NothingConverted(
                _nothing_converted(source_name, inputs, options, summary), summary
            )
        _publish(options, summary, tmp, tmp_rejects, planned, (source_name, inputs))
    finally:  # after an error or Ctrl-C, nothing half-written stays behind
        for path in (*tmp.values(), tmp_rejects):
            path.unlink(missing_ok=True)
    return summary


class NothingConverted(SourceError):
    """Not one record of the input could be converted; nothing was registered.

    `summary` still accounts for every record (all rejected, to the rejects file).
    """

    def __init__(self, message: str, summary: Summary):
        super().__init__(message)
        self.summary = summary


def _nothing_converted(source_name: str, inputs: list[Path], options, summary: Summary) -> str:
    files = ", ".join(map(str, inputs))
    if not summary.read:
        return f"{files}: no records in the input; nothing was registered"
    reasons = ", ".join(f"{reason} {count}" for reason, count in summary.rejected.most_common(3))
    about = ""
    if get_source(source_name).layout != "table":  # a table's rows were read: their text failed
        others = [name for name in matching_sources(inputs[0]) if name != source_name]
        hint = f": did you mean {' or '.join(others)}?" if others else "."
        about = f" The file is {describe_file(inputs[0])}{hint}"
    return (
        f"{files}: none of the {summary.read} records could be read as {source_name} "
        f"({reasons}); nothing was registered.{about} Each record and "
        f"its reason: {Path(options.dataset_dir) / (options.name + '.rejects.jsonl')}"
    )


def _dump_any(value: dict) -> bytes:
    """JSON for a rejected record, which may hold what orjson refuses (huge ints, surrogates)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value).encode()


class SeenHashes:
    """A growing set of 64-bit hashes kept as a few sorted arrays: 8 bytes per record.

    Membership is tested a chunk at a time, so the index of a 226k-line file
    costs under 2 MB and a Python set's per-entry overhead never builds up.
    Each chunk's keys become a new sorted run, and runs of similar size are
    merged (as in a binary counter), so adding N keys costs O(N log N) in all.
    A 2 MB bitmap of the keys' top 24 bits answers "never seen" for almost
    every new key without searching the runs.
    """

    _BITS = 24

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []  # sorted, unique, sizes decreasing
        self.bitmap = np.zeros(1 << (self._BITS - 3), dtype=np.uint8)

    def __len__(self) -> int:
        return sum(map(len, self.runs))

    def _bits(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = (keys >> np.uint64(64 - self._BITS)).astype(np.int64)
        return top >> 3, (1 << (top & 7)).astype(np.uint8)

    def seen(self, keys: np.ndarray) -> np.ndarray:
        """For each key: was it added before, or does it occur earlier in `keys`?"""
        earlier = np.ones(len(keys), dtype=bool)
        earlier[np.unique(keys, return_index=True)[1]] = False
        byte, bit = self._bits(keys)
        maybe = np.flatnonzero(self.bitmap[byte] & bit)
        for run in self.runs:
            at = np.minimum(np.searchsorted(run, keys[maybe]), len(run) - 1)
            earlier[maybe] |= run[at] == keys[maybe]
        return earlier

    def add(self, keys: np.ndarray, seen: np.ndarray) -> None:
        """Add `keys`, given what `seen(keys)` answered for them."""
        new = np.unique(keys[~seen])
        if not len(new):
            return
        byte, bit = self._bits(new)
        np.bitwise_or.at(self.bitmap, byte, bit)
        self.runs.append(new)
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            # Two sorted runs: the stable sort (timsort) merges them in one pass, in place.
            merged = np.concatenate(self.runs[-2:])
            merged.sort(kind="stable")
            self.runs[-2:] = [merged]


class _Accounting:
    """Routes each converted record: split file, rejects file, or duplicate count.

    A record is an exact duplicate when an identical record came earlier in the
    input, a normalised one when only its folded text did; the first one stays.
    """

    def __init__(self, summary: Summary, dedup: bool, splits: dict, rejects):
        self.summary, self.dedup, self.splits, self.rejects = summary, dedup, splits, rejects
        self.seen_exact, self.seen_folded = SeenHashes(), SeenHashes()

    def take(self, source: str, result: ChunkResult, line_base: int) -> None:
        summary = self.summary
        summary.read += result.read
        summary.pii.update(result.pii)
        summary.flagged.update(result.flagged)
        for line_no, entry in result.replaced:
            summary.audit.offer(source, line_base + line_no, entry)
        for line_no, reason, detail, raw in result.rejects:
            summary.rejected[reason] += 1
            line = line_base + line_no
            reject = {"source": source, "line": line, "reason": reason, "detail": detail}
            self.rejects.write(_dump_any({**reject, "record": raw}) + b"\n")
        summary.dropped_trailing_questions += result.dropped_trailing_questions
        summary.blank += result.blank

        keep = np.ones(len(result.ends), dtype=bool)
        if self.dedup and len(keep):
            exact_seen = self.seen_exact.seen(result.exact)
            folded_seen = self.seen_folded.seen(result.folded)
            self.seen_exact.add(result.exact, exact_seen)
            self.seen_folded.add(result.folded, folded_seen)
            summary.duplicates["exact"] += int(exact_seen.sum())
            summary.duplicates["normalised"] += int((folded_seen & ~exact_seen).sum())
            keep = ~(exact_seen | folded_seen)
        for histogram, values in ((summary.turns, result.turns), (summary.chars, result.chars)):
            value, count = np.unique(values[keep], return_counts=True)
            histogram.update(dict(zip(value.tolist(), count.tolist(), strict=True)))

        lines, offsets = memoryview(result.lines), [0, *result.ends.tolist()]
        bounds = np.searchsorted(result.split, np.arange(len(SPLIT_NAMES) + 1)).tolist()
        for index, split in enumerate(SPLIT_NAMES):
            first, last = bounds[index], bounds[index + 1]
            if first == last:
                continue
            summary.written[split] += int(keep[first:last].sum())
            # Write the kept lines as the runs between duplicates, not one by one.
            start = offsets[first]
            for i in (np.flatnonzero(~keep[first:last]) + first).tolist():
                self.splits[split].write(lines[start : offsets[i]])
                start = offsets[i + 1]
            self.splits[split].write(lines[start : offsets[last]])


def _publish(
    options,
    summary: Summary,
    tmp: dict,
    tmp_rejects: Path,
    planned: dict,
    origin: tuple[str, list[Path]],
) -> None:
    """Move the files into place and register the non-empty splits, under the lock; each
    split's manifest names the source files (with their hashes), options and counts."""
    dataset_dir = Path(options.dataset_dir)
    keep = {split for split, count in summary.written.items() if count and split in tmp}
    entries = {name: e for name, e in planned.items() if name.rsplit("_", 1)[1] in keep}
    stale = tuple(name for name in planned if name not in entries)
    rejects_path = dataset_dir / f"{options.name}.rejects.jsonl"
    audit_path = dataset_dir / f"{options.name}.deid-audit.json"

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
        if options.deid == "off":
            audit_path.unlink(missing_ok=True)
        else:
            settings = {"pseudonymize": options.deid_options.pseudonymize} | (
                {"ner_config": options.deid_options.ner_config}
                if options.deid_options.ner_config
                else {}
            )
            summary.audit.write(audit_path, options.deid, summary.pii, settings)
            summary.files["deid_audit"] = str(audit_path)

    def describe(_name: str) -> dict:
        return conversion_manifest(origin[0], origin[1], options, summary.as_dict())

    register(dataset_dir, entries, force=options.force, remove=stale, before_write=move_files,
             describe=describe)  # fmt: skip
