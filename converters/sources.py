"""The registry of sources: how each one is read into payloads and parsed.

Reading (I/O, splitting the input into records) happens in the converting
process; parsing a payload into a `Dialogue` is pure and runs in the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from converters.huatuo import parse_huatuo_line
from converters.medical_o1 import iter_json_array, parse_medical_o1_record
from converters.records import Dialogue, SourceError


@dataclass(frozen=True)
class Source:
    name: str
    # path -> (line number, payload, bytes consumed so far); blank lines are not records.
    read: Callable[[Path], Iterator[tuple[int, object, int]]]
    parse: Callable[[object, str, str], Dialogue]  # (payload, cot, system)
    description: str


def _read_jsonl(path: Path) -> Iterator[tuple[int, bytes, int]]:
    consumed = 0
    with open(path, "rb") as lines:
        for line_no, line in enumerate(lines, 1):
            consumed += len(line)
            payload = line.rstrip(b"\r\n")
            if payload.strip():
                yield line_no, payload, consumed


def _read_json_array(path: Path) -> Iterator[tuple[int, object, int]]:
    size = path.stat().st_size
    elements = list(iter_json_array(path))
    for index, (line_no, element) in enumerate(elements, 1):
        yield line_no, element, size * index // len(elements)


SOURCES = {
    "huatuo": Source(
        "huatuo",
        _read_jsonl,
        lambda payload, cot, system: parse_huatuo_line(payload, system),
        "HuatuoGPT-sft-data-v1 jsonl dialogues",
    ),
    "medical-o1": Source(
        "medical-o1",
        _read_json_array,
        parse_medical_o1_record,
        "medical-o1-reasoning-SFT JSON arrays (Question, Complex_CoT, Response)",
    ),
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise SourceError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None
