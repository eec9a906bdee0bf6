"""medical-o1-reasoning-SFT: JSON arrays of `{"Question", "Complex_CoT", "Response"}`.

The chain of thought goes into the answer in the form the chosen chat template
trains on (`COT_STYLES`). Records are read one by one from the array with
their line numbers, so a rejected record can be found in the source file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from converters.records import Dialogue, RecordError, SourceError

FIELDS = ("Question", "Complex_CoT", "Response")

# How the reasoning is written into the trained answer.
COT_STYLES = {
    # LLaMA-Factory's reasoning templates (deepseekr1, qwen3) expect this.
    "think": lambda cot, response: f"<think>\n{cot}\n</think>\n\n{response}",
    # HuatuoGPT-o1's own format.
    "huatuo": lambda cot, response: f"## Thinking\n\n{cot}\n\n## Final Response\n\n{response}",
    "drop": lambda cot, response: response,
}


def parse_medical_o1_record(record: object, cot: str = "think", system: str = "") -> Dialogue:
    if not isinstance(record, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(record).__name__}")
    missing = [field for field in FIELDS if field not in record]
    if missing:
        raise RecordError("missing_field", f"missing {', '.join(missing)}")
    for field in FIELDS:
        if not isinstance(record[field], str):
            kind = type(record[field]).__name__
            raise RecordError("field_not_string", f"{field} is {kind}, not a string")
    question, thought, response = (record[field].strip() for field in FIELDS)
    if not question or not response:
        raise RecordError("empty_turn", f"{'Question' if not question else 'Response'} is empty")
    return Dialogue(turns=((question, COT_STYLES[cot](thought, response)),), system=system)


def iter_json_array(path: Path) -> Iterator[tuple[int, object]]:
    """Yield (line number, element) for each element of a top-level JSON array."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        detail = f"byte {error.start} is not UTF-8; re-download the file"
        raise SourceError(f"{path}: {detail}") from None
    decoder = json.JSONDecoder()
    position = 0

    def skip(pos: int, chars: str = " \t\r\n") -> int:
        while pos < len(text) and text[pos] in chars:
            pos += 1
        return pos

    def fail(pos: int, what: str) -> SourceError:
        line_no = text.count("\n", 0, pos) + 1
        column = pos - text.rfind("\n", 0, pos)
        return SourceError(
            f"{path}: line {line_no} column {column}: {what}; medical-o1 files are one JSON "
            "array of objects with Question, Complex_CoT and Response (fix or re-download it)"
        )

    position = skip(position)
    if text[position : position + 1] != "[":
        raise fail(position, "expected '[' (a JSON array)")
    position = skip(position + 1)
    if text[position : position + 1] == "]":
        return
    line, counted_to = 1, 0
    while True:
        # Count newlines incrementally: the files run to tens of megabytes.
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            element, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise fail(error.pos, error.msg) from None
        yield line, element
        position = skip(position)
        separator = text[position : position + 1]
        if separator == "]":
            return
        if separator != ",":
            raise fail(position, "expected ',' or ']' after an array element")
        position = skip(position + 1)
