"""An exam of the team's own guidelines: `data synthesize --kind exam` against a stand-in
model that returns scripted questions keeps exactly the sound ones in the `eval exam`
format and drops the planted faults with their reasons; doctors accept, edit or reject
them in a single-answer study; `review export` refuses them as training data and
`review export-exam` writes the settled ones as an exam that `eval exam` reads."""

import hashlib
import json
import re
import threading
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from openai_standin import StandIn, last_user_text

from medfactory.cli import cli
from medfactory.evaluation.exam import read_exam_file, write_general_mcq
from medfactory.review.errors import StudyError
from medfactory.review.rating import Submission, arbitrate, rater_view, submit
from medfactory.review.studies import StudySpec, create_study
from medfactory.store.db import Rater, open_store
from medfactory.synthesis.exam import options_text, read_options_text

DOCS = Path(__file__).resolve().parents[2] / "dataset_info" / "samples" / "documents"
WRONG = ["每天饮酒可以降压", "可以自行停药", "头晕时加倍服药", "无需复查血压"]


def first_sentence(chunk: str) -> str:
    body = "\n".join(line for line in chunk.splitlines() if not line.startswith("#"))
    return re.split(r"(?<=[。.])\s*", body.strip())[0].strip()


class Examiner:
    """Per chunk one sound question (its key's option is the chunk's first sentence, at a
    position of its own); the chunks of PLAN also get the planted faults."""

    def __init__(self):
        self.asked, self.lock = Counter(), threading.Lock()

    def __call__(self, body: dict) -> str:
        prompt = last_user_text(body)
        text = prompt.split('"""')[1].strip()
        source = re.search(r"(?:资料来源：|Source: )(.+)", prompt).group(1)
        with self.lock:
            self.asked[source] += 1
        fact = first_sentence(text)
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        key = int(digest, 16) % 4
        options = WRONG[:key] + [fact] + WRONG[key:3]
        questions = [{"question": f"关于{digest}，下列哪项正确？", "options": options,
                      "answer": "ABCD"[key], "evidence": fact}]  # fmt: skip
        if "hypertension.md" in source and "（诊断）" in source:
            questions += [
                {"question": "诊断高血压的家庭血压标准是？", "options": options, "answer": "F"},
                {"question": "高血压患者的生活方式应当？", "answer": "A",
                 "options": {"A": "多吃火锅喝啤酒熬夜", "B": "少运动", "C": "多吃咸菜",
                             "D": "不测血压"}},
                {"question": "三个选项的题？", "options": options[:3], "answer": "A"},
                {"question": f"关于{digest}，下列哪项正确", "options": options,
                 "answer": "ABCD"[key]},
            ]  # fmt: skip
        return "```json\n" + json.dumps(questions, ensure_ascii=False) + "\n```"


def synthesize(url: str, dataset_dir: Path):
    args = ["data", "synthesize", str(DOCS), "--kind", "exam", "--endpoint", url,
            "--name", "guide", "--dataset-dir", str(dataset_dir), "--chunk-chars", "400",
            "--overlap", "80", "--concurrency", "3", "--questions", "2", "--json"]  # fmt: skip
    return CliRunner().invoke(cli, args)


@pytest.fixture(scope="module")
def drafted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exam")
    with StandIn(Examiner(), model="examiner") as server:
        result = synthesize(server.url, folder)
        assert result.exit_code == 0, result.output
        asked = len(server.requests)
    return folder, json.loads(result.output), asked


def test_sound_questions_are_kept_as_an_exam_and_planted_faults_dropped(drafted):
    folder, summary, asked = drafted
    assert summary["kind"] == "exam" and summary["requests"] == asked == summary["chunks"]
    assert summary["dropped"] == {
        "key_not_an_option": 1, "key_unsupported": 1, "options": 1, "duplicate": 1,
    }  # fmt: skip
    assert summary["kept"] == summary["chunks"] and summary["files"]["drafts"].endswith(
        "guide.exam.jsonl"
    )
    exam = folder / "guide.exam.jsonl"
    questions = read_exam_file(exam)  # what `eval exam --benchmark` reads first
    assert len(questions) == summary["kept"]
    rows = [json.loads(line) for line in exam.read_text().splitlines()]
    for row, question in zip(rows, questions, strict=True):
        key_text = question["options"]["ABCDE".index(question["answer"])]
        assert key_text in row["chunk_text"] and len(question["options"]) == 4
        assert question["subject"] == Path(row["source"]["file"]).stem
    assert {q["subject"] for q in questions} == {"asthma", "diabetes", "hypertension"}
    assert sorted(write_general_mcq(questions, folder / "mcq")) == [
        "asthma", "diabetes", "hypertension",
    ]  # fmt: skip
    dropped = {
        d["reason"]: d for d in map(json.loads, (folder / "guide.exam.dropped.jsonl").open())
    }
    assert dropped["key_not_an_option"]["detail"] == "key 'F' is not one of A, B, C, D"
    assert "'多吃火锅喝啤酒熬夜'" in dropped["key_unsupported"]["detail"]
    assert dropped["options"]["question"] == "三个选项的题？"


