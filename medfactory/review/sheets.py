"""Rating through spreadsheets: a rater's blind sheet out, their filled sheet back in.

The columns are a promise to raters and their hospitals' tools: `item`, the
conversation, `answer_1`, `answer_2`, then `verdict` (1, 2, tie, both_bad),
`AXIS_1` and `AXIS_2` for each axis of the study, `correction`, `comment`. A
single-answer study (a model's drafts) has `item`, `question`, `answer`,
`source`, `verdict` (accept, edit, reject), `correction` (the corrected answer,
for edit) and `comment`.
An xlsx sheet also names its study and rater on a second sheet, `about`, so
importing it under another rater's name is caught; every row is checked as
the page checks a submission, and the first error names its row and column.
Rows left without a verdict are not rated yet and are skipped.
"""

from __future__ import annotations

import csv
from pathlib import Path

from medfactory.review.errors import SheetError
from medfactory.review.rating import (
    RatingError,
    Submission,
    check_submission,
    queue,
    submit,
    to_shown,
    verdicts_of,
)
from medfactory.review.studies import find_rater, find_study
from medfactory.store.db import Store, Study

SINGLE_COLUMNS = ["item", "question", "answer", "source", "verdict", "correction", "comment"]


def columns(axes: list[str], kind: str = "pair") -> list[str]:
    if kind == "single":
        return SINGLE_COLUMNS
    scores = [f"{axis}_{n}" for axis in axes for n in (1, 2)]
    return [
        "item",
        "conversation",
        "answer_1",
        "answer_2",
        "verdict",
        *scores,
        "correction",
        "comment",
    ]


def _conversation_text(messages: list[dict]) -> str:
    return "\n\n".join(f"[{m['role']}] {m['content']}" for m in messages)


def write_sheet(store: Store, name: str, rater_name: str, path: Path) -> int:
    """The rater's queue as a blind sheet (their earlier ratings filled in); returns rows."""
    with store.session() as session:
        study = find_study(session, name)
        rater = find_rater(session, study, rater_name)
        header = columns(study.axes, study.kind)
        rows = []
        for item, assignment, rating in queue(session, rater):
            if study.kind == "single":
                rows.append(_single_row(item, rating))
                continue
            first = assignment.left_first
            answers = (
                (item.left_answer, item.right_answer)
                if first
                else (item.right_answer, item.left_answer)
            )
            row = dict.fromkeys(header, "")
            row.update(
                item=item.position,
                conversation=_conversation_text(item.conversation),
                answer_1=answers[0],
                answer_2=answers[1],
            )
            if rating is not None:
                row["verdict"] = to_shown(rating.verdict, first)
                for axis, (left, right) in rating.scores.items():
                    row[f"{axis}_1"], row[f"{axis}_2"] = (left, right) if first else (right, left)
                row.update(correction=rating.correction, comment=rating.comment)
            rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xlsx":
        _write_xlsx(path, header, rows, study.name, rater.name)
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8-sig") as out:  # BOM: Excel reads UTF-8
            writer = csv.DictWriter(out, header)
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise SheetError(f"{path}: write a .xlsx or .csv sheet")
    return len(rows)


def _single_row(item, rating) -> dict:
    source = item.source or {}
    where = " · ".join(
        str(part)
        for part in (source.get("file"), source.get("heading"),
                     f"{source['start']}-{source['end']}" if "end" in source else None)
        if part
    )  # fmt: skip
    return {
        "item": item.position,
        "question": _conversation_text(item.conversation),
        "answer": item.left_answer,
        "source": f"{where}\n\n{source.get('chunk_text', '')}".strip(),
        "verdict": rating.verdict if rating else "",
        "correction": rating.correction if rating else "",
        "comment": rating.comment if rating else "",
    }


