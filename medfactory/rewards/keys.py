"""Answer keys: which answer each prompt expects, found by its question text.

`choice` reads an exam file (`eval exam`'s format: question, A, B, ..., answer);
`match` reads CSV/JSONL/JSON rows with `question` and `answer`, or medical-o1's
verifiable problems (`Open-ended Verifiable Question`, `Ground-True Answer`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from medfactory.rewards.errors import RewardError

QUESTION_KEYS = ("question", "Open-ended Verifiable Question")
ANSWER_KEYS = ("answer", "Ground-True Answer")


@dataclass(frozen=True)
class Key:
    id: str
    question: str
    answer: str  # a letter for `choice`, the reference for `match`
    options: int = 0  # `choice`: how many options


class AnswerKey:
    """Finds the entry whose question appears in a text (the longest, when several do)."""

    def __init__(self, path: Path, entries: list[Key]):
        self.path = path
        self.entries = sorted(entries, key=lambda key: len(key.question), reverse=True)

    def find(self, text: str) -> Key | None:
        return next((key for key in self.entries if key.question in text), None)

    def __len__(self) -> int:
        return len(self.entries)


def read_choice_key(path: Path) -> AnswerKey:
    from medfactory.evaluation.errors import ExamError
    from medfactory.evaluation.exam import read_exam_file

    try:
        questions = read_exam_file(path)
    except ExamError as error:
        raise RewardError(str(error)) from None
    return AnswerKey(
        path, [Key(q["id"], q["question"], q["answer"], len(q["options"])) for q in questions]
    )


def _rows(path: Path) -> list[tuple[int, object]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise RewardError(f"{path}: cannot read the answer key ({error})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return list(enumerate(csv.DictReader(io.StringIO(text)), 2))
        if suffix == ".jsonl":
            return [(n, json.loads(line)) for n, line in enumerate(text.splitlines(), 1)
                    if line.strip()]  # fmt: skip
        if suffix == ".json":
            return list(enumerate(json.loads(text), 1))
    except json.JSONDecodeError as error:
        raise RewardError(f"{path}: not valid JSON ({error})") from None
    raise RewardError(f"{path}: an answer key is .csv, .jsonl or .json")


def read_match_key(path: Path) -> AnswerKey:
    if not path.is_file():
        raise RewardError(f"{path}: no such answer key; pass --answers FILE")
    entries = []
    for number, row in _rows(path):
        if not isinstance(row, dict):
            raise RewardError(f"{path}:{number}: not an object with question and answer")
        question = next((str(row[k]).strip() for k in QUESTION_KEYS if row.get(k)), "")
        answer = next((str(row[k]).strip() for k in ANSWER_KEYS if row.get(k)), "")
        if not question or not answer:
            raise RewardError(
                f"{path}:{number}: needs `question` and `answer` (or medical-o1's "
                "`Open-ended Verifiable Question` and `Ground-True Answer`)"
            )
        entries.append(Key(str(row.get("id") or number), question, answer))
    if not entries:
        raise RewardError(f"{path}: no answers in the file")
    return AnswerKey(path, entries)
