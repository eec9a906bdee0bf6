"""The parts of `make rl-exam` and `make rl` that need no model: the exam whose key is
always A, the held-out answers scored by the choice verifier and by the reward server,
the comparison's intervals, the server log read."""

from __future__ import annotations

import csv
import json

import pytest

from medfactory.dev.rl import compare
from medfactory.dev.rl_exam import (
    EXAM,
    NAME,
    fixed_letter_exam,
    logged_scores,
    prepare_prompt_set,
    score_heldout,
)


def test_the_right_option_moves_to_a_and_the_others_keep_their_order(tmp_path):
    count = fixed_letter_exam(EXAM, tmp_path / "exam.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "exam.jsonl").read_text().splitlines()]
    with EXAM.open(encoding="utf-8-sig", newline="") as file:
        source = list(csv.DictReader(file))
    assert count == len(rows) == len(source) > 0
    for row, original in zip(rows, source, strict=True):
        assert row["answer"] == "A" and row["A"] == original[original["answer"]]
        others = [original[k] for k in "ABCD" if k != original["answer"]]
        assert [row["B"], row["C"], row["D"]] == others


@pytest.fixture(scope="module")
def prompt_set(tmp_path_factory):
    return prepare_prompt_set(tmp_path_factory.mktemp("rl"), held_out=0.3, samples=2)


def test_the_form_set_answers_each_training_question_once_with_each_of_its_letters(prompt_set):
    data = prompt_set["data"]
    registry = json.loads((data / "dataset_info.json").read_text())
    rows = [json.loads(line) for line in (data / f"{NAME}_format.jsonl").read_text().splitlines()]
    key = [json.loads(line) for line in prompt_set["answers"].read_text().splitlines()]
    assert registry[f"{NAME}_format"]["file_name"] == f"{NAME}_format.jsonl"
    for entry in key:  # every letter once: the SFT set prefers no letter, the key's A included
        asked = [r for r in rows if f"问题：{entry['question']}" in r["conversations"][0]["value"]]
        answers = sorted(r["conversations"][1]["value"] for r in asked)
        assert answers == [f"答案：{letter}" for letter in "ABCDE" if entry.get(letter)]
    assert len(rows) == sum(len([k for k in "ABCDE" if e.get(k)]) for e in key)


def test_held_out_answers_score_plus_one_zero_and_minus_one(prompt_set):
    rows = prompt_set["heldout_rows"]
    registry = json.loads((prompt_set["data"] / "dataset_info.json").read_text())
    assert (
        f"{NAME}_heldout" in registry and len(rows) == 2 * prompt_set["summary"]["written"]["test"]
    )
    answers = ["答案：A", "答案：B", "嗯嗯嗯"] * len(rows)
    scored = score_heldout(answers[: len(rows)], rows, prompt_set["heldout_key"])
    assert scored["answers"] == len(rows)
    expected = {"right": 0, "wrong": 0, "unreadable": 0}
    for answer in answers[: len(rows)]:
        expected[{"答案：A": "right", "答案：B": "wrong"}.get(answer, "unreadable")] += 1
    assert scored["outcomes"] == {k: v for k, v in expected.items() if v}
    assert len(scored["per_prompt"]) == prompt_set["summary"]["written"]["test"]


def test_comparison_pairs_questions_and_brackets_the_means():
    sft = {"1": -1.0, "2": 0.0, "3": -0.5, "4": -1.0}
    ppo = {"1": 1.0, "2": 1.0, "3": 0.5, "4": 0.0}
    result = compare(sft, ppo)
    assert result["questions"] == 4
    assert result["sft"]["mean"] == -0.625 and result["ppo"]["mean"] == 0.625
    assert result["difference"]["mean"] == 1.25
    for label in ("sft", "ppo", "difference"):
        low, high = result[label]["interval"]
        assert low <= result[label]["mean"] <= high
    assert result["difference"]["interval"][0] > 0  # every question improved


def test_the_server_log_is_read_line_by_line(tmp_path):
    log = tmp_path / "server.log"
    log.write_text(
        "2026-12-04 04:00:09 reward choice=-1.000 prompt=12 outcome=unreadable\n"
        "INFO: noise\n"
        "2026-12-04 04:00:10 reward choice=+1.000 prompt=7 outcome=right unsafe=r1\n"
    )
    assert logged_scores(log) == [
        {"verifier": "choice", "score": -1.0, "prompt": "12", "outcome": "unreadable"},
        {"verifier": "choice", "score": 1.0, "prompt": "7", "outcome": "right"},
    ]


def test_make_rl_holds_out_prompts_the_reward_model_never_saw_and_averages_per_prompt(
    tmp_path, fixtures_dir
):
    from medfactory.dev.rl import heldout_prompts, ppo_texts, score_on_server, user_messages
    from medfactory.rewards.server import PATH, Scorer, create_app
    from medfactory.rewards.verifiers import build_verifier
    from tests.serving_helpers import Served

    def row(*turns: str) -> dict:
        return {"conversations": [{"from": "human" if i % 2 == 0 else "gpt", "value": t}
                                  for i, t in enumerate(turns)]}  # fmt: skip

    rows = [row("头痛怎么办？", "多休息。"),
            row("咳嗽一周了", "建议就医。", "需要吃药吗？", "遵医嘱。"),
            row("头痛怎么办？", "多喝水。"), row("发烧38度", "退热。")]  # fmt: skip
    source, pairs = tmp_path / "test.jsonl", tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    pairs.write_text(json.dumps({**row("发烧38度"), "chosen": {}, "rejected": {}}) + "\n")
    heldout = heldout_prompts(tmp_path / "work", 2, source, user_messages(pairs))
    assert heldout["dropped"] == 1  # the pairs ask it: not held out from the reward model
    registered = json.loads((heldout["data"] / "dataset_info.json").read_text())
    written = (heldout["data"] / registered[heldout["dataset"]]["file_name"]).read_text()
    expected_rows = [rows[0], rows[0], rows[1], rows[1], rows[2], rows[2]]
    assert [json.loads(line) for line in written.splitlines()] == expected_rows
    assert heldout["chats"][2] == [{"role": "user", "content": "咳嗽一周了"},
                                   {"role": "assistant", "content": "建议就医。"},
                                   {"role": "user", "content": "需要吃药吗？"}]  # fmt: skip
    unsafe = "This remedy guarantees a cure, with no side effects."
    answers = ["Rest, and see a doctor.", unsafe, unsafe, unsafe, "Rest.", "Rest."]
    tokenizer = fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer"
    texts = ppo_texts(tokenizer, "qwen", heldout["chats"], answers)
    assert texts[2].startswith("<|im_start|>system\nYou are Qwen") and texts[2].endswith(
        "<|im_start|>user\n需要吃药吗？<|im_end|>\n<|im_start|>assistant\n" + unsafe + "<|im_end|>"
    )  # as the PPO trainer posts it: the template's default system, the answer, the eos
    with Served(create_app(Scorer(build_verifier("safety")))) as server:
        url = f"http://127.0.0.1:{server.port}{PATH}"
        means = score_on_server(url, texts, heldout["prompt_of"])
    # rows 0 and 2 ask the same question and stay two prompts; the lint's penalty is 1
    assert means == {"0": -0.5, "1": -1.0, "2": 0.0}
