"""The summary tables on an 80-column terminal: a path is what a user copies next, so it
is folded onto the next lines of its cell, never cut with an ellipsis."""

import io
import re

import pytest
from rich.console import Console

from medfactory.cli import tables

FOLDER = "/home/clinic/projects/cardiology-2026/dataset_info"
DRAFTS = f"{FOLDER}/cardio_question_answer_set_2026_12.drafts.jsonl"
DROPPED = f"{FOLDER}/cardio_question_answer_set_2026_12.drafts.dropped.jsonl"
SPLIT = f"{FOLDER}/outpatient_consultations_2026_12_train.jsonl"
BORDERS = re.compile(r"[\s│┃┌┐└┘─━┬┴├┤┼╭╮╰╯]")


class Summary:
    def __init__(self, data: dict):
        self.data = data

    def as_dict(self) -> dict:
        return self.data


CONVERTED = {
    "name": "outpatient", "read": 3, "written": {"train": 2}, "duplicates": {},
    "rejected": {"empty_field": 1}, "dropped_trailing_questions": 0, "blank": 2,
    "deid": "strict", "pii_replaced": {}, "lint": "flag", "flagged": {}, "turns": {},
    "chars": {}, "files": {"train": SPLIT, "rejects": f"{FOLDER}/outpatient.rejects.jsonl"},
}  # fmt: skip
DRAFTED = {
    "name": "cardio", "documents": 3, "chunks": 10, "requests": 0,
    "chunks_from_earlier_runs": 10, "unparseable_chunks": 1, "unusable_waiting": 1,
    "drafts": 9, "kept": 8, "dropped": {"too_short": 1},
    "files": {"drafts": DRAFTS, "dropped": DROPPED},
}  # fmt: skip
EXPORTED = {
    "source": "cardio_review", "read": 3, "written": {"alpaca": {"train": 3}}, "skipped": {},
    "identifiers_scrubbed": {}, "files": [SPLIT],
}  # fmt: skip


@pytest.mark.parametrize(
    ("draw", "data", "paths"),
    [
        (lambda d: tables.print_convert_summary(Summary(d)), CONVERTED, [SPLIT]),
        (tables.print_synthesis_summary, DRAFTED, [DRAFTS, DROPPED]),
        (tables.print_export_summary, EXPORTED, [SPLIT]),
    ],
)
def test_paths_are_folded_whole_at_80_columns_never_cut(monkeypatch, draw, data, paths):
    out = io.StringIO()
    monkeypatch.setattr(tables, "console", Console(file=out, width=80))
    draw(data)
    text = out.getvalue()
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= 80
    flat = BORDERS.sub("", text)  # each cell's lines run on, as the folded path does
    for path in paths:
        assert path in flat
