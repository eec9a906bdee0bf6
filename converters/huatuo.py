"""HuatuoGPT-sft-data-v1: one JSON object per line, `{"data": ["问：…", "答：…", …]}`.

Each string carries a two-character role prefix, 问 (question) or 答 (answer),
followed by a full-width `：` or an ASCII `:`. Turns alternate, a question
first; a trailing question without an answer is dropped, as the upstream
training script does.
"""

from __future__ import annotations

import orjson

from converters.records import Dialogue, RecordError

ROLES = {"问": "question", "答": "answer"}
COLONS = ("：", ":")
_A = {"question": "a question", "answer": "an answer"}


def _strip_role(index: int, text: object) -> tuple[str, str]:
    if not isinstance(text, str):
        raise RecordError("turn_not_string", f"turn {index + 1} is {type(text).__name__}")
    role = ROLES.get(text[:1])
    if role is None or text[1:2] not in COLONS:
        detail = f"turn {index + 1} does not start with 问： or 答：: {text[:20]!r}"
        raise RecordError("missing_role_prefix", detail)
    return role, text[2:].strip()


_PREFIXES = (("问：", "问:"), ("答：", "答:"))  # even turns ask, odd turns answer


def parse_huatuo_line(raw: bytes, system: str = "") -> Dialogue:
    """One jsonl line (bytes, without the newline) -> Dialogue, or RecordError."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise RecordError("invalid_utf8", f"byte {bad.start} is not UTF-8") from None
        raise RecordError("invalid_json", str(error)) from None
    # The common case in one pass; anything unusual takes the careful path,
    # which also names what is wrong.
    data = record.get("data") if isinstance(record, dict) else None
    texts = []
    for i, text in enumerate(data if isinstance(data, list) else ()):
        if not (isinstance(text, str) and text.startswith(_PREFIXES[i % 2])):
            break
        texts.append(text[2:].strip())
    if len(texts) < 2 or len(texts) != len(data) or not all(texts):
        return _parse_carefully(record, system)
    dropped = len(texts) % 2 == 1
    pairs = tuple(zip(texts[0::2], texts[1::2], strict=False))
    return Dialogue(turns=pairs, system=system, dropped_trailing_question=dropped)


def _parse_carefully(record: object, system: str) -> Dialogue:
    if not isinstance(record, dict):
        raise RecordError("not_an_object", f"expected a JSON object, got {type(record).__name__}")
    data = record.get("data")
    if not isinstance(data, list):
        raise RecordError("no_data_list", "the object has no list under the key 'data'")

    turns = [_strip_role(i, text) for i, text in enumerate(data)]
    dropped = bool(turns) and len(turns) % 2 == 1 and turns[-1][0] == "question"
    if dropped:
        turns.pop()
    if not turns:
        raise RecordError("no_answered_question", "the dialogue has no answered question")
    for i, (role, text) in enumerate(turns):
        expected = "question" if i % 2 == 0 else "answer"
        if role != expected:
            reason = "answer_first" if i == 0 else "broken_alternation"
            raise RecordError(reason, f"turn {i + 1} is {_A[role]}, expected {_A[expected]}")
        if not text:
            raise RecordError("empty_turn", f"turn {i + 1} is empty")
    pairs = tuple((turns[i][1], turns[i + 1][1]) for i in range(0, len(turns), 2))
    return Dialogue(turns=pairs, system=system, dropped_trailing_question=dropped)
