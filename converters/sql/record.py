"""The dataset's record of its database source, DATASET_DIR/NAME.source.json: where its
rows came from (the URL with the password masked, the query or table), the settings
that place a record in a split, the high-water mark of `--since-column`, and one line
per run. The next run reads only rows at or past the mark.

Also what an incremental run needs to know of the records already written: their
keys, computed again from the split files, exactly as the converter computes them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from converters.clean import fold_batch
from converters.registry import write_atomically
from converters.split import content_keys

RECORD_SUFFIX = ".source.json"
KEY_BATCH = 10_000  # records folded and hashed at a time
# Settings an incremental run must share with the dataset it adds to: they decide
# where a record goes and what its line looks like.
PLACEMENT = ("format", "split", "seed", "since_column")

# How a mark's value is kept in JSON and read back, by the type the driver returned.
_MARK_TYPES = {
    "datetime": (dt.datetime, dt.datetime.isoformat, dt.datetime.fromisoformat),
    "date": (dt.date, dt.date.isoformat, dt.date.fromisoformat),
    "time": (dt.time, dt.time.isoformat, dt.time.fromisoformat),
    "integer": (int, int, int),
    "number": (float, float, float),
    "decimal": (decimal.Decimal, str, decimal.Decimal),
    "text": (str, str, str),
}


class UncomparableMark(ValueError):
    """A --since-column whose values have no order to keep a mark by."""


def record_path(dataset_dir: Path, name: str) -> Path:
    return Path(dataset_dir) / f"{name}{RECORD_SUFFIX}"


def read_record(dataset_dir: Path, name: str) -> dict | None:
    path = record_path(dataset_dir, name)
    if not path.exists():
        return None
    try:
        record = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as error:
        from converters.sql.database import DatabaseError

        raise DatabaseError(
            f"{path}: not valid JSON ({error}); fix it, or pass --full to read everything again"
        ) from None
    return record if isinstance(record, dict) else None


def write_record(dataset_dir: Path, name: str, record: dict) -> None:
    text = orjson.dumps(record, option=orjson.OPT_INDENT_2).decode() + "\n"
    write_atomically(record_path(dataset_dir, name), text)


def mark_type(value: object) -> str:
    """The kind of a --since-column value; UncomparableMark for one with no useful order."""
    if isinstance(value, bool):  # an int to Python, but two values are no mark
        raise UncomparableMark("bool")
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return "datetime"
    for kind, (python_type, _, _) in _MARK_TYPES.items():
        if isinstance(value, python_type):
            return kind
    raise UncomparableMark(type(value).__name__)


def encode_mark(value: object) -> dict | None:
    if value is None:
        return None
    kind = mark_type(value)
    return {"type": kind, "value": _MARK_TYPES[kind][1](value)}


def decode_mark(mark: dict | None) -> object:
    if not mark:
        return None
    return _MARK_TYPES[mark["type"]][2](mark["value"])


class HighWater:
    """The largest value of the since-column over every row read (NULLs skipped);
    refuses values that cannot be ordered, or of two kinds (text beside numbers)."""

    _NUMERIC = {"integer", "number", "decimal"}

    def __init__(self, column: str, index: int, start: object = None):
        self.column, self.index = column, index
        self.value = start
        self.kind = mark_type(start) if start is not None else None

    def update(self, rows: list) -> None:
        values = [row[self.index] for row in rows if row[self.index] is not None]
        if not values:
            return
        kinds = {self._kind(v) for v in {type(v): v for v in values}.values()}
        if self.kind:
            kinds.add(self.kind)
        if len(kinds) > 1 and not kinds <= self._NUMERIC:
            raise UncomparableMark(" and ".join(sorted(kinds)))
        self.kind = min(kinds)  # any one of them: numbers compare with numbers
        try:
            top = max(values)
        except TypeError as error:  # e.g. times with and without a time zone
            raise UncomparableMark(str(error)) from None
        if self.value is None or top > self.value:
            self.value = top

    def _kind(self, value: object) -> str:
        kind = mark_type(value)
        if kind == "datetime" and self.value is not None and _aware(value) != _aware(self.value):
            raise UncomparableMark("datetime with and without a time zone")
        return kind


def _aware(value: dt.datetime) -> bool:
    return isinstance(value, dt.datetime) and value.tzinfo is not None


def existing_keys(paths: list[Path], fmt: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (exact, folded) keys of the records in the split files, sorted: the keys the
    converter gave each line when it wrote it (see converters.convert.convert_chunk)."""
    exact, folded = [], []
    for lines in _batches(paths):
        texts = [_text(orjson.loads(line), fmt) for line in lines]
        keys = content_keys(fold_batch(texts)[0], seed)
        crcs = np.fromiter(map(zlib.crc32, lines), dtype=np.uint64, count=len(lines))
        exact.append(keys ^ crcs)
        folded.append(keys)
    if not exact:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    return np.sort(np.concatenate(exact)), np.sort(np.concatenate(folded))


def _batches(paths: list[Path]) -> Iterator[list[bytes]]:
    for path in paths:
        with open(path, "rb") as data:
            batch: list[bytes] = []
            for line in data:
                if line.strip():
                    batch.append(line)
                if len(batch) == KEY_BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch


def _text(record: dict, fmt: str) -> str:
    """`Dialogue.text` of a written record: the system prompt and every turn, joined."""
    if fmt == "alpaca":
        turns = [text for pair in record.get("history", ()) for text in pair]
        turns += [record["instruction"], record.get("input", ""), record["output"]]
    else:
        turns = [message["value"] for message in record["conversations"]]
    return record.get("system", "") + "".join(turns)


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each key: is it in `sorted_keys`?"""
    if not len(sorted_keys) or not len(keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys
