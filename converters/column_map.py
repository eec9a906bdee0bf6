"""Which column of a hospital table holds what, and how one of its records becomes a dialogue.

A column map names the columns of one of three layouts:

- question/answer, one exchange a row: `question`, `answer`, optional `system`
  and `history` (a JSON list of [question, answer] pairs);
- instruction/input/output (record-to-summary tasks): `instruction`, `output`,
  optional `input` and `system`;
- one message a row, rows grouped into conversations: `conversation` (the id),
  `role`, `content`, optional `turn` (the order; file order without it) and
  `system`.

The map comes from `--column FIELD=COLUMN` options, from a YAML file, or both
(the options win). A record that cannot become a dialogue raises `RecordError`
in the converter's worker and lands in the rejects file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import orjson

from converters.records import Dialogue, RecordError, SourceError

LAYOUTS = {
    "qa": (("question", "answer"), ("system", "history")),
    "instruction": (("instruction", "output"), ("input", "system")),
    "conversation": (("conversation", "role", "content"), ("turn", "system")),
}
FIELDS = sorted({f for required, optional in LAYOUTS.values() for f in required + optional})
# The fields that say which layout a map is for (system belongs to all three).
_OWN_FIELDS = {
    name: set(required + optional) - {"system"} for name, (required, optional) in LAYOUTS.items()
}
# How the role column's values are read (case and surrounding blanks ignored).
DEFAULT_ROLES = {
    **dict.fromkeys(("user", "human", "patient", "患者", "病人", "用户", "问", "提问"), "user"),
    **dict.fromkeys(
        ("assistant", "gpt", "doctor", "bot", "model", "医生", "大夫", "医师", "答", "回答"),
        "assistant",
    ),
    **dict.fromkeys(("system", "系统"), "system"),
}


@dataclass(frozen=True)
class ColumnMap:
    columns: tuple[tuple[str, str], ...]  # (field, column name), as given
    roles: tuple[tuple[str, str], ...] = tuple(DEFAULT_ROLES.items())
    encoding: str | None = None
    sheet: str | None = None

    @functools.cached_property
    def fields(self) -> dict[str, str]:
        return dict(self.columns)

    @functools.cached_property
    def layout(self) -> str:
        return next(name for name, own in _OWN_FIELDS.items() if own & set(self.fields))

    @functools.cached_property
    def role_of(self) -> dict[str, str]:
        return dict(self.roles)

    @property
    def has_system(self) -> bool:
        return "system" in self.fields

    @property
    def mapped_columns(self) -> tuple[str, ...]:
        """The file's columns the map names."""
        return tuple(column for _, column in self.columns)