def test_a_rerun_asks_nothing_and_writes_the_same_exam(drafted):
    folder, _, _ = drafted
    before = (folder / "guide.exam.jsonl").read_bytes()
    with StandIn(Examiner(), model="examiner") as server:
        again = json.loads(synthesize(server.url, folder).output)
        assert server.requests == []
    assert again["requests"] == 0 and (folder / "guide.exam.jsonl").read_bytes() == before


def test_options_text_reads_back_and_a_bad_edit_says_why():
    text = options_text(["低盐饮食", "多吃咸菜", "熬夜", "停药"], "A", "高血压患者应当？")
    assert text.splitlines()[0] == "A. 低盐饮食" and text.endswith("答案：A")
    assert read_options_text(text) == (["低盐饮食", "多吃咸菜", "熬夜", "停药"], "A")
    assert read_options_text("A) salt\nB) sugar\n  more sugar\nAnswer: b") == (
        ["salt", "sugar more sugar"], "B",
    )  # fmt: skip
    with pytest.raises(ValueError, match="no key line naming one of A, B"):
        read_options_text("A. 一\nB. 二\n答案：C")
    with pytest.raises(ValueError, match="option C out of order"):
        read_options_text("A. 一\nC. 二\n答案：A")


def test_doctors_review_the_questions_and_only_the_settled_become_an_exam(drafted, tmp_path):
    folder, _, _ = drafted
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    spec = StudySpec("q", [], ["d1", "d2"], arbiter="boss", drafts=folder / "guide.exam.jsonl")
    create_study(store, spec)
    with store.session() as session:
        raters = {r.name: r for r in session.query(Rater)}
        view = rater_view(session, raters["d1"], 1)
    stem, shown = view.conversation[0]["content"], view.answers[0]
    options, key = read_options_text(shown)  # the page shows the options and the key
    assert view.source["exam"]["subject"] and view.source["chunk_text"]
    changed = options_text([*options[:3], "以上都不对"], "D", stem)
    plan = {  # position -> (d1, d2) verdicts with edits; item 4 goes to the arbiter
        1: (("accept", ""), ("accept", "")),
        2: (("edit", changed), ("edit", changed + " ")),
        3: (("reject", ""), ("reject", "")),
        4: (("accept", ""), ("reject", "")),
        5: (("edit", "A. 只有一个选项\n答案：A"), ("edit", "A. 只有一个选项\n答案：A")),
    }
    for position, verdicts in plan.items():
        for name, (verdict, edit) in zip(("d1", "d2"), verdicts, strict=True):
            submit(store, raters[name].id, position, Submission(verdict, {}, edit), None)
    arbitrate(store, raters["boss"].id, 4, "accept", "", None)

    refused = CliRunner().invoke(cli, ["review", "export", "q", "--name", "q_sft",
                                       "--dataset-dir", str(tmp_path / "data"),
                                       "--db", f"sqlite:///{tmp_path / 'review.db'}"])  # fmt: skip
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert "holds exam questions, which stay out of training data" in refused.output
    assert not (tmp_path / "data").exists()

    out = tmp_path / "exams" / "guide.jsonl"
    result = CliRunner().invoke(cli, ["review", "export-exam", "q", "--out", str(out), "--json",
                                      "--db", f"sqlite:///{tmp_path / 'review.db'}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    total = len(read_exam_file(folder / "guide.exam.jsonl"))
    assert summary["questions"] == 3 and summary["edited"] == 1  # items 1, 2 (edited), 4
    assert summary["skipped"] == {
        "rejected": 1, "not rated": total - 5, "unreadable_edit": 1,
    }  # fmt: skip
    assert summary["unreadable"] == [
        {"item": 5, "why": "fewer than 2 options (lines A. ..., B. ...)"}
    ]
    exam = read_exam_file(out)
    assert len(exam) == 3
    edited = next(q for q in exam if q["answer"] == "D" and q["options"][3] == "以上都不对")
    with store.session() as session:
        second = rater_view(session, raters["d1"], 2)
    assert edited["question"] == second.conversation[0]["content"]
    store.close()


def test_a_file_mixing_exam_questions_and_answers_is_refused(drafted, tmp_path):
    folder, _, _ = drafted
    mixed = tmp_path / "mixed.jsonl"
    first = (folder / "guide.exam.jsonl").read_text().splitlines()[0]
    mixed.write_text(first + "\n" + json.dumps({"question": "问？", "answer": "答。"}) + "\n")
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    with pytest.raises(StudyError, match="exam questions and question-answer drafts in one"):
        create_study(store, StudySpec("m", [], ["d1"], overlap=1, drafts=mixed))
    bad = tmp_path / "bad.exam.jsonl"
    row = json.loads(first) | {"answer": "F"}
    bad.write_text(json.dumps(row, ensure_ascii=False) + "\n")
    result = CliRunner().invoke(cli, ["review", "create", "b", "--drafts", str(bad),
                                      "--raters", "d1", "--overlap", "1",
                                      "--db", f"sqlite:///{tmp_path / 'review.db'}"])  # fmt: skip
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{bad}:1: answer 'F' is not one of A, B, C, D" in result.output
    store.close()
