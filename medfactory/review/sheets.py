"""Rating through spreadsheets: a rater's blind sheet out, their filled sheet back in.

The columns are a promise to raters and their hospitals' tools: `item`, the
conversation, `answer_1`, `answer_2`, then `verdict` (1, 2, tie, both_bad),
`AXIS_1` and `AXIS_2` for each axis of the study, `correction`, `comment`. A
single-answer study (a model's drafts) has `item`, `question`, `answer`,
`source`, `verdict` (accept, edit, reject), `correction` (the corrected answer,
for edit) and `comment`. A verdict may also be written as the page and the README
word it, in English or Chinese ("answer 1 better", "both unacceptable", 平局,
两者都不可接受, 接受, ...).

A sheet belongs to its rater: an xlsx sheet names its study and rater on a second
sheet, `about`, and every sheet shows the two answers in its rater's own drawn
order, so a row whose answers stand in another rater's order is refused (naming the
row and whose order it is) before anything is stored. A CSV sheet's first row is a
legend of the allowed values, starting with `#`; the import skips it (and does
without it). Every row is checked as the page checks a submission, and the first
error names its row (as the spreadsheet numbers it) and column. Rows left without a
verdict are not rated yet and are skipped.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from medfactory.access.audit import os_user, record
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
from medfactory.store.db import Assignment, Item, Rater, Store, Study

SINGLE_COLUMNS = ["item", "question", "answer", "source", "verdict", "correction", "comment"]
# The words a rater may write for each verdict: its value, and how the page (in either
# language) and the README call it. Compared without case, spaces, "_" or "-".
VERDICT_WORDS = {
    "1": ("1", "回答 1 更好", "answer 1", "answer 1 better", "1 better", "回答1", "答案1更好",
          "1 更好"),
    "2": ("2", "回答 2 更好", "answer 2", "answer 2 better", "2 better", "回答2", "答案2更好",
          "2 更好"),
    "tie": ("tie", "平局", "两者相当", "相当"),
    "both_bad": ("both_bad", "两者都不可接受", "both bad", "both unacceptable", "都不可接受",
                 "均不可接受"),
    "accept": ("accept", "接受"),
    "edit": ("edit", "修改"),
    "reject": ("reject", "拒绝"),
}  # fmt: skip
LEGEND = {  # no commas: the row stays one unquoted cell that starts with "#"
    "pair": "# Legend (skipped on import / 导入时跳过此行) - verdict: 1 = answer 1 better "
    "(回答 1 更好); 2 = answer 2 better (回答 2 更好); tie (平局); both_bad = both unacceptable "
    "(两者都不可接受). AXIS_1 and AXIS_2: 1 (poor / 差) to 5 (excellent / 优) for answer 1 and "
    "answer 2. correction: how you would answer (optional / 可选). Leave verdict empty to rate "
    "later / verdict 留空即暂不评分.",
    "single": "# Legend (skipped on import / 导入时跳过此行) - verdict: accept (接受); edit "
    "(修改: write the corrected answer in correction / 在 correction 中写出修改后的回答); reject "
    "(拒绝). Leave verdict empty to rate later / verdict 留空即暂不评分.",
}


def _word(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if not c.isspace() and c not in "_-")


_VERDICT_OF = {_word(w): verdict for verdict, words in VERDICT_WORDS.items() for w in words}


def read_verdict(text: str, allowed: tuple[str, ...]) -> str | None:
    """The verdict a sheet's cell means (1, 2, tie, both_bad; accept, edit, reject), or
    None when it is none of the allowed ones."""
    if text.endswith(".0"):
        text = text[:-2]  # a spreadsheet turned 1 into 1.0
    verdict = _VERDICT_OF.get(_word(text))
    return verdict if verdict in allowed else None


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


def write_sheet(store: Store, name: str, rater_name: str, path: Path, actor: str = "") -> int:
    """The rater's queue as a blind sheet (their earlier ratings filled in); returns rows.
    The sheet carries model answers out of the store, so it is audited."""
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
            csv.writer(out).writerow([LEGEND[study.kind]])
            writer = csv.DictWriter(out, header)
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise SheetError(f"{path}: write a .xlsx or .csv sheet")
    record(store, actor or os_user(), "sheet-written", name,
           {"rater": rater_name, "file": path.name, "rows": len(rows)})  # fmt: skip
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
        about.append(["verdict", LEGEND["single"].split("verdict: ", 1)[1]])
    else:
        about.append(
            [
                "verdict",
                "1 = answer 1 better (回答 1 更好), 2 = answer 2 better "
                "(回答 2 更好), tie (平局), both_bad = both unacceptable (两者都不可接受)",
            ]
        )
        about.append(["scores", "1 (poor / 差) to 5 (excellent / 优) for each answer"])
    book.save(path)


@dataclass
class Sheet:
    header: list[str]
    rows: list[dict]
    about: dict = field(default_factory=dict)  # an xlsx sheet's `about`: study, rater
    first_row: int = 2  # the spreadsheet's number of the first data row


def read_sheet(path: Path) -> Sheet:
    """A sheet's header and rows (a CSV's legend row skipped), numbered as shown."""
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
        return Sheet(header, rows, about)
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as data:
            lines = list(csv.reader(data))
        legend = bool(lines and lines[0] and lines[0][0].lstrip().startswith("#"))
        lines = lines[legend:]
        header = [h.strip() for h in lines[0]] if lines else []
        rows = [dict(zip(header, line, strict=False)) for line in lines[1:]]
        return Sheet(header, rows, first_row=2 + legend)
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


def _same_text(value) -> str:
    """A cell's text with its spacing evened out (spreadsheets change line ends)."""
    return " ".join(_text(value).split())