def build_column_map(
    pairs: tuple[str, ...] = (),
    map_file: Path | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
) -> ColumnMap:
    """The map from `--column FIELD=COLUMN` options over a YAML map file's."""
    settings = _read_map_file(map_file) if map_file else {}
    columns = dict(settings.get("columns") or {})
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise SourceError(f"--column {pair!r}: expected FIELD=COLUMN, e.g. question=患者提问")
        columns[field.strip()] = column.strip()
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise SourceError(f"unknown field {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    layouts = [name for name, fields in _OWN_FIELDS.items() if fields & set(columns)]
    if len(layouts) != 1:
        raise SourceError(
            "map the columns of one layout: question+answer, instruction+output, or "
            "conversation+role+content (--column FIELD=COLUMN)"
            + (f"; got {' and '.join(layouts)}" if layouts else "")
        )
    required, optional = LAYOUTS[layouts[0]]
    missing = [f for f in required if f not in columns]
    foreign = sorted(set(columns) - set(required) - set(optional))
    if missing or foreign:
        problem = f"missing {', '.join(missing)}" if missing else f"not {', '.join(foreign)}"
        raise SourceError(
            f"the {layouts[0]} layout takes {', '.join(required)} (and optionally "
            f"{', '.join(optional)}): {problem}"
        )
    roles = dict(DEFAULT_ROLES)
    for value, role in (settings.get("roles") or {}).items():
        if role not in ("user", "assistant", "system"):
            raise SourceError(
                f"{map_file}: roles: {value}: {role!r} is not user, assistant or system"
            )
        roles[str(value).strip().lower()] = role
    return ColumnMap(
        columns=tuple(columns.items()),
        roles=tuple(roles.items()),
        encoding=encoding or settings.get("encoding"),
        sheet=sheet or settings.get("sheet"),
    )


def _read_map_file(path: Path) -> dict:
    import yaml

    if not Path(path).is_file():
        raise SourceError(f"{path}: no such map file")
    try:
        settings = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SourceError(f"{path}: not a readable YAML map file ({error})") from None
    if not isinstance(settings, dict):
        raise SourceError(f"{path}: a map file is a mapping with 'columns:'")
    unknown = sorted(set(settings) - {"columns", "roles", "encoding", "sheet"})
    if unknown:
        raise SourceError(
            f"{path}: unknown key {', '.join(unknown)}; known: columns, roles, encoding, sheet"
        )
    for key, shape in (("columns", "FIELD: COLUMN"), ("roles", "VALUE: ROLE")):
        if settings.get(key) is not None and not isinstance(settings[key], dict):
            raise SourceError(f"{path}: '{key}' is a mapping ({shape})")
    return settings


def parse_table_record(payload: object, column_map: ColumnMap, system: str = "") -> Dialogue:
    if isinstance(payload, bytes):  # a JSON line that is not JSON
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise RecordError("invalid_json", str(error)) from None
    if not isinstance(payload, dict):
        raise RecordError("not_an_object", f"expected an object, got {type(payload).__name__}")
    fields, layout = column_map.fields, column_map.layout
    if layout == "conversation":
        return _conversation(payload, column_map, system)
    system = _text(payload, fields, "system", optional=True) or system
    if layout == "instruction":
        instruction = _text(payload, fields, "instruction")
        extra = _text(payload, fields, "input", optional=True)
        question = f"{instruction}\n{extra}" if extra else instruction
        return Dialogue(turns=((question, _text(payload, fields, "output")),), system=system)
    history = _history(payload.get(fields["history"])) if "history" in fields else ()
    question, answer = _text(payload, fields, "question"), _text(payload, fields, "answer")
    return Dialogue(turns=(*history, (question, answer)), system=system)


def _text(row: dict, fields: dict, field: str, optional: bool = False) -> str:
    """The text of `field`'s column in `row`, stripped; an empty required one is refused."""
    column = fields.get(field)
    if column is None:
        return ""
    value = row.get(column)
    if isinstance(value, str):
        text = value.strip()
    else:
        text = "" if value is None else _scalar(value, column)
    if not text and not optional:
        raise RecordError("empty_field", f"column {column!r} ({field}) is empty")
    return text


def _scalar(value: object, column: str) -> str:
    if isinstance(value, bool | int | float):
        return str(value)
    raise RecordError("field_not_text", f"column {column!r} holds {type(value).__name__}")


def _history(value: object) -> tuple[tuple[str, str], ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise RecordError(
                "bad_history", "history is not JSON ([[question, answer], ...])"
            ) from None
    if not isinstance(value, list) or not all(
        isinstance(pair, list)
        and len(pair) == 2
        and all(isinstance(t, str) and t.strip() for t in pair)
        for pair in value
    ):
        raise RecordError("bad_history", "history is not a list of [question, answer] pairs")
    return tuple((q.strip(), a.strip()) for q, a in value)


def _conversation(payload: dict, column_map: ColumnMap, system: str) -> Dialogue:
    """The conversation's rows as one dialogue. A refusal names the row it is about, and
    is filed under that row's number, so the rejects file and its detail agree."""
    fields, roles = column_map.fields, column_map.role_of
    members = payload["rows"]
    name = payload["conversation"]
    if "turn" in fields:
        members = sorted(members, key=lambda member: _turn_key(member, fields["turn"]))
    messages: list[list] = []  # [role, text, row], consecutive ones of a role merged
    for row_number, row in members:
        value = str(row.get(fields["role"], "")).strip()
        role = roles.get(value.lower())
        if role is None:
            raise RecordError(
                "unknown_role",
                f"row {row_number} (conversation {name!r}): role {value!r} is not one of the "
                "known roles (user: 患者/user/human ..., assistant: 医生/assistant/gpt ...); "
                "add it under 'roles:' in the map file",
                row=row_number,
            )
        text = _text(row, fields, "content", optional=True)
        if role == "system":
            system = text or system
        elif not text:
            raise RecordError(
                "empty_field",
                f"row {row_number} (conversation {name!r}): column {fields['content']!r} is empty",
                row=row_number,
            )
        elif messages and messages[-1][0] == role:
            messages[-1][1] += "\n" + text
        else:
            messages.append([role, text, row_number])
    first_row = min(row_number for row_number, _ in members)
    if "system" in fields:
        system = _text(members[0][1], fields, "system", optional=True) or system
    dropped = bool(messages) and messages[-1][0] == "user"
    if dropped:
        messages.pop()
    if not messages:
        raise RecordError(
            "no_answered_question",
            f"row {first_row}: conversation {name!r} has no answer",
            row=first_row,
        )
    if messages[0][0] != "user":
        row = messages[0][2]
        raise RecordError(
            "answer_first",
            f"row {row}: conversation {name!r} starts with an answer",
            row=row,
        )
    turns = tuple((messages[i][1], messages[i + 1][1]) for i in range(0, len(messages), 2))
    return Dialogue(turns=turns, system=system, dropped_trailing_question=dropped)


def _turn_key(member: tuple[int, dict], column: str) -> tuple:
    value = str(member[1].get(column, "")).strip()
    try:
        return (0, float(value), member[0])
    except ValueError:
        return (1, value, member[0])