def _write_xlsx(path: Path, header: list[str], rows: list[dict], study: str, rater: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = "ratings"
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append([row[c] for c in header])
    for column, width in zip("BCD", (50, 60, 60), strict=True):
        sheet.column_dimensions[column].width = width
    for line in sheet.iter_rows(min_row=2):
        for cell in line[1:4]:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "B2"
    about = book.create_sheet("about")
    about.append(["study", study])
    about.append(["rater", rater])
    if header == SINGLE_COLUMNS:
        about.append(["verdict", "accept, edit (write the corrected answer in correction), reject"])
    else:
        about.append(["verdict", "1 = answer 1 better, 2 = answer 2 better, tie, both_bad"])
        about.append(["scores", "1 (poor) to 5 (excellent) for each answer"])
    book.save(path)


def _read_rows(path: Path) -> tuple[list[str], list[dict], dict]:
    if path.suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        sheet = book["ratings"] if "ratings" in book.sheetnames else book.worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        about = {}
        if "about" in book.sheetnames:
            about = {str(k): str(v) for k, v, *_ in book["about"].iter_rows(values_only=True) if k}
        header = [str(h).strip() if h is not None else "" for h in (values[0] if values else [])]
        rows = [dict(zip(header, row, strict=False)) for row in values[1:]]
        return header, rows, about
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as data:
            reader = csv.DictReader(data)
            return [h.strip() for h in reader.fieldnames or []], list(reader), {}
    raise SheetError(f"{path}: import a .xlsx or .csv sheet")


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _score(value, where: str) -> int:
    text = _text(value)
    try:
        number = float(text)
    except ValueError:
        raise SheetError(f"{where}: {text!r} is not a score; write 1 to 5") from None
    if number != int(number) or not 1 <= number <= 5:
        raise SheetError(f"{where}: {text} is out of range; write 1 to 5")
    return int(number)


def import_sheet(store: Store, name: str, path: Path, rater_name: str) -> dict:
    """Check every row first, then store each rated row as that rater's rating."""
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: no such sheet; write one with `medfactory review sheet`")
    header, rows, about = _read_rows(path)
    with store.session() as session:
        study: Study = find_study(session, name)
        rater = find_rater(session, study, rater_name)
        if about.get("rater") and about["rater"] != rater.name:
            raise SheetError(
                f"{path}: this is {about['rater']}'s sheet, not {rater.name}'s; import it with "
                f"--rater {about['rater']}"
            )
        if about.get("study") and about["study"] != study.name:
            raise SheetError(f"{path}: a sheet of study {about['study']!r}, not {study.name!r}")
        needed = columns(study.axes, study.kind)
        missing = [c for c in needed if c not in header]
        if missing:
            raise SheetError(
                f"{path}: missing column(s) {', '.join(missing)}; the sheet needs "
                f"{', '.join(needed)}"
            )
        positions = {item.position for item, _, _ in queue(session, rater)}
        axes, rater_id, kind = list(study.axes), rater.id, study.kind
        verdicts = verdicts_of(study)
    submissions = []
    for number, row in enumerate(rows, 2):  # row 1 is the header
        verdict = _text(row.get("verdict"))
        if not verdict:
            continue
        where = f"{path}, row {number}"
        try:
            position = int(float(_text(row.get("item"))))
        except ValueError:
            raise SheetError(
                f"{where}, column item: {row.get('item')!r} is not an item number"
            ) from None
        if position not in positions:
            raise SheetError(
                f"{where}, column item: item {position} is not in {rater_name}'s queue "
                "(is this another rater's sheet?)"
            )
        if verdict.endswith(".0"):
            verdict = verdict[:-2]  # a spreadsheet turned 1 into 1.0
        if verdict not in verdicts:
            raise SheetError(f"{where}, column verdict: {verdict!r}; write {', '.join(verdicts)}")
        scores = {
            axis: tuple(
                _score(row.get(f"{axis}_{n}"), f"{where}, column {axis}_{n}") for n in (1, 2)
            )
            for axis in axes
        }
        submission = Submission(
            verdict, scores, _text(row.get("correction")), _text(row.get("comment"))
        )
        try:
            check_submission(submission, axes, kind)
        except RatingError as error:
            raise SheetError(f"{where}: {error}") from None
        submissions.append((position, submission))
    for position, submission in submissions:  # an unchanged row stores nothing new
        submit(store, rater_id, position, submission, submit_key=None, source="sheet")
    return {"rated": len(submissions), "rows": len(rows)}
