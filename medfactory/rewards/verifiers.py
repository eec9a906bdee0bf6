"""Verifiers: a prompt+response text in, a reward out.

- `choice`: the letter read from the response (EvalScope's reader, the one `eval exam`
  scores with) against the key: +1 right, 0 wrong;
- `match`: the response's final answer, normalised, equal to the reference: +1, else 0;
  with a judge, an answer that does not match exactly is +1 when the judge says it is
  equivalent to the reference;
- `judge`: the rubric judge's HealthBench score of the answer, scaled to [-1, 1]
  (medfactory/rewards/judging.py);
- `model`: a trained reward model's score (medfactory/rewards/model.py);
- `safety`: 0, less the safety penalty when the safety lint flags the answer; with any
  other verifier, `safety_penalty` > 0 subtracts the same penalty from its score.

A response no answer can be read from scores `format_penalty` and is counted as
unreadable, never an error; a prompt the answer key does not cover scores 0 and is
counted as unkeyed, so that the log names it; an answer the judge gave no usable grade
for scores 0 and is counted as unjudged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from medfactory.rewards.errors import RewardError
from medfactory.rewards.keys import AnswerKey, read_choice_key, read_match_key
from medfactory.rewards.text import final_answer, split

VERIFIERS = ("choice", "match", "judge", "model", "safety")
FORMAT_PENALTY = -1.0
# "答案：B", "Answer: 42", "final answer is ..."; the text after the last one is the answer
ANSWER_MARKER = re.compile(r"(?:final answer|answer|答案|最终答案)\s*(?:is|为|是)?\s*[:：]?\s*",
                           re.IGNORECASE)  # fmt: skip


@dataclass(frozen=True)
class Scored:
    score: float
    outcome: str  # right, wrong, unreadable, unkeyed, unjudged or scored (judge, model, safety)
    prompt_id: str = ""
    unsafe: tuple[str, ...] = field(default=())  # ids of the safety rules it broke


def read_letter(response: str, options: int) -> str | None:
    """The chosen letter, as EvalScope reads it for `eval exam` (English, then Chinese form)."""
    from evalscope.utils.multi_choices import parse_answers, parse_answers_zh

    state = SimpleNamespace(choices=[None] * options, output=None)
    for parse in (parse_answers, parse_answers_zh):
        letters = parse(state, completion=response)
        if len(letters) == 1:
            return next(iter(letters))
    return None


def normalise(text: str) -> str:
    """Case, width, punctuation and spaces do not count."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] not in "PZSC")


def match_answer(response: str) -> str:
    """The final answer: what follows the last answer marker, else the response's last line."""
    markers = list(ANSWER_MARKER.finditer(response))
    tail = response[markers[-1].end() :] if markers else response
    lines = [line for line in tail.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] if markers else lines[-1]


class Verifier:
    name = ""

    def __init__(self, key: AnswerKey | None = None, format_penalty: float = FORMAT_PENALTY):
        self.key = key
        self.format_penalty = format_penalty

    def score_all(self, texts: list[str]) -> list[Scored]:
        return [self.score(text) for text in texts]

    def score(self, text: str) -> Scored:
        entry = self.key.find(text) if self.key else None
        if entry is None:
            return Scored(0.0, "unkeyed")
        _, response = split(text, entry.question)
        return self.judge(final_answer(response), entry)

    def judge(self, response: str, entry) -> Scored:
        raise NotImplementedError


class ChoiceVerifier(Verifier):
    name = "choice"

    def judge(self, response: str, entry) -> Scored:
        letter = read_letter(response, entry.options)
        if letter is None:
            return Scored(self.format_penalty, "unreadable", entry.id)
        right = letter == entry.answer
        return Scored(1.0 if right else 0.0, "right" if right else "wrong", entry.id)


class MatchVerifier(Verifier):
    name = "match"

    def __init__(self, key: AnswerKey, format_penalty: float = FORMAT_PENALTY, equivalence=None):
        super().__init__(key, format_penalty)
        self.equivalence = equivalence  # judging.Equivalence, asked when the match fails

    def judge(self, response: str, entry) -> Scored:
        answer = normalise(match_answer(response))
        if not answer:
            return Scored(self.format_penalty, "unreadable", entry.id)
        right = answer == normalise(entry.answer) or bool(
            self.equivalence and self.equivalence.same(response, entry.answer)
        )
        return Scored(1.0 if right else 0.0, "right" if right else "wrong", entry.id)


