"""`data convert medical-o1-verifiable|exam`: prompt sets without answers, their keys for
the reward server, a held-out part, and every record accounted for."""

from __future__ import annotations

import json

from click.testing import CliRunner

from converters.conversations import load_conversations
from medfactory.cli import cli
from medfactory.evaluation.exam import read_exam_file
from medfactory.rewards.keys import read_choice_key, read_match_key

Q, A = "Open-ended Verifiable Question", "Ground-True Answer"


def convert(kind, path, data, *extra):
    return CliRunner().invoke(cli, [
        "data", "convert", kind, str(path), "--name", "v", "--dataset-dir", str(data), *extra,
    ])  # fmt: skip


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_medical_o1_verifiable_keeps_the_answers_out_of_the_prompts(tmp_path):
    good = [{Q: f"A patient, {age}, has a fever of {age % 3 + 38} C. Which test first?",
             A: f"Blood culture {age}"} for age in range(20, 40)]  # fmt: skip
    bad = [
        {Q: "  " + good[3][Q].replace(" ", "  ") + " ", A: "something else"},  # a duplicate
        {Q: "What causes gout?"},  # no answer
        ["not", "an", "object"],
        {Q: "What is normal pH?", A: 7.4},  # not a string
        {Q: "   ", A: "empty question"},
    ]
    source = tmp_path / "medical_o1_verifiable_problem.json"
    records = good[:10] + bad + good[10:]  # one a line: record i is on line i + 2
    source.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)
                      + "\n]\n")  # fmt: skip
    data = tmp_path / "data"
    result = convert("medical-o1-verifiable", source, data, "--held-out", "0.3", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)

    # every record: a prompt, a duplicate, or a reject with its line and reason
    written = summary["written"]
    assert (
        summary["read"]
        == 25
        == sum(written.values()) + summary["duplicates"] + sum(summary["rejected"].values())
    )
    assert written["train"] + written["test"] == 20 and written["test"] > 0
    assert summary["duplicates"] == 1
    assert summary["rejected"] == {"empty_field": 1, "field_not_string": 1, "missing_field": 1,
                                   "not_an_object": 1}  # fmt: skip
    rejects = rows(data / "v.rejects.jsonl")
    assert [r["reason"] for r in rejects] == ["missing_field", "not_an_object",
                                              "field_not_string", "empty_field"]  # fmt: skip
    assert [r["line"] for r in rejects] == [13, 14, 15, 16]
    assert [r["record"] for r in rejects] == bad[1:]

    # the prompts carry no answer; the keys hold them, split as the prompts are
    train = load_conversations(data, "v_train")
    test = load_conversations(data, "v_test")
    assert (len(train), len(test)) == (written["train"], written["test"])
    assert {c.reference for c in train + test} == {""}
    prompts = (data / "v_train.jsonl").read_text() + (data / "v_test.jsonl").read_text()
    assert "Blood culture" not in prompts
    key = read_match_key(data / "v.answers.jsonl")  # what `reward serve --verifier match` reads
    assert len(key) == written["train"]
    assert len(read_match_key(data / "v.heldout.jsonl")) == written["test"]
    for conversation in train:
        found = key.find(conversation.messages[-1]["content"])
        assert found.answer == f"Blood culture {found.question.split(', ')[1].split(',')[0]}"
    for conversation in test:
        assert key.find(conversation.messages[-1]["content"]) is None  # held out of the key
    manifest = json.loads((data / "v_train.manifest.json").read_text())
    assert manifest["converter"] == "medical-o1-verifiable prompt set"
    assert manifest["sources"][0]["path"] == str(source.resolve())
    assert manifest["answers"]["file"] == "v.answers.jsonl"


EXAM_CSV = """id,question,A,B,C,D,answer
1,Which vitamin deficiency causes scurvy?,Vitamin A,Vitamin C,Vitamin D,Vitamin K,B
2,缺铁性贫血最常见的原因是？,慢性失血,维生素B12缺乏,溶血,骨髓衰竭,A
3,Which drug reverses opioid overdose?,Naloxone,Atropine,Flumazenil,Adrenaline,E
4,Only one option?,Yes,,,,A
5,Which vitamin deficiency causes scurvy?,Vitamin A,Vitamin C,Vitamin D,Vitamin K,B
6,First step for sudden crushing chest pain?,Rest,Antacid,Call an ambulance,Sleep,C
7,,Yes,No,,,A
"""


def test_exam_becomes_prompts_asked_as_eval_exam_asks_and_a_key(tmp_path):
    source = tmp_path / "exam.csv"
    source.write_text(EXAM_CSV, encoding="utf-8")
    data = tmp_path / "data"
    result = convert("exam", source, data, "--held-out", "0", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["read"] == 7
    assert summary["written"] == {"train": 3, "test": 0} and summary["duplicates"] == 1
    assert summary["rejected"] == {"invalid_question": 3}
    rejects = {r["line"]: r["detail"] for r in rows(data / "v.rejects.jsonl")}
    assert set(rejects) == {4, 5, 8}  # CSV lines, the header on line 1
    assert "answer 'E' is not one of A, B, C, D" in rejects[4]
    assert "1 options" in rejects[5] and "no `question`" in rejects[8]

    prompts = [c.messages[-1]["content"] for c in load_conversations(data, "v_train")]
    assert "Call an ambulance" in prompts[2] and "答案：[LETTER]" in prompts[2]
    key = read_choice_key(data / "v.answers.jsonl")  # what `reward serve --verifier choice` reads
    assert [key.find(p).answer for p in prompts] == ["B", "A", "C"]
    assert not (data / "v.heldout.jsonl").exists()


def test_exam_held_out_part_is_an_exam_file(tmp_path):
    source = tmp_path / "exam.jsonl"
    source.write_text("".join(
        json.dumps({"id": i, "question": f"Question {i}: which is right?", "options":
                    ["x", "y", "z"], "answer": "ABC"[i % 3]}) + "\n" for i in range(30)
    ))  # fmt: skip
    data = tmp_path / "data"
    result = convert("exam", source, data, "--held-out", "0.3", "--json")
    summary = json.loads(result.output)
    held_out = read_exam_file(data / "v.heldout.jsonl")  # what `eval exam` reads
    assert len(held_out) == summary["written"]["test"] > 0
    assert summary["written"]["train"] + len(held_out) == 30
    assert {q["answer"] for q in held_out} <= {"A", "B", "C"}


def test_nothing_usable_is_one_line_and_registers_nothing(tmp_path):
    source = tmp_path / "bad.json"
    source.write_text(json.dumps([{"Question": "wrong file"}, 3]))
    data = tmp_path / "data"
    result = convert("medical-o1-verifiable", source, data)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "no training prompt could be made (2 read: missing_field 1, not_an_object 1)" in (
        result.output
    )
    assert len(rows(data / "v.rejects.jsonl")) == 2
    assert not (data / "dataset_info.json").exists()
