"""Verifiers: a prompt+response text in, a reward out.

- `choice`: the letter read from the response (EvalScope's reader, the one `eval exam`
  scores with) against the key: +1 right, 0 wrong;
- `match`: the response's final answer, normalised, equal to the reference: +1, else 0;
- `model`: a trained reward model's score (medfactory/rewards/model.py);
- `safety`: 0, less the safety penalty when the safety lint flags the answer; with any
  other verifier, `safety_penalty` > 0 subtracts the same penalty from its score.

A response no answer can be read from scores `format_penalty` and is counted as
unreadable, never an error; a prompt the answer key does not cover scores 0 and is
counted as unkeyed, so that the log names it.
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

VERIFIERS = ("choice", "match", "model", "safety")
FORMAT_PENALTY = -1.0
# "答案：B", "Answer: 42", "final answer is ..."; the text after the last one is the answer
ANSWER_MARKER = re.compile(r"(?:final answer|answer|答案|最终答案)\s*(?:is|为|是)?\s*[:：]?\s*",
                           re.IGNORECASE)  # fmt: skip


@dataclass(frozen=True)
class Scored:
    score: float
    outcome: str  # right, wrong, unreadable, unkeyed or scored (model, safety)
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

    def judge(self, response: str, entry) -> Scored:
        answer = normalise(match_answer(response))
        if not answer:
            return Scored(self.format_penalty, "unreadable", entry.id)
        right = answer == normalise(entry.answer)
        return Scored(1.0 if right else 0.0, "right" if right else "wrong", entry.id)


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
        return [Scored(value, "scored") for value in self.model.score(texts)]


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
):
    """The verifier `reward serve --verifier NAME` scores with."""
    if name not in VERIFIERS:
        raise RewardError(f"unknown verifier {name!r}; known: {', '.join(VERIFIERS)}")
    if name in ("choice", "match") and answers is None:
        raise RewardError(f"--verifier {name} needs --answers FILE (the answer key)")
    if name == "model" and reward_model is None:
        raise RewardError("--verifier model needs --reward-model DIR (a trained reward model)")
    if safety_penalty < 0:
        raise RewardError(f"--safety-penalty {safety_penalty}: give a penalty of 0 or more")
    if name == "choice":
        verifier = ChoiceVerifier(read_choice_key(Path(answers)), format_penalty)
    elif name == "match":
        verifier = MatchVerifier(read_match_key(Path(answers)), format_penalty)
    elif name == "model":
        from medfactory.rewards.model import RewardModel

        verifier = ModelVerifier(RewardModel(Path(reward_model), base))
    else:
        verifier = ZeroVerifier(format_penalty=format_penalty)
        safety_penalty = safety_penalty or 1.0
    return SafetyPenalty(verifier, safety_penalty) if safety_penalty else verifier
