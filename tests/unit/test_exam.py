"""`eval exam` through the real EvalScope against a stand-in server that answers known letters."""

import csv
import json
import time
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner
from openai_standin import StandIn, last_user_text
from statsmodels.stats.proportion import proportion_confint

from medfactory.cli import cli
from medfactory.evaluation.exam import BENCHMARKS, read_exam_file

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "dataset_info" / "samples" / "medical_exam_sample.csv"


def sample() -> list[dict]:
    with SAMPLE.open(encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


def script(rows: list[dict], right: callable) -> dict[str, str | None]:
    """question -> the letter the stand-in answers (None: a reply without one)."""
    letters = {}
    for number, row in enumerate(rows, 1):
        if number % 7 == 0 and not right(number):
            letters[row["question"]] = None
        elif right(number):
            letters[row["question"]] = row["answer"]
        else:
            letters[row["question"]] = "D" if row["answer"] != "D" else "A"
    return letters


def answering(letters: dict[str, str | None]):
    def reply(body: dict) -> str:
        prompt = last_user_text(body)
        [question] = [q for q in letters if q in prompt]
        letter = letters[question]
        return "我不确定，建议咨询医生。" if letter is None else f"答案：{letter}"

    return reply


def exam(url: str, benchmark, out: Path, *extra: str):
    args = ["eval", "exam", "--endpoint", url, "--benchmark", str(benchmark), "--out", str(out)]
    return CliRunner().invoke(cli, [*args, *extra])


def expected(rows: list[dict], letters: dict) -> dict[str, tuple[int, int]]:
    tally = defaultdict(lambda: [0, 0])
    for row in rows:
        for subject in (row["subject"], "overall"):
            tally[subject][0] += letters[row["question"]] == row["answer"]
            tally[subject][1] += 1
    return {subject: tuple(counts) for subject, counts in tally.items()}


def test_accuracy_per_subject_is_exactly_what_the_server_answered(tmp_path):
    rows = sample()
    letters = script(rows, right=lambda n: n % 3 != 0)
    with StandIn(answering(letters), model="tuned") as server:
        result = exam(server.url, SAMPLE, tmp_path)
        assert len(server.requests) == len(rows)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "exam.json").read_text())
    assert report["model"] == "tuned"
    for subject, (right, total) in expected(rows, letters).items():
        entry = report["overall"] if subject == "overall" else report["subjects"][subject]
        assert (entry["correct"], entry["questions"]) == (right, total), subject
        assert entry["accuracy"] == right / total
        low, high = proportion_confint(right, total, alpha=0.05, method="wilson")
        assert entry["ci95"] == pytest.approx([low, high])
    by_id = {q["id"]: q for q in report["per_question"]}
    for number, row in enumerate(rows, 1):
        question = by_id[str(number)]
        assert question["answer"] == row["answer"]
        assert question["extracted"] == (letters[row["question"]] or question["extracted"])
        assert question["correct"] == (letters[row["question"]] == row["answer"])
    assert "overall" in result.output and "心血管" in result.output


