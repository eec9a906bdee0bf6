"""Doctors review a model's drafts: accept, edit or reject, two per draft, an arbiter;
the export holds exactly the accepted and the corrected drafts, each with its source."""

import csv
import json
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from medfactory.exports import write_export
from medfactory.review.draft_report import build_draft_report, draft_markdown
from medfactory.review.errors import RatingError, StudyError
from medfactory.review.exports import review_export
from medfactory.review.rating import (
    Submission,
    arbitrate,
    disagreements,
    queue,
    rater_view,
    submit,
)
from medfactory.review.sheets import import_sheet, write_sheet
from medfactory.review.studies import StudySpec, create_study
from medfactory.store.db import Rater, open_store

# (d1's verdict, d1's edit), (d2's ...), the arbiter's (verdict, edit) or None
PLAN = [
    (("accept", ""), ("accept", ""), None),  # 1: accepted
    (("edit", "改后的答案一"), ("edit", "改后的答案一 "), None),  # 2: the same edit
    (("reject", ""), ("reject", ""), None),  # 3: rejected
    (("accept", ""), ("reject", ""), ("edit", "仲裁者写的答案")),  # 4: settled by an edit
    (("edit", "甲"), ("edit", "乙"), ("accept", "")),  # 5: two edits, the arbiter accepts
    (("accept", ""), None, None),  # 6: waiting for its second rater
    (("edit", "丙"), ("accept", ""), None),  # 7: a disagreement not yet arbitrated
]


