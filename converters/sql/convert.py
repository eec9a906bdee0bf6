"""`data convert sql`: a table or query of a database into LLaMA-Factory splits, through
the table source's column map, de-identification, safety lint, rejects file and
accounting (converters.convert), its rows streamed in chunks.

With `--since-column`, the largest value of that column is kept in the dataset's
record (converters.sql.record) and the next run reads only the rows at or past it.
Their records are added to the same split files: a record's split is a hash of its
content, so no record already written ever changes split, and a row whose content is
already in the dataset is counted as already present, not written twice. Everything is
written to temporary files and moved into place, with the registry and the record,
only once the last row is converted: an error leaves the dataset as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters.column_map import ColumnMap
from converters.convert import (
    DEID_LEVELS,
    ChunkResult,
    ConvertOptions,
    NothingConverted,
    Summary,
    _Accounting,
    _run_chunks,
    check_name,
)
from converters.deid.audit import Audit
from converters.formats import FORMATS, dataset_entry
from converters.records import SourceError
from converters.registry import check_conflicts, conversion_manifest, read_registry, register
from converters.safety import LINT_LEVELS, SafetyRules
from converters.sources import Chunk
from converters.split import SPLIT_NAMES
from converters.sql.database import Database, SqlSource
from converters.sql.record import (
    PLACEMENT,
    HighWater,
    UncomparableMark,
    contains,
    decode_mark,
    encode_mark,
    existing_keys,
    read_record,
    record_path,
    write_record,
)
from converters.table_files import _conversations

_PLAIN = (str, int, float, type(None))  # what the column map reads as it is
# () -> a context yielding update(rows read, records converted)
RowProgress = Callable[[], AbstractContextManager[Callable[[int, int], None]]]


@contextlib.contextmanager
def no_progress() -> Iterator[Callable[[int, int], None]]:
    yield lambda rows, records: None


@dataclass
class SqlSummary:
    """The conversion's summary, and what the database run added to the dataset."""

    summary: Summary
    source: str  # the URL, password masked
    what: str  # "table NAME" or "query"
    mode: str  # "full": the dataset written anew; "incremental": rows past the mark added
    since_column: str | None = None
    mark_before: dict | None = None
    mark_after: dict | None = None
    already_present: int = 0  # rows whose record the dataset already holds
    total: dict[str, int] = field(default_factory=dict)  # records in each split now

    @property
    def new(self) -> int:
        return sum(self.summary.written.values())

    @property
    def accounted(self) -> int:
        return self.summary.accounted + self.already_present

    def as_dict(self) -> dict:
        return {
            **self.summary.as_dict(),
            "database": {
                "source": self.source,
                "read_from": self.what,
                "mode": self.mode,
                "new": self.new,
                "already_present": self.already_present,
                "rejected": self.summary.rejected.total(),
                "since_column": self.since_column,
                "high_water_mark": {"before": self.mark_before, "after": self.mark_after},
                "total": dict(self.total),
            },
        }