def test_a_base_and_a_tuned_run_compare_question_by_question(tmp_path):
    rows = sample()
    base = script(rows, right=lambda n: n % 2 == 0)
    tuned = script(rows, right=lambda n: n != 5)
    for name, letters in (("base", base), ("tuned", tuned)):
        with StandIn(answering(letters), model=name) as server:
            assert exam(server.url, SAMPLE, tmp_path / name).exit_code == 0
    result = CliRunner().invoke(
        cli,
        ["eval", "compare", str(tmp_path / "base" / "exam.json"),
         str(tmp_path / "tuned" / "exam.json"), "--out", str(tmp_path / "cmp")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    comparison = json.loads((tmp_path / "cmp" / "exam_comparison.json").read_text())
    rows_out = comparison["deltas"]["tuned"]
    before, after = expected(rows, base), expected(rows, tuned)
    for subject, row in rows_out.items():
        assert row["baseline"] == before[subject][0] / before[subject][1]
        assert row["candidate"] == after[subject][0] / after[subject][1]
        assert row["delta"] == pytest.approx(row["candidate"] - row["baseline"])
        low, high = row["ci95"]
        assert low <= row["delta"] <= high
        assert row["significant"] == (low > 0 or high < 0)
    assert rows_out["overall"]["significant"]  # 12/24 -> 23/24 on the same questions


def test_an_own_exam_as_jsonl_with_an_options_list(tmp_path):
    path = tmp_path / "ward_quiz.jsonl"
    questions = [
        {"question": "正常成人体温约为", "options": ["35", "36-37", "38.5", "40"], "answer": "B"},
        {"question": "胰岛素由哪种细胞分泌？", "options": ["α细胞", "β细胞"], "answer": "b"},
        {"question": "心肺复苏按压频率", "options": ["60", "80", "110", "150", "9"], "answer": "C"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions))
    letters = {"正常成人体温": "B", "胰岛素由哪种": "A", "心肺复苏": "C"}

    def reply(body):
        prompt = last_user_text(body)
        return "答案：" + next(v for k, v in letters.items() if k in prompt)

    with StandIn(reply) as server:
        result = exam(server.url, path, tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "exam.json").read_text())
    assert list(report["subjects"]) == ["ward_quiz"]  # no subject column: the file's name
    assert (report["overall"]["correct"], report["overall"]["questions"]) == (2, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("question,A,B,C,D,answer\n心率?,1,2,3,4,E\n", "exam.csv:2: answer 'E' is not one of A"),
        ("question,A,B,answer\n心率?,1,,A\n", "exam.csv:2: 1 options"),
        ("question,A,B,answer\n,1,2,A\n", "exam.csv:2: no `question`"),
        ("id,question,A,B,answer\n7,心率?,1,2,A\n7,血压?,1,2,B\n", "exam.csv:3: id '7' again"),
    ],
)  # fmt: skip
def test_a_bad_exam_file_names_its_line_before_any_request(tmp_path, text, message):
    path = tmp_path / "exam.csv"
    path.write_text(text, encoding="utf-8")
    with StandIn(lambda body: "答案：A") as server:
        result = exam(server.url, path, tmp_path / "out")
        assert server.requests == []
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_a_named_benchmark_offline_is_one_message_naming_what_to_fetch(tmp_path):
    started = time.monotonic()
    with StandIn(lambda body: "答案：A") as server:
        result = exam(server.url, "ceval-medical", tmp_path)
    assert result.exit_code == 1
    assert "evalscope/ceval" in result.output and "--data-dir" in result.output
    assert "modelscope download --dataset evalscope/ceval" in result.output
    assert "Traceback" not in result.output and time.monotonic() - started < 30


def test_every_named_benchmark_is_an_evalscope_benchmark_with_those_subjects():
    from evalscope.api.registry import BENCHMARK_REGISTRY

    for name, bench in BENCHMARKS.items():
        meta = BENCHMARK_REGISTRY[bench.evalscope]
        assert meta.dataset_id == bench.dataset_id, name
        assert set(bench.subsets or ()) <= set(meta.subset_list), name
    assert {b.purpose for b in BENCHMARKS.values()} == {"medical", "general"}


def test_the_bundled_exam_reads_as_evalscope_expects():
    questions = read_exam_file(SAMPLE)
    assert len(questions) == len(sample()) >= 20
    assert {q["answer"] for q in questions} <= set("ABCD")
    assert len({q["subject"] for q in questions}) >= 4


def test_a_gbk_exam_from_excel_reads_and_odd_subjects_become_file_names(tmp_path):
    path = tmp_path / "科室考试.csv"
    text = "subject,question,A,B,C,answer\n内科/心血管,高血压标准?,120/80,140/90,160/100,b\n"
    path.write_bytes(text.encode("gbk"))
    [question] = read_exam_file(path)
    assert question["question"] == "高血压标准?" and question["answer"] == "B"
    assert question["options"] == ["120/80", "140/90", "160/100"]
    assert question["subject"] == "内科_心血管"  # no folder in EvalScope's file name
