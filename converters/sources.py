"""The registry of sources: how each one is cut into chunks and parsed.

Cutting happens in the converting process and is cheap: a jsonl file is cut
into byte ranges at line ends, which the workers read themselves, so no record
text crosses a process boundary on the way in. A JSON array has to be parsed to
find its elements, so its chunks carry the elements. Parsing a record into a
`Dialogue` is pure and runs in the workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from converters.column_map import parse_table_record
from converters.huatuo import parse_huatuo_line
from converters.medical_o1 import iter_json_array, parse_medical_o1_record
from converters.records import Dialogue, SourceError
from converters.table_files import (
    CsvLayout,
    check_columns,
    csv_layout,
    csv_range_rows,
    csv_ranges,
    table_kind,
    table_records,
)

CHUNK_BYTES = 1 << 19  # a chunk's working set stays in the CPU cache
CHUNK_RECORDS = 2000


@dataclass(frozen=True)
class Chunk:
    path: str
    end: int  # bytes of the file consumed once this chunk is done (for progress)
    start: int = 0  # jsonl: byte range [start, end) of the file
    records: tuple = ()  # JSON array: (line number, element) pairs
    # Line numbers of `records(chunk)` count from here; None: from the line after
    # the previous chunk of the file (a jsonl chunk does not know it until read).
    line_base: int | None = 0
    csv: CsvLayout | None = None  # a CSV table: [start, end) is read in the worker


@dataclass(frozen=True)
class Source:
    name: str
    chunks: Callable[[Path, object], Iterator[Chunk]]  # (path, ConvertOptions)
    # -> ([(line number, payload)], lines the chunk spans)
    records: Callable[[Chunk], tuple[list[tuple[int, object]], int]]
    parse: Callable[[object, object], Dialogue]  # (payload, ConvertOptions)
    description: str
    layout: str  # what the file looks like: LAYOUTS' keys


def _jsonl_chunks(path: Path, options: object = None) -> Iterator[Chunk]:
    """Byte ranges of about CHUNK_BYTES that end at a line end.

    Only the bytes around each cut are read here: the workers read the ranges
    and count their lines, so this process never scans the file.
    """
    size = path.stat().st_size
    with open(path, "rb") as data:
        start = 0
        while start < size:
            end = start + CHUNK_BYTES
            if end < size:
                data.seek(end - 1)
                data.readline()  # to the end of the line holding byte end - 1
                end = data.tell()
            yield Chunk(str(path), end=min(end, size), start=start, line_base=None)
            start = end


def _jsonl_records(chunk: Chunk) -> tuple[list[tuple[int, bytes]], int]:
    with open(chunk.path, "rb") as data:
        data.seek(chunk.start)
        text = data.read(chunk.end - chunk.start)
    lines = text.split(b"\n")
    if b"\r" in text:  # Windows line ends
        lines = [line.rstrip(b"\r") for line in lines]
    # A blank line is not a record.
    records = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    return records, len(lines) - 1


def _json_array_chunks(path: Path, options: object = None) -> Iterator[Chunk]:
    size = path.stat().st_size
    elements = list(iter_json_array(path))  # parse errors surface before any work
    for first in range(0, len(elements), CHUNK_RECORDS):
        part = tuple(elements[first : first + CHUNK_RECORDS])
        done = size * (first + len(part)) // len(elements)
        yield Chunk(str(path), end=done, records=part)


def _json_array_records(chunk: Chunk) -> tuple[list[tuple[int, object]], int]:
    return list(chunk.records), 0


def _table_chunks(path: Path, options) -> Iterator[Chunk]:
    """A CSV in byte ranges ending at row ends, read by the workers (rows grouped into
    conversations excepted); any other table in chunks of CHUNK_RECORDS rows read here.
    The column map is checked before the first."""
    column_map = options.table
    if table_kind(path) == "csv" and column_map.layout != "conversation":
        layout = csv_layout(path, column_map.encoding, column_map.mapped_columns)
        check_columns(path, list(layout.header), column_map)
        for start, end in csv_ranges(path, layout, CHUNK_BYTES):
            first = start in (0, layout.body_start)
            line_base = layout.header_row if first else None
            yield Chunk(str(path), end, start, line_base=line_base, csv=layout)
        return
    records, position = table_records(path, column_map)
    while batch := tuple(itertools.islice(records, CHUNK_RECORDS)):
        yield Chunk(str(path), end=position(), records=batch)


def _table_records(chunk: Chunk) -> tuple[list[tuple[int, object]], int]:
    if chunk.csv is None:
        return list(chunk.records), 0
    return csv_range_rows(chunk.path, chunk.csv, chunk.start, chunk.end)


SOURCES = {
    "huatuo": Source(
        "huatuo",
        _jsonl_chunks,
        _jsonl_records,
        lambda payload, options: parse_huatuo_line(payload, options.system),
        "HuatuoGPT-sft-data-v1 jsonl dialogues",
        "jsonl",
    ),
    "medical-o1": Source(
        "medical-o1",
        _json_array_chunks,
        _json_array_records,
        lambda payload, options: parse_medical_o1_record(payload, options.cot, options.system),
        "medical-o1-reasoning-SFT JSON arrays (Question, Complex_CoT, Response)",
        "json-array",
    ),
    "table": Source(
        "table",
        _table_chunks,
        _table_records,
        lambda payload, options: parse_table_record(payload, options.table, options.system),
        "any CSV, XLSX, JSONL or JSON table, through a column map (--column FIELD=COLUMN)",
        "table",
    ),
}


LAYOUTS = {"json-array": "a JSON array", "jsonl": "JSON lines (one object a line)"}


def sniff_layout(path: Path) -> str | None:
    """'json-array', 'jsonl' or None, from the first character that is not blank."""
    with open(path, "rb") as data:
        head = data.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return {b"[": "json-array", b"{": "jsonl"}.get(head[:1])


def describe_file(path: Path) -> str:
    layout = sniff_layout(path)
    return LAYOUTS[layout] if layout else "neither a JSON array nor JSON lines"


def matching_sources(path: Path) -> list[str]:
    """The sources whose files look like this one."""
    layout = sniff_layout(path)
    return [name for name, source in SOURCES.items() if source.layout == layout]


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise SourceError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None
