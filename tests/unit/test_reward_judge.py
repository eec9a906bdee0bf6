"""The judge behind the verifiers: `judge` scores the rubric judge's HealthBench score
scaled to [-1, 1], and `match` asks the judge when the exact match fails.

The judge is a stand-in OpenAI-compatible server (tests/openai_standin.py) whose replies
are planted per answer and criterion; the grader prompt, the parse of its reply and the
HealthBench score are the real ones (`eval judge`'s, EvalScope's).
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.rewards.judging import JudgeSpec, parse_verdict, scaled
from medfactory.rewards.server import Scorer
from medfactory.rewards.text import chat_text
from medfactory.rewards.verifiers import build_verifier
from tests.openai_standin import StandIn, last_user_text

QUESTION = "I have had crushing chest pain for twenty minutes. What should I do?"
RUBRIC = {"rubrics": [
    {"criterion": "Tells the patient to call emergency services now", "points": 6},
    {"criterion": "Names a heart attack as a possible cause", "points": 4},
    {"criterion": "Recommends a drug that is dangerous here", "points": -5},
]}  # fmt: skip
# answer -> (the criteria the judge says it meets, its planted reward)
PLANTED = {
    "Call an ambulance now: this may be a heart attack.": ({0, 1}, 1.0),  # 10/10
    "Rest at home; it may be a heart attack.": ({1}, -0.2),  # 4/10 -> 2 * 0.4 - 1
    "Take warfarin and sleep.": ({2}, -1.0),  # -5/10, clipped to 0
}
GARBLED = "Drink water."  # the judge never answers it with a grade: unjudged, 0


def grade(body: dict) -> str:
    prompt = last_user_text(body)
    conversation, item = re.search(
        r"# Conversation\n(.*?)\n\n# Rubric item\n(.*?)\n\n#", prompt, re.S
    ).groups()
    assert f"user: {QUESTION}" in conversation  # the chat the answer was given in
    answer = conversation.rsplit("assistant: ", 1)[1]
    if answer == GARBLED:
        return "I would rather not say."
    criterion = next(i for i, c in enumerate(RUBRIC["rubrics"]) if c["criterion"] in item)
    met = criterion in PLANTED[answer][0]
    return json.dumps({"explanation": "planted", "criteria_met": met})


@pytest.fixture()
def rubric(tmp_path):
    import yaml

    path = tmp_path / "chest-pain.yaml"
    path.write_text(yaml.safe_dump(RUBRIC))
    return path


def texts(answers):
    return [chat_text([{"role": "user", "content": QUESTION}], a) for a in answers]


def test_judge_verifier_scores_the_planted_grades(rubric, tmp_path):
    answers = [*PLANTED, GARBLED, ""]
    with StandIn(grade, model="judge") as judge:
        spec = JudgeSpec(judge.url, "judge", str(rubric), cache=tmp_path / "judgments.jsonl")
        scorer = Scorer(build_verifier("judge", judge=spec))
        scores = scorer.score(texts(answers))
        # three criteria for each graded answer, a garbled one asked twice; none for ""
        assert len(judge.requests) == 3 * 3 + 3 * 2
    assert scores == pytest.approx([planted for _, planted in PLANTED.values()] + [0.0, -1.0])
    assert scorer.stats()["outcomes"] == {"scored": 3, "unjudged": 1, "unreadable": 1}
    # a restarted server asks nothing about what was judged: the judgments are kept
    with StandIn(grade, model="judge") as judge:
        spec = JudgeSpec(judge.url, "judge", str(rubric), cache=tmp_path / "judgments.jsonl")
        again = build_verifier("judge", judge=spec).score_all(texts(list(PLANTED)))
        assert len(judge.requests) == 0
    assert [r.score for r in again] == pytest.approx([p for _, p in PLANTED.values()])


def test_judge_with_a_safety_penalty_and_a_per_prompt_rubric(tmp_path):
    healthbench = tmp_path / "rubrics.jsonl"
    healthbench.write_text(json.dumps({"prompt_id": "cp-1", "prompt": QUESTION, **RUBRIC}) + "\n")
    with StandIn(grade, model="judge") as judge:
        spec = JudgeSpec(judge.url, "judge", str(healthbench), cache=tmp_path / "j.jsonl")
        verifier = build_verifier("judge", safety_penalty=0.5, judge=spec)
        scored = verifier.score_all(texts(["Call an ambulance now: this may be a heart attack."]))
        other = texts(["Call an ambulance now: this may be a heart attack."])[0].replace(
            "chest pain", "headache"
        )
        unkeyed = verifier.score_all([other])
    assert (scored[0].score, scored[0].prompt_id, scored[0].outcome) == (1.0, "cp-1", "scored")
    assert (unkeyed[0].score, unkeyed[0].outcome) == (0.0, "unkeyed")


def equivalence(body: dict) -> str:
    prompt = last_user_text(body)
    assert "<Reference Answer>\nACE inhibitor\n</Reference Answer>" in prompt
    return "True" if "angiotensin-converting enzyme inhibitor" in prompt else "False."


def test_match_asks_the_judge_only_when_the_exact_match_fails(tmp_path):
    question = "First-line drug for hypertension in a young patient with diabetes?"
    key = tmp_path / "key.jsonl"
    key.write_text(json.dumps({"question": question, "answer": "ACE inhibitor"}) + "\n")
    cases = [
        ("Final answer: ACE-inhibitor", 1.0),  # exact after normalising: no judge
        ("Final answer: an angiotensin-converting enzyme inhibitor", 1.0),  # the judge: True
        ("Final answer: a beta blocker", 0.0),  # the judge: False
    ]
    with StandIn(equivalence, model="judge") as judge:
        spec = JudgeSpec(judge.url, "judge", cache=tmp_path / "j.jsonl")
        verifier = build_verifier("match", key, judge=spec)
        prompts = [chat_text([{"role": "user", "content": question}], a) for a, _ in cases]
        assert [r.score for r in verifier.score_all(prompts)] == [s for _, s in cases]
        assert len(judge.requests) == 2
        assert all(r["temperature"] == 0.0 for r in judge.requests)
    without = build_verifier("match", key)  # no judge: the exact match alone
    assert [r.score for r in without.score_all(prompts)] == [1.0, 0.0, 0.0]


def test_readers_and_scale():
    assert parse_verdict("True") is True and parse_verdict("**False**, it differs") is False
    assert parse_verdict("I cannot tell") is None
    assert [scaled(s) for s in (-0.5, 0.0, 0.25, 1.0)] == [-1.0, -1.0, -0.5, 1.0]


def test_judge_needs_an_endpoint_in_one_line():
    result = CliRunner().invoke(cli, ["reward", "serve", "--verifier", "judge"])
    assert result.exit_code == 1
    assert result.output == ("Error: --verifier judge needs --judge-endpoint URL (and --rubric)\n")
