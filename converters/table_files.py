"""Reading hospital tables: CSV, XLSX, JSON lines and JSON arrays, rows numbered as a
spreadsheet shows them.

Whole-file problems (a column the file lacks, an empty sheet, merged cells,
undecodable bytes, an encoding that cannot be told: `converters.encodings`) raise
`SourceError` naming file, row and column, before any row is converted. A CSV is
cut into byte ranges that end where a row ends, which the converter's workers read
themselves. A blank row is yielded as `BLANK`: no record, but counted.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from converters.column_map import ColumnMap
from converters.encodings import resolve_encoding
from converters.medical_o1 import iter_json_array
from converters.records import SourceError

TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".json": "json",
}
DELIMITERS = (",", ";", "\t", "|")
# Exports often put a title or the export date above the header: the header is the first
# of this many rows that holds every mapped column (row 1 when none does).
HEADER_ROWS_SEARCHED = 10


def table_kind(path: Path) -> str:
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        hint = " (save it as .xlsx or .csv)" if path.suffix.lower() in (".xls", ".ods") else ""
        raise SourceError(
            f"{path}: not a table file{hint}; read: {', '.join(sorted(TABLE_SUFFIXES))}"
        )
    return kind


def read_rows(path: Path, column_map: ColumnMap) -> tuple[list[str], Iterator, Callable[[], int]]:
    """The file's column names, its rows as (row or line number, row) pairs, and how
    many bytes of the file the rows read so far took (for progress).

    A CSV or XLSX row is a dict of column -> text, numbered as a spreadsheet
    shows it (the header is row 1, or the row found below a title). A JSONL line or
    JSON element is whatever it holds: a line that is not an object is rejected by
    the converter.
    """
    kind = table_kind(path)
    wanted = column_map.mapped_columns
    if kind == "csv":
        return _csv_rows(path, column_map.encoding, wanted)
    if kind == "xlsx":
        return _xlsx_rows(path, column_map.sheet, wanted)
    if kind == "jsonl":
        consumed = [0]
        rows = _jsonl_rows(path, consumed)
        position = lambda: consumed[0]  # noqa: E731
    else:
        size = path.stat().st_size
        rows, position = iter_json_array(path), lambda: size  # parsed whole before the first
    first = list(itertools.islice(rows, 1000))
    columns = list(dict.fromkeys(k for _, row in first if isinstance(row, dict) for k in row))
    return columns, itertools.chain(first, rows), position


class BlankRow:
    """A row with no text in any cell (a blank line of JSON lines): never a record,
    counted as blank in the summary."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BLANK"


BLANK = BlankRow()


@dataclass(frozen=True)
class CsvLayout:
    """What a worker needs to read a byte range of a CSV file on its own."""

    encoding: str
    delimiter: str
    header: tuple[str, ...]
    body_start: int  # the byte after the header row
    header_row: int = 1  # its row number: the rows above it are a title, not records

    @property
    def splittable(self) -> bool:
        return _splittable(self.encoding)


def _splittable(encoding: str) -> bool:
    """Whether a file can be cut at b"\\n" bytes: not in UTF-16, where a line end is two
    bytes and b"\\n" can be half of any character."""
    return not encoding.lower().replace("_", "-").startswith("utf-16")