class RubricVerifier(Verifier):
    """`judge`: each answer graded on its rubric (the one for every prompt, or the
    HealthBench entry whose prompt appears in the text), the criteria judged at once."""

    name = "judge"

    def __init__(self, judge, rubrics, format_penalty: float = FORMAT_PENALTY):
        super().__init__(None, format_penalty)
        self.grader, self.rubrics = judge, rubrics

    def rubric_for(self, text: str) -> tuple[tuple, str | None, str]:
        """(rubric, the question located in the text, its prompt id); no rubric: ()."""
        if self.rubrics.default:
            return self.rubrics.default, None, ""
        squashed = " ".join(text.split())
        found = [e for e in self.rubrics.entries if " ".join(e["question"].split()) in squashed]
        if not found:
            return (), None, ""
        entry = max(found, key=lambda e: len(e["question"]))
        return entry["rubric"], entry["question"], str(entry.get("prompt_id") or entry["where"])

    def score_all(self, texts: list[str]) -> list[Scored]:
        from medfactory.evaluation.judge import Answer, item_score
        from medfactory.rewards.judging import scaled
        from medfactory.rewards.text import prompt_messages

        results: list[Scored | None] = [None] * len(texts)
        asked: list[tuple[int, str, Answer]] = []
        for i, text in enumerate(texts):
            rubric, question, prompt_id = self.rubric_for(text)
            if not rubric:
                results[i] = Scored(0.0, "unkeyed")
                continue
            response = final_answer(split(text, question)[1])
            if not response:
                results[i] = Scored(self.format_penalty, "unreadable", prompt_id)
                continue
            chat = tuple((m["role"], m["content"]) for m in prompt_messages(text, question))
            asked.append((i, prompt_id, Answer(prompt_id, chat, response, rubric)))
        grades = self.grader.grade_all([answer for _, _, answer in asked])
        for (i, prompt_id, answer), graded in zip(asked, grades, strict=True):
            score = item_score(answer.rubric, graded)
            results[i] = (
                Scored(0.0, "unjudged", prompt_id)
                if score is None
                else Scored(scaled(score["overall"]), "scored", prompt_id)
            )
        return results

    def score(self, text: str) -> Scored:
        return self.score_all([text])[0]


class ZeroVerifier(Verifier):
    """`safety` alone: only the penalty counts."""

    name = "safety"

    def score(self, text: str) -> Scored:
        return Scored(0.0, "scored")


class ModelVerifier(Verifier):
    name = "model"

    def __init__(self, model):
        super().__init__()
        self.model = model

    def score_all(self, texts: list[str]) -> list[Scored]:
        return [Scored(value, "scored") for value in self.model.score_answers(texts)]


class SafetyPenalty:
    """Wraps a verifier: subtracts `penalty` from the score of an answer the lint flags."""

    def __init__(self, inner: Verifier, penalty: float, rules: Path | None = None):
        from converters.safety import SafetyRules

        self.inner, self.penalty, self.name = inner, penalty, inner.name
        self.rules = SafetyRules.load(rules)

    def score_all(self, texts: list[str]) -> list[Scored]:
        scored = []
        for text, result in zip(texts, self.inner.score_all(texts), strict=True):
            entry = self.inner.key.find(text) if self.inner.key else None
            prompt, response = split(text, entry.question if entry else None)
            violations = self.rules.check([(prompt, final_answer(response))])
            if violations:
                ids = tuple(sorted({v.rule for v in violations}))
                result = Scored(result.score - self.penalty, result.outcome, result.prompt_id, ids)
            scored.append(result)
        return scored


def build_verifier(
    name: str,
    answers: Path | None = None,
    safety_penalty: float = 0.0,
    format_penalty: float = FORMAT_PENALTY,
    reward_model: Path | None = None,
    base: str | None = None,
    judge=None,
    template: str = "qwen",
):
    """The verifier `reward serve --verifier NAME` scores with; `judge` (a
    judging.JudgeSpec) for `judge`, and for `match` to ask when the exact match fails;
    `template`, the reward model's, for `model`."""
    if name not in VERIFIERS:
        raise RewardError(f"unknown verifier {name!r}; known: {', '.join(VERIFIERS)}")
    if name == "judge" and judge is None:
        raise RewardError("--verifier judge needs --judge-endpoint URL (and --rubric)")
    if judge is not None and name not in ("judge", "match"):
        raise RewardError(f"--judge-endpoint is for --verifier judge or match, not {name}")
    if name in ("choice", "match") and answers is None:
        raise RewardError(f"--verifier {name} needs --answers FILE (the answer key)")
    if name == "model" and reward_model is None:
        raise RewardError("--verifier model needs --reward-model DIR (a trained reward model)")
    if safety_penalty < 0:
        raise RewardError(f"--safety-penalty {safety_penalty}: give a penalty of 0 or more")
    if name == "choice":
        verifier = ChoiceVerifier(read_choice_key(Path(answers)), format_penalty)
    elif name == "match":
        key = read_match_key(Path(answers))
        if judge is None:
            verifier = MatchVerifier(key, format_penalty)
        else:
            from medfactory.rewards.judging import Equivalence

            verifier = MatchVerifier(key, format_penalty, Equivalence(judge.open()))
    elif name == "judge":
        from medfactory.evaluation.judge import Rubrics

        rubrics = Rubrics.load(judge.rubric)  # a bad rubric before the judge is reached
        verifier = RubricVerifier(judge.open(), rubrics, format_penalty)
    elif name == "model":
        from medfactory.rewards.model import RewardModel

        verifier = ModelVerifier(RewardModel(Path(reward_model), base, template))
    else:
        verifier = ZeroVerifier(format_penalty=format_penalty)
        safety_penalty = safety_penalty or 1.0
    return SafetyPenalty(verifier, safety_penalty) if safety_penalty else verifier