@dataclass
class _Orders:
    """Which order each rater of a study saw each item's answers in."""

    answers: dict[int, tuple[str, str]]  # position -> (left, right), spacing evened out
    left_first: dict[int, dict[str, bool]]  # position -> rater -> left answer shown first

    @classmethod
    def of(cls, session, study: Study) -> _Orders:
        answers, left_first = {}, {}
        for position, left, right, rater, first in session.execute(
            select(Item.position, Item.left_answer, Item.right_answer, Rater.name,
                   Assignment.left_first)
            .join(Assignment, Assignment.item_id == Item.id)
            .join(Rater, Rater.id == Assignment.rater_id)
            .where(Item.study_id == study.id)
        ):  # fmt: skip
            answers[position] = (_same_text(left), _same_text(right))
            left_first.setdefault(position, {})[rater] = first
        return cls(answers, left_first)

    def check(self, row: dict, position: int, rater: str, where: str) -> None:
        """SheetError unless the row's answers stand in `rater`'s order."""
        left, right = self.answers[position]
        shown = (_same_text(row.get("answer_1")), _same_text(row.get("answer_2")))
        if left == right or shown == ((left, right) if self.left_first[position][rater]
                                      else (right, left)):  # fmt: skip
            return
        if shown not in ((left, right), (right, left)):
            raise SheetError(
                f"{where}, columns answer_1 and answer_2: not the answers item {position} "
                f"shows {rater}; put them back as `medfactory review sheet` wrote them"
            )
        owners = [
            name for name, first in sorted(self.left_first[position].items())
            if name != rater and first == (shown == (left, right))
        ]  # fmt: skip
        if not owners:
            raise SheetError(
                f"{where}: answer_1 and answer_2 are swapped from the order {rater} was shown; "
                f"import the sheet written for {rater}"
            )
        raise SheetError(
            f"{where}: answer_1 and answer_2 are in {' or '.join(owners)}'s order, not "
            f"{rater}'s; this is {owners[0]}'s sheet: import it with --rater {owners[0]}"
            if len(owners) == 1
            else f"{where}: answer_1 and answer_2 are in {' or '.join(owners)}'s order, "
            f"not {rater}'s; import the sheet with its own rater's --rater"
        )


def import_sheet(store: Store, name: str, path: Path, rater_name: str, actor: str = "") -> dict:
    """Check every row first (against the rater's own order of the answers), then store
    each rated row as that rater's rating."""
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: no such sheet; write one with `medfactory review sheet`")
    sheet = read_sheet(path)
    header, rows, about = sheet.header, sheet.rows, sheet.about
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
        orders = _Orders.of(session, study) if kind == "pair" else None
    submissions = []
    for number, row in enumerate(rows, sheet.first_row):
        written = _text(row.get("verdict"))
        where = f"{path}, row {number}"
        try:
            position = int(float(_text(row.get("item"))))
        except ValueError:
            if not written:
                continue  # a row of its own the rater added, not rated
            raise SheetError(
                f"{where}, column item: {row.get('item')!r} is not an item number"
            ) from None
        if position not in positions:
            if not written:
                continue
            raise SheetError(
                f"{where}, column item: item {position} is not in {rater_name}'s queue "
                "(is this another rater's sheet?)"
            )
        if orders is not None:  # rated or not: a sheet in another's order is theirs
            orders.check(row, position, rater_name, where)
        if not written:
            continue
        verdict = read_verdict(written, verdicts)
        if verdict is None:
            words = ", ".join(VERDICT_WORDS[v][0] for v in verdicts)
            chinese = ", ".join(VERDICT_WORDS[v][1] for v in verdicts)
            raise SheetError(f"{where}, column verdict: {written!r}; write {words} ({chinese})")
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
    details = {"rater": rater_name, "file": path.name, "rated": len(submissions)}
    record(store, actor or os_user(), "sheet-imported", name, details)
    return {"rated": len(submissions), "rows": len(rows)}