def csv_layout(path: Path, encoding: str | None, wanted: tuple[str, ...] = ()) -> CsvLayout:
    """The CSV's encoding (checked over the whole file), delimiter and header row: the
    first of its first rows that holds every column in `wanted`, or row 1."""
    stat = path.stat()
    return _csv_layout(path, encoding, wanted, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _csv_layout(
    path: Path, encoding: str | None, wanted: tuple[str, ...], size: int, mtime: int
) -> CsvLayout:
    """Once per file version: checking the encoding reads the whole file."""
    encoding = resolve_encoding(path, encoding)  # which decodes every byte to decide
    with open(path, "rb") as raw:
        head = raw.read(1 << 16)
    if path.suffix.lower() == ".tsv":
        delimiters = ["\t"]
    else:  # the sniffed one, unless another one splits out a row with the mapped columns
        sniffed = _sniff_delimiter(head, encoding)
        delimiters = [sniffed, *(d for d in DELIMITERS if d != sniffed)]
    read = _head_rows if _splittable(encoding) else _decoded_rows
    first = None  # the sniffed delimiter's rows, when no delimiter splits out the header
    for delimiter in delimiters:
        rows = list(itertools.islice(read(head, encoding, delimiter), HEADER_ROWS_SEARCHED))
        number = _header_index([cells for cells, _ in rows], wanted)
        if number is not None:
            break
        first = first or (delimiter, rows)
    else:
        (delimiter, rows), number = first, 0
    if not rows or not any(cell.strip() for cell in rows[0][0]):
        raise SourceError(f"{path}: empty table: no header row")
    header, body_start = rows[number]
    return CsvLayout(encoding, delimiter, tuple(header), min(body_start, size), number + 1)


def _head_rows(head: bytes, encoding: str, delimiter: str) -> Iterator[tuple[list[str], int]]:
    """The first rows of a CSV's first bytes: (cells, the byte after the row). A row ends
    at the first line end outside quotes."""
    end = 0
    while end < len(head):
        start = end
        while True:
            line = head[end:].split(b"\n", 1)[0]
            end += len(line) + 1
            if head[start:end].count(b'"') % 2 == 0 or end >= len(head):
                break
        text = head[start : min(end, len(head))].decode(encoding, errors="replace")
        cells = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
        yield [cell.strip().lstrip("\ufeff") for cell in cells], end


def _decoded_rows(head: bytes, encoding: str, delimiter: str) -> Iterator[tuple[list[str], int]]:
    """`_head_rows` for an encoding that cannot be cut at b"\\n" (UTF-16): decoded first;
    such a file is read whole, so where its rows end in bytes does not matter."""
    text = head.decode(encoding, errors="replace")
    for cells in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
        yield [cell.strip().lstrip("\ufeff") for cell in cells], len(head)


def _header_index(rows: list[list[str]], wanted: tuple[str, ...]) -> int | None:
    """Which of the first rows is the header: the first holding every wanted column
    (None: none does)."""
    needed = set(wanted)
    return next((i for i, cells in enumerate(rows) if needed and needed <= set(cells)), None)


def csv_ranges(path: Path, layout: CsvLayout, size: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of about `size` bytes that end where a row ends: at a line end
    outside quotes (a quoted field may hold line ends; quotes inside it come in pairs).
    A line end is one byte in UTF-8 and GB18030 alike, never part of a character."""
    total, start = path.stat().st_size, layout.body_start
    if not layout.splittable:
        yield 0, total
        return
    with open(path, "rb") as data:
        while start < total:
            data.seek(start)
            block = data.read(size)
            end, quotes = start + len(block), block.count(b'"')
            while end < total:
                line = data.readline()  # to the end of the row the block ends in
                end, quotes = end + len(line), quotes + line.count(b'"')
                if quotes % 2 == 0:
                    break
            yield start, end
            start = end


def csv_range_rows(path: str, layout: CsvLayout, start: int, end: int) -> tuple[list, int]:
    """The rows of a byte range as (row number within the range, {column: text}), and
    how many rows the range spans (blank ones included). A file that cannot be cut is
    one range, read whole, its header row skipped."""
    with open(path, "rb") as data:
        if layout.splittable:
            data.seek(start)
            text = data.read(end - start).decode(layout.encoding)
        else:
            text = data.read().decode(layout.encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter)
    if not layout.splittable:
        for _ in range(layout.header_row):  # the title rows and the header
            next(reader, None)
    rows, spanned = [], 0
    for spanned, cells in enumerate(reader, start=1):
        if "".join(cells).strip():
            rows.append((spanned, dict(zip(layout.header, cells, strict=False))))
        else:  # not a record, but counted
            rows.append((spanned, BLANK))
    return rows, spanned


def _csv_rows(
    path: Path, encoding: str | None, wanted: tuple[str, ...]
) -> tuple[list[str], Iterator, Callable]:
    """Every row, read here: what a conversation layout needs to group rows by their
    conversation (the other layouts read the file in ranges, in the workers)."""
    layout = csv_layout(path, encoding, wanted)
    size, consumed = path.stat().st_size, [0]

    def rows() -> Iterator[tuple[int, dict]]:
        row_base = layout.header_row
        for start, end in csv_ranges(path, layout, 1 << 20):
            records, spanned = csv_range_rows(str(path), layout, start, end)
            for row, record in records:
                yield row_base + row, record
            row_base += spanned
            consumed[0] = end
        consumed[0] = size

    return list(layout.header), rows(), lambda: consumed[0]


def _sniff_delimiter(head: bytes, encoding: str) -> str:
    sample = head.decode(encoding, errors="ignore")
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return ","


def _xlsx_rows(
    path: Path, sheet: str | None, wanted: tuple[str, ...]
) -> tuple[list[str], Iterator, Callable]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise SourceError(f"{path}: not a readable .xlsx workbook ({error})") from None
    if sheet is not None and sheet not in book.sheetnames:
        raise SourceError(f"{path}: no sheet {sheet!r}; sheets: {', '.join(book.sheetnames)}")
    sheet_name = sheet or book.sheetnames[0]
    worksheet = book[sheet_name]
    rows = worksheet.iter_rows(values_only=True)
    first = list(itertools.islice(rows, HEADER_ROWS_SEARCHED))
    names = [["" if cell is None else str(cell).strip() for cell in cells] for cells in first]
    if not names or not any(names[0]):
        book.close()
        raise SourceError(f"{path}: sheet {sheet_name!r} is empty: no header row")
    number = _header_index(names, wanted) or 0
    header = names[number]
    rows = itertools.chain(first[number + 1 :], rows)
    merged = _merged_ranges(path, book, sheet_name)
    size, last_row, at = path.stat().st_size, max(worksheet.max_row or 1, 1), [1]

    def body() -> Iterator[tuple[int, dict]]:
        try:
            for row_number, cells in enumerate(rows, start=number + 2):
                at[0] = row_number
                if all(cell is None or str(cell).strip() == "" for cell in cells):
                    yield row_number, BLANK
                    continue
                yield (
                    row_number,
                    {
                        name: "" if cell is None else _cell_text(cell)
                        for name, cell in zip(header, cells, strict=False)
                    },
                )
        finally:
            book.close()

    checked = _MergedCheck(header, merged, str(path), sheet_name, body(), number + 1)
    return header, checked, lambda: size * min(at[0], last_row) // last_row


def _cell_text(cell: object) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))  # 13912345678.0 is the number 13912345678
    return str(cell)


def _merged_ranges(path: Path, book, sheet_name: str) -> list[str]:
    """The merged ranges of a sheet, read from its XML (read-only worksheets skip them)."""
    worksheet = book[sheet_name]  # its XML part's name: openpyxl keeps it, privately
    part = getattr(worksheet, "_worksheet_path", None) or ""
    with zipfile.ZipFile(path) as archive:
        name = part.lstrip("/") if part else None
        if name not in archive.namelist():
            return []
        found: list[str] = []
        tail = b""
        with archive.open(name) as xml:
            while block := xml.read(1 << 20):
                chunk = tail + block
                found += re.findall(rb'<(?:\w+:)?mergeCell ref="([A-Z]+\d+:[A-Z]+\d+)"', chunk)
                tail = chunk[-200:]
                # A tag cut at the block's end is found whole in the next window;
                # one found twice is dropped below.
    return list(dict.fromkeys(ref.decode() for ref in found))


@dataclass
class _MergedCheck:
    """Refuses, before the first row is read, a sheet with merged cells in a mapped column:
    a merged cell keeps its value only in its first row, so the rows under it would
    silently lose their text."""

    header: list[str]
    merged: list[str]
    path: str
    sheet: str
    rows: Iterator
    header_row: int = 1

    def check(self, columns: list[str]) -> None:
        from openpyxl.utils import range_boundaries

        wanted = {self.header.index(c) + 1 for c in columns if c in self.header}
        for ref in self.merged:
            first_col, first_row, last_col, last_row = range_boundaries(ref)
            hit = sorted(wanted & set(range(first_col, last_col + 1)))
            if hit and last_row > max(first_row, self.header_row):  # not a title above
                column = self.header[hit[0] - 1]
                raise SourceError(
                    f"{self.path}: sheet {self.sheet!r}, rows {first_row}-{last_row}, column "
                    f"{column!r}: merged cells ({ref}); unmerge them and fill every row's value"
                )

    def __iter__(self):
        return iter(self.rows)

    def close(self) -> None:
        self.rows.close()


def _jsonl_rows(path: Path, consumed: list[int]) -> Iterator[tuple[int, object]]:
    with open(path, "rb") as data:
        for line_number, line in enumerate(data, start=1):
            consumed[0] += len(line)
            line = line.strip()
            if not line:
                yield line_number, BLANK
                continue
            try:
                yield line_number, orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line_number, line  # the line as it is: the parser says what is wrong


def check_columns(path: Path, columns: list[str], column_map: ColumnMap) -> None:
    """One message listing the file's columns when a mapped one is not among them."""
    missing = [(f, c) for f, c in column_map.columns if c not in columns]
    if missing:
        field, column = missing[0]
        shown = ", ".join(columns) if columns else "(none found)"
        raise SourceError(
            f"{path}: no column {column!r} (mapped to {field}); the file's columns: {shown}"
        )


def check_table(path: Path, column_map: ColumnMap) -> None:
    """Read the header only, and check the map against it: one message, before any work."""
    rows, _ = _checked_rows(path, column_map)
    getattr(rows, "close", lambda: None)()


def table_records(path: Path, column_map: ColumnMap) -> tuple[Iterator, Callable[[], int]]:
    """(row, payload) for each record of the file -- a row, or a conversation's rows --
    and the bytes read so far. The columns are checked before any row is read."""
    rows, position = _checked_rows(path, column_map)
    if column_map.layout != "conversation":
        return rows, position
    return _conversations(rows, column_map), position


def _checked_rows(path: Path, column_map: ColumnMap) -> tuple[Iterator, Callable[[], int]]:
    columns, rows, position = read_rows(path, column_map)
    try:
        check_columns(path, columns, column_map)
        if isinstance(rows, _MergedCheck):
            rows.check(list(column_map.mapped_columns))
    except SourceError:
        getattr(rows, "close", lambda: None)()
        raise
    return rows, position


def _conversations(rows, column_map: ColumnMap) -> Iterator[tuple[int, object]]:
    conversations: dict[str, list] = {}
    for row_number, row in rows:
        if not isinstance(row, dict):
            yield row_number, row  # blank, or rejected by the parser as not an object
            continue
        key = str(row.get(column_map.fields["conversation"], "")).strip()
        conversations.setdefault(key, []).append((row_number, row))
    for key, members in conversations.items():
        yield members[0][0], {"conversation": key, "rows": members}