def convert_sql(
    source: SqlSource,
    options: ConvertOptions,
    full: bool = False,
    progress: RowProgress = no_progress,
) -> SqlSummary:
    """Read `source`, convert its rows, and write, register and record the dataset.

    `progress` is entered once the database has answered and the result's columns are
    checked, so that a mistake is one line with no progress bar before it."""
    column_map = _checked(source, options)
    dataset_dir = Path(options.dataset_dir)
    dataset_dir.mkdir(parents=True, exist_ok=True)
    record = read_record(dataset_dir, options.name) if source.since_column else None
    mark = None if full or not record else decode_mark(record.get("high_water_mark"))
    placement = {
        "format": options.fmt,
        "split": list(options.split),
        "seed": options.seed,
        "since_column": source.since_column,
    }
    if mark is not None:
        _check_placement(record, placement, options.name)
    split_names = SPLIT_NAMES[: len(options.split)]
    planned = {
        f"{options.name}_{split}": dataset_entry(
            options.fmt, f"{options.name}_{split}.jsonl", options.with_system
        )
        for split in split_names
    }
    if not options.force:  # fail before the work, not after it
        check_conflicts(dataset_dir, read_registry(dataset_dir), planned)

    database = Database(source)
    run = SqlSummary(
        Summary(name=options.name, deid=options.deid, audit=Audit(options.seed), lint=options.lint),
        source=database.shown,
        what=source.what,
        mode="incremental" if mark is not None else "full",
        since_column=source.since_column,
        mark_before=encode_mark(mark),
    )
    pid = os.getpid()
    finals = {split: dataset_dir / f"{options.name}_{split}.jsonl" for split in split_names}
    tmp = {split: dataset_dir / f".{options.name}_{split}.jsonl.{pid}" for split in split_names}
    rejects_path = dataset_dir / f"{options.name}.rejects.jsonl"
    tmp_rejects = dataset_dir / f".{options.name}.rejects.jsonl.{pid}"
    try:
        with database.rows(mark) as (columns, batches):
            _check_columns(database, columns, column_map, source)
            high = (
                HighWater(source.since_column, columns.index(source.since_column), mark)
                if source.since_column
                else None
            )
            before: dict[str, int] = dict.fromkeys(split_names, 0)
            present = (np.zeros(0, np.uint64), np.zeros(0, np.uint64))
            if mark is not None:  # the dataset so far: its files carried over, its keys known
                kept = [finals[s] for s in split_names if finals[s].exists()]
                present = existing_keys(kept, options.fmt, options.seed)
                for split in split_names:
                    before[split] = _copy(finals[split], tmp[split])
                _copy(rejects_path, tmp_rejects)
            label = f"{database.shown} ({source.what})"
            records = _records(label, columns, batches, column_map, high, database, source)
            with progress() as on_progress:
                _convert(records, options, run, tmp, tmp_rejects, present, on_progress)
        run.total = {split: before[split] + run.summary.written[split] for split in split_names}
        run.mark_after = encode_mark(high.value) if high else None
        if not any(run.total.values()):  # register nothing, keep the reasons
            if run.summary.rejected:
                os.replace(tmp_rejects, rejects_path)
            raise NothingConverted(_nothing_converted(run, options), run.summary)
        read_from = {"table": source.table} if source.table else {"query": source.query}
        _publish(options, run, tmp, tmp_rejects, planned, {**read_from, **placement}, record)
    finally:  # after an error or Ctrl-C, nothing half-written stays behind
        for path in (*tmp.values(), tmp_rejects):
            path.unlink(missing_ok=True)
    return run


def _checked(source: SqlSource, options: ConvertOptions) -> ColumnMap:
    """The options' own mistakes, before the database is asked anything."""
    check_name(options.name)
    if bool(source.query) == bool(source.table):
        raise SourceError("say what to read: --query SQL or --table NAME (one of them)")
    if source.chunk_rows < 1:
        raise SourceError(f"--chunk-rows {source.chunk_rows}: give a positive number of rows")
    if options.fmt not in FORMATS:
        raise SourceError(f"unknown format {options.fmt!r}; known: {', '.join(FORMATS)}")
    if options.deid not in DEID_LEVELS:
        raise SourceError(f"unknown --deid {options.deid!r}; known: {', '.join(DEID_LEVELS)}")
    if options.lint not in LINT_LEVELS:
        raise SourceError(f"unknown --lint {options.lint!r}; known: {', '.join(LINT_LEVELS)}")
    if options.lint != "off":
        SafetyRules.load(options.lint_rules)  # a broken rules file stops before the work
    if options.table is None:
        raise SourceError("say which column holds what: --column question=COL ...")
    if source.since_column and options.table.layout == "conversation":
        raise SourceError(
            f"--since-column {source.since_column}: a conversation's rows cannot be read in "
            "part; leave --since-column out to convert the whole result each time"
        )
    return options.table


