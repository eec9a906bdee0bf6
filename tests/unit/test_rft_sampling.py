"""`data sample` keeps exactly the planted best answers, and a rerun asks nothing.

The sampled model is a stand-in OpenAI-compatible server (tests/openai_standin.py) that
answers each prompt with scripted candidates, one choice each, as vLLM answers `n`. The
prompts are a real prompt set (`data convert exam`), and the answers are scored by the
reward server's own `choice` verifier through the real command line.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.rewards.server import Scorer
from medfactory.rewards.text import chat_text
from medfactory.rewards.verifiers import build_verifier
from tests.openai_standin import StandIn, last_user_text
from tests.unit.test_rewards import EXAM  # the same three questions and key

# Per question: the four candidates the model returns, and what must be kept of them.
CANDIDATES = {
    "scurvy": ["ANSWER: A", "ANSWER: B, vitamin C.", "I am not sure.", "ANSWER: B"],
    "缺铁性贫血": ["答案：B", "答案：C", "答案：D", "答案：B"],  # none right, all alike
    "chest pain": ["ANSWER: C. Call an ambulance now.", "ANSWER: C", "ANSWER: C", "ANSWER: C"],
}
PLANTED_SFT = {"scurvy": "ANSWER: B, vitamin C.", "chest pain": "ANSWER: C. Call an ambulance now."}
PLANTED_DPO = {"scurvy": ("ANSWER: B, vitamin C.", "I am not sure.")}  # +1 against the penalty
PASSED = {"scurvy": 2, "缺铁性贫血": 0, "chest pain": 4}


def topic(text: str) -> str:
    return next(t for t in CANDIDATES if t in text)


def scripted(body: dict) -> list[str]:
    assert body["n"] == 4 and body["temperature"] == 0.8
    return CANDIDATES[topic(last_user_text(body))]


@pytest.fixture()
def prompt_set(tmp_path):
    """The exam as a prompt set (all of it for training) and its answer key."""
    exam = tmp_path / "exam.jsonl"
    exam.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in EXAM))
    data = tmp_path / "data"
    result = CliRunner().invoke(cli, [
        "data", "convert", "exam", str(exam), "--name", "exam", "--held-out", "0",
        "--dataset-dir", str(data), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return data, data / "exam.answers.jsonl"


def sample(data, answers, url, *extra):
    result = CliRunner().invoke(cli, [
        "data", "sample", "--endpoint", url, "--dataset", "exam_train", "--n", "4",
        "--verifier", "choice", "--answers", str(answers), "--name", "exam_rft",
        "--dataset-dir", str(data), "--json", *extra,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sampling_keeps_the_planted_best_answers_and_a_rerun_asks_nothing(prompt_set):
    data, answers = prompt_set
    with StandIn(scripted, model="policy") as model:
        summary = sample(data, answers, model.url)
        assert len(model.requests) == 3  # one request a prompt, n answers in it
    assert summary["requests"] == 3 and summary["from_earlier_runs"] == 0
    assert (summary["prompts"], summary["sampled"], summary["answers"]) == (3, 3, 12)
    assert (summary["sft"], summary["dpo"]) == (2, 1)
    assert summary["passed_histogram"] == {"0": 1, "2": 1, "4": 1}

    sft = rows(data / "exam_rft_sft_train.jsonl")
    kept = {topic(r["conversations"][0]["value"]): r["conversations"][1]["value"] for r in sft}
    assert kept == PLANTED_SFT
    dpo = rows(data / "exam_rft_dpo_train.jsonl")
    pairs = {topic(r["conversations"][-1]["value"]): (r["chosen"]["value"],
             r["rejected"]["value"]) for r in dpo}  # fmt: skip
    assert pairs == PLANTED_DPO
    registry = json.loads((data / "dataset_info.json").read_text())
    assert registry["exam_rft_dpo_train"]["ranking"] is True
    assert {"exam_rft_sft_train", "exam_rft_dpo_train"} <= set(registry)
    manifest = json.loads((data / "exam_rft_sft_train.manifest.json").read_text())
    assert manifest["converter"] == "sample export" and manifest["read"] == 3
    provenance = rows(data / "exam_rft_sft_train.provenance.jsonl")
    assert {p["model"] for p in provenance} == {"policy"}
    assert sorted(p["passed"] for p in provenance) == [2, 4]

    report = json.loads((data / "exam_rft.sample-report.json").read_text())
    passed = {topic(p["question"]): p["passed"] for p in report["per_prompt"]}
    assert passed == PASSED

    # The rerun has every answer: it asks nothing, and needs no server at all.
    again = sample(data, answers, model.url)
    assert again["requests"] == 0 and again["from_earlier_runs"] == 3
    assert rows(data / "exam_rft_sft_train.jsonl") == sft


def test_answers_are_scored_as_the_reward_server_scores_them(prompt_set):
    """The text scored is the prompt with its template and the answer, as LLaMA-Factory
    posts it: the server's scorer gives the same scores as the report."""
    data, answers = prompt_set
    with StandIn(scripted, model="policy") as model:
        sample(data, answers, model.url)
    report = json.loads((data / "exam_rft.sample-report.json").read_text())
    from converters.conversations import load_conversations

    scorer = Scorer(build_verifier("choice", answers))
    for conversation, row in zip(load_conversations(data, "exam_train"), report["per_prompt"],
                                 strict=True):  # fmt: skip
        texts = [chat_text(conversation.messages, a) for a in CANDIDATES[topic(row["question"])]]
        assert scorer.score(texts) == row["scores"]


def test_a_server_that_does_not_answer_is_one_line(prompt_set):
    data, answers = prompt_set
    result = CliRunner().invoke(cli, [
        "data", "sample", "--endpoint", "http://127.0.0.1:9", "--dataset", "exam_train",
        "--verifier", "choice", "--answers", str(answers), "--name", "other",
        "--dataset-dir", str(data),
    ])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "no server answers at http://127.0.0.1:9" in result.output