def write_drafts(folder: Path, count: int = len(PLAN)) -> Path:
    path = folder / "guide.drafts.jsonl"
    rows = [
        {"id": f"guide.md#{i}.1", "question": f"第{i}个问题：高血压怎么办？",
         "answer": f"第{i}个草稿答案：低盐饮食，规律服药。",
         "source": {"file": "guidelines/guide.md", "chunk": i, "heading": "治疗",
                    "start": 100 * i, "end": 100 * i + 80},
         "chunk_text": f"第{i}段原文：低盐饮食，规律服药。", "grounding": 0.9}
        for i in range(1, count + 1)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


@pytest.fixture
def study(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    spec = StudySpec("d", [], ["d1", "d2"], arbiter="boss", drafts=write_drafts(tmp_path))
    create_study(store, spec)
    yield store
    store.close()


def people(store) -> dict:
    with store.session() as session:
        return {r.name: r for r in session.query(Rater)}


def carry_out(store) -> None:
    raters = people(store)
    for position, (first, second, _) in enumerate(PLAN, 1):
        for name, given in (("d1", first), ("d2", second)):
            if given:
                verdict, edit = given
                submit(store, raters[name].id, position, Submission(verdict, {}, edit), None)
    for position, (_, _, arbiter) in enumerate(PLAN, 1):
        if arbiter:
            verdict, edit = arbiter
            arbitrate(store, raters["boss"].id, position, verdict, "", None, correction=edit)


def test_a_rater_sees_one_draft_with_its_source_and_gives_one_of_three_verdicts(study):
    raters = people(study)
    with study.session() as session:
        assert [i.position for i, _, _ in queue(session, raters["d1"])] == list(
            range(1, len(PLAN) + 1)
        )  # overlap 2: both raters see every draft
        view = rater_view(session, raters["d1"], 3)
    assert view.kind == "single" and view.answers == ("第3个草稿答案：低盐饮食，规律服药。",)
    assert view.conversation == [{"role": "user", "content": "第3个问题：高血压怎么办？"}]
    assert view.source["chunk_text"] == "第3段原文：低盐饮食，规律服药。"
    assert view.source["file"] == "guidelines/guide.md" and view.source["end"] == 380
    with pytest.raises(RatingError, match="verdict '1': one of accept, edit, reject"):
        submit(study, raters["d1"].id, 1, Submission("1", {}), None)
    with pytest.raises(RatingError, match="edit: write the corrected answer"):
        submit(study, raters["d1"].id, 1, Submission("edit", {}, "  "), None)
    # The page sends the answer box with every verdict; only an edit keeps it.
    submit(study, raters["d1"].id, 1, Submission("accept", {}, view.answers[0]), None)
    with study.session() as session:
        assert rater_view(session, raters["d1"], 1).previous["correction"] == ""


def test_disagreements_go_to_the_arbiter_and_the_export_keeps_exactly_the_reviewed(study, tmp_path):
    carry_out(study)
    with study.session() as session:
        assert disagreements(session, 1) == [7]  # 4 and 5 are settled, 2's edits agree
    export = review_export(study, "d")
    assert export.skipped == {"rejected": 1, "waiting for its other raters": 1,
                              "raters disagree, not arbitrated": 1}  # fmt: skip
    summary = write_export(export, tmp_path / "data", "reviewed", fmt="alpaca", split=(1.0,))
    assert summary["written"] == {"sft": {"train": 4}}
    rows = [json.loads(x) for x in (tmp_path / "data" / "reviewed_sft_train.jsonl").open()]
    got = {row["instruction"]: (row["output"], row["source"]) for row in rows}
    expected = {
        1: "第1个草稿答案：低盐饮食，规律服药。", 2: "改后的答案一", 4: "仲裁者写的答案",
        5: "第5个草稿答案：低盐饮食，规律服药。",
    }  # fmt: skip
    assert got == {
        f"第{i}个问题：高血压怎么办？": (
            answer,
            f"guidelines/guide.md#chunk{i}[{100 * i}:{100 * i + 80}]",
        )
        for i, answer in expected.items()
    }
    registry = json.loads((tmp_path / "data" / "dataset_info.json").read_text())
    assert registry["reviewed_sft_train"]["file_name"] == "reviewed_sft_train.jsonl"


def test_the_report_counts_verdicts_and_agreement(study):
    carry_out(study)
    report = build_draft_report(study, "d")
    given = [(p[0][0], p[1][0]) for p in PLAN if p[1]]
    ratings = [v for pair in given for v in pair] + ["accept"]  # item 6's single rating
    for verdict in ("accept", "edit", "reject"):
        assert report["before_arbitration"][verdict]["count"] == ratings.count(verdict)
    assert {v: e["count"] for v, e in report["after_arbitration"].items()} == {
        "accept": 2, "edit": 2, "reject": 1,
    }  # fmt: skip
    assert report["unsettled"] == 2 and report["arbitrated"] == 2
    assert report["waiting"] == 1 and report["waiting_items"] == [6]  # one of two raters
    assert report["disputed"] == 1 and report["settled"] == 5
    assert "Waiting: items 6." in draft_markdown(report, None)
    first, second = zip(*given, strict=True)
    pair = report["agreement"]["pairs"]["d1|d2"]
    assert pair["items"] == 6
    assert pair["kappa"] == pytest.approx(cohen_kappa_score(first, second))
    assert report["edits"] == {"both_edited": 2, "same_text": 1}


def test_a_sheet_of_drafts_round_trips(study, tmp_path):
    raters = people(study)
    sheet = tmp_path / "d1.csv"
    assert write_sheet(study, "d", "d1", sheet) == len(PLAN)
    with sheet.open(encoding="utf-8-sig") as data:
        legend = data.readline()  # a legend of the allowed values, skipped on import
        rows = list(csv.DictReader(data))
    assert legend.startswith("# Legend") and "accept (接受)" in legend
    assert list(rows[0]) == ["item", "question", "answer", "source", "verdict", "correction",
                             "comment"]  # fmt: skip
    assert "第1段原文" in rows[0]["source"] and "guidelines/guide.md" in rows[0]["source"]
    rows[0].update(verdict="edit", correction="医生改过的答案")
    rows[1].update(verdict="reject", comment="与指南不符")
    rows[2].update(verdict="接受")  # the page's Chinese word
    with sheet.open("w", newline="", encoding="utf-8-sig") as out:
        out.write(legend)
        writer = csv.DictWriter(out, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert import_sheet(study, "d", sheet, "d1") == {"rated": 3, "rows": len(PLAN)}
    with study.session() as session:
        first = rater_view(session, raters["d1"], 1).previous
        second = rater_view(session, raters["d1"], 2).previous
    assert first["verdict"] == "edit" and first["correction"] == "医生改过的答案"
    assert second["verdict"] == "reject" and second["comment"] == "与指南不符"
    with study.session() as session:
        assert rater_view(session, raters["d1"], 3).previous["verdict"] == "accept"

    rows[2].update(verdict="edit", correction="")
    with sheet.open("w", newline="", encoding="utf-8-sig") as out:
        writer = csv.DictWriter(out, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(Exception, match="row 4: edit: write the corrected answer"):  # no legend
        import_sheet(study, "d", sheet, "d1")


def test_a_bad_drafts_file_is_one_message(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    path = tmp_path / "x.drafts.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n{"question": "", "answer": "b"}\n')
    with pytest.raises(StudyError, match="x.drafts.jsonl:2: a draft needs a non-empty"):
        create_study(store, StudySpec("d", [], ["d1"], overlap=1, drafts=path))
    with pytest.raises(StudyError, match="no such drafts file"):
        create_study(store, StudySpec("d", [], ["d1"], overlap=1, drafts=tmp_path / "none"))
    store.close()
