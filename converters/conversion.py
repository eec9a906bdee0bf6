"""`data convert` as one call: the options' rules, the de-identification default, the
checks made before any work, then the conversion with its progress.

Everything a user can get wrong is one `SourceError` here, before the first record
is read: options that only work together, a bad name, a missing input, a table whose
header lacks a mapped column.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from converters.column_map import build_column_map
from converters.convert import ConvertOptions, Summary, check_inputs, check_name, convert
from converters.deid.engine import DeidOptions
from converters.records import SourceError
from converters.table_files import check_table

# (description, total bytes) -> a context yielding update(bytes done, records done)
RecordProgress = Callable[[str, int], AbstractContextManager[Callable[[int, int], None]]]


@contextlib.contextmanager
def no_progress(_description: str, _total: int) -> Iterator[Callable[[int, int], None]]:
    yield lambda done, records: None


@dataclass(frozen=True)
class TableOptions:
    """The table source's own options, as given (empty when not)."""

    columns: tuple[str, ...] = ()
    map_file: Path | None = None
    encoding: str | None = None
    sheet: str | None = None

    def given(self) -> list[str]:
        named = {"--column": self.columns, "--map": self.map_file}
        named |= {"--encoding": self.encoding, "--sheet": self.sheet}
        return [option for option, value in named.items() if value]


@dataclass(frozen=True)
class DeidRequest:
    """De-identification as asked: --deid (None: the source's default), --no-scrub,
    --pseudonymize, --ner-config."""

    level: str | None = None
    no_scrub: bool = False
    pseudonymize: bool = False
    ner_config: str | None = None


def deid_level(source: str, deid: DeidRequest) -> str:
    """The level a conversion runs at. A table (a hospital's own export) holds names,
    addresses and record numbers in free text: strict by default; the public sources
    only need phones, IDs, e-mails and URLs scrubbed: basic."""
    if deid.no_scrub and deid.level not in (None, "off"):
        raise SourceError(f"--no-scrub and --deid {deid.level} disagree; pass one of them")
    level = "off" if deid.no_scrub else deid.level or ("strict" if source == "table" else "basic")
    if (deid.pseudonymize or deid.ner_config) and level != "strict":
        raise SourceError("--pseudonymize and --ner-config work with --deid strict")
    return level


@dataclass(frozen=True)
class ConvertRequest:
    source: str
    inputs: list[Path]
    fmt: str
    name: str
    dataset_dir: Path
    split: tuple[float, ...]
    seed: int = 42
    cot: str = "think"
    system: str = ""
    max_chars: int | None = None
    dedup: bool = True
    deid: DeidRequest = DeidRequest()
    lint: str = "flag"
    rules: Path | None = None
    force: bool = False
    workers: int | None = None
    table: TableOptions = field(default_factory=TableOptions)


def convert_files(request: ConvertRequest, progress: RecordProgress = no_progress) -> Summary:
    """Check every option and input, then convert, write the splits and register them."""
    given = request.table.given()
    if request.source == "table":
        if not request.table.columns and not request.table.map_file:
            raise SourceError("table: say which column holds what: --column question=COL ...")
        table = build_column_map(
            request.table.columns, request.table.map_file, request.table.encoding,
            request.table.sheet,
        )  # fmt: skip
    elif given:
        raise SourceError(f"{', '.join(given)}: only for the table source")
    else:
        table = None
    deid = request.deid
    options = ConvertOptions(
        fmt=request.fmt, name=request.name, dataset_dir=request.dataset_dir,
        split=request.split, seed=request.seed, cot=request.cot, system=request.system,
        max_chars=request.max_chars or None, dedup=request.dedup,
        deid=deid_level(request.source, deid),
        deid_options=DeidOptions(pseudonymize=deid.pseudonymize, ner_config=deid.ner_config),
        lint=request.lint, lint_rules=request.rules, force=request.force, table=table,
        **({"workers": request.workers} if request.workers else {}),
    )  # fmt: skip
    check_name(request.name)  # before the progress bar: a bad name or input is one line
    inputs = check_inputs(list(request.inputs))
    for path in inputs if table else ():
        check_table(path, table)
    total = sum(path.stat().st_size for path in inputs)
    with progress(f"converting {request.source}", total) as on_progress:
        return convert(request.source, inputs, options, on_progress=on_progress)