def _check_placement(record: dict, placement: dict, name: str) -> None:
    changed = [key for key in PLACEMENT if record.get(key) != placement[key]]
    if changed:
        was = ", ".join(f"{key} {record.get(key)!r} (now {placement[key]!r})" for key in changed)
        raise SourceError(
            f"{name} was built with {was}; records would land elsewhere: pass the same "
            "settings, or --full to convert everything again"
        )


def _check_columns(database: Database, columns: list[str], column_map, source) -> None:
    shown = ", ".join(columns) or "(none)"
    for field_name, column in column_map.columns:
        if column not in columns:
            raise SourceError(
                f"{database.shown}: the {source.what}'s result has no column {column!r} "
                f"(mapped to {field_name} by --column); its columns: {shown}"
            )
    if source.since_column and source.since_column not in columns:
        raise SourceError(
            f"{database.shown}: the {source.what}'s result has no column "
            f"{source.since_column!r} (--since-column); its columns: {shown}"
        )


def _records(
    label: str,
    columns: list[str],
    batches: Iterator[list],
    column_map: ColumnMap,
    high: HighWater | None,
    database: Database,
    source: SqlSource,
) -> Iterator[Chunk]:
    """The result's rows as the table source's chunks: (row number, {column: value}),
    numbered from 1 in the order the database returned them."""

    def rows() -> Iterator[tuple[int, dict]]:
        number = 0
        for batch in batches:
            if high:
                try:
                    high.update(batch)
                except UncomparableMark as error:
                    raise SourceError(
                        f"{database.shown}: --since-column {source.since_column}: its values "
                        f"({error}) cannot be compared to keep a high-water mark; choose a "
                        "column of times, dates, numbers or text"
                    ) from None
            for values in batch:
                number += 1
                yield number, _row(columns, values)

    found = rows()
    if column_map.layout == "conversation":  # rows grouped by conversation, as for a file
        found = _conversations(found, column_map)
    read = 0
    while batch := tuple(itertools.islice(found, source.chunk_rows)):
        read += len(batch)
        yield Chunk(label, end=read, records=batch)


def _row(columns: list[str], values) -> dict:
    pairs = zip(columns, values, strict=True)
    return {c: v if isinstance(v, _PLAIN) else _text(v) for c, v in pairs}


def _text(value: object) -> str:
    """A database value the column map does not read as it is: dates, decimals, bytes."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


class _Adding(_Accounting):
    """The converter's accounting, after taking out the records the dataset already holds
    (same exact line, or same folded text when de-duplicating)."""

    def __init__(self, run: SqlSummary, dedup: bool, splits: dict, rejects, present):
        super().__init__(run.summary, dedup, splits, rejects)
        self.run, (self.exact, self.folded) = run, present

    def take(self, source: str, result: ChunkResult, line_base: int) -> None:
        held = contains(self.exact, result.exact)
        if self.dedup:
            held |= contains(self.folded, result.folded)
        if held.any():
            count = int(held.sum())
            self.run.already_present += count
            self.summary.read += count
            result = _without(result, held)
        super().take(source, result, line_base)


def _without(result: ChunkResult, drop: np.ndarray) -> ChunkResult:
    """`result` less the records marked in `drop` (their order, and so the split
    grouping, kept)."""
    keep = np.flatnonzero(~drop)
    starts = np.concatenate(([0], result.ends[:-1]))
    view = memoryview(result.lines)
    lines = [view[starts[i] : result.ends[i]] for i in keep.tolist()]
    sizes = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    return dataclasses.replace(
        result,
        lines=b"".join(lines),
        ends=np.cumsum(sizes),
        split=result.split[keep],
        exact=result.exact[keep],
        folded=result.folded[keep],
        turns=result.turns[keep],
        chars=result.chars[keep],
    )


def _convert(chunks, options, run: SqlSummary, tmp: dict, tmp_rejects: Path, present, progress):
    """Convert the chunks (in the converter's workers) and append them to the files."""
    summary = run.summary
    with contextlib.ExitStack() as files:
        splits = {split: files.enter_context(open(path, "ab")) for split, path in tmp.items()}
        rejects = files.enter_context(open(tmp_rejects, "ab"))
        account = _Adding(run, options.dedup, splits, rejects, present)
        for chunk, result in _run_chunks("table", options, chunks):
            account.take(chunk.path, result, 0)
            progress(chunk.end, summary.read)


def _copy(source: Path, target: Path) -> int:
    """Copy `source` (when it exists) to `target`; the lines it holds."""
    if not source.exists():
        return 0
    shutil.copyfile(source, target)
    lines = 0
    with open(target, "rb") as data:
        while block := data.read(1 << 20):
            lines += block.count(b"\n")
    return lines


def _nothing_converted(run: SqlSummary, options: ConvertOptions) -> str:
    summary = run.summary
    where = f"{run.source} ({run.what})"
    if not summary.read:
        return f"{where}: the result has no rows; nothing was registered"
    reasons = ", ".join(f"{reason} {count}" for reason, count in summary.rejected.most_common(3))
    rejects = Path(options.dataset_dir) / f"{options.name}.rejects.jsonl"
    return (
        f"{where}: none of the {summary.read} rows could be converted ({reasons}); nothing "
        f"was registered. Each row and its reason: {rejects}"
    )


def _publish(options, run: SqlSummary, tmp, tmp_rejects, planned, settings, record) -> None:
    """Move the files into place, register the non-empty splits and write the record,
    under the registry's lock."""
    dataset_dir, summary = Path(options.dataset_dir), run.summary
    keep = {split for split, count in run.total.items() if count}
    entries = {name: e for name, e in planned.items() if name.rsplit("_", 1)[1] in keep}
    stale = tuple(name for name in planned if name not in entries)
    rejects_path = dataset_dir / f"{options.name}.rejects.jsonl"
    audit_path = dataset_dir / f"{options.name}.deid-audit.json"
    runs = (record or {}).get("runs", []) if run.mode == "incremental" else []
    this_run = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": run.mode,
        "read": summary.read,
        "new": run.new,
        "already_present": run.already_present,
        "duplicates": sum(summary.duplicates.values()),
        "rejected": summary.rejected.total(),
        "high_water_mark": run.mark_after,
    }
    source_record = {
        "source": "sql",
        "url": run.source,
        **settings,
        "high_water_mark": run.mark_after,
        "runs": [*runs, this_run],
    }

    def move_files() -> None:
        for split, path in tmp.items():
            final = dataset_dir / f"{options.name}_{split}.jsonl"
            if split in keep:
                os.replace(path, final)
                summary.files[split] = str(final)
            else:
                path.unlink()
                final.unlink(missing_ok=True)
        if tmp_rejects.stat().st_size:
            os.replace(tmp_rejects, rejects_path)
            summary.files["rejects"] = str(rejects_path)
        else:
            tmp_rejects.unlink()
            rejects_path.unlink(missing_ok=True)
        if options.deid == "off":
            audit_path.unlink(missing_ok=True)
        else:
            deid = {"pseudonymize": options.deid_options.pseudonymize} | (
                {"ner_config": options.deid_options.ner_config}
                if options.deid_options.ner_config
                else {}
            )
            summary.audit.write(audit_path, options.deid, summary.pii, deid)
            summary.files["deid_audit"] = str(audit_path)
        if run.since_column:
            write_record(dataset_dir, options.name, source_record)
            summary.files["source_record"] = str(record_path(dataset_dir, options.name))
        else:  # a record without a mark would only mislead the next run
            record_path(dataset_dir, options.name).unlink(missing_ok=True)

    def describe(_name: str) -> dict:
        found = conversion_manifest("sql", [], options, summary.as_dict())
        return found | {"origin": {"database": run.source, **settings}}

    register(dataset_dir, entries, force=options.force, remove=stale, before_write=move_files,
             describe=describe)  # fmt: skip
