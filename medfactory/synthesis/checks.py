"""Quality checks on model-written drafts, before any doctor sees one.

In order, the first that fails drops the draft with its reason: an answer that
is empty or too short; a banned claim of the safety rules; an answer not
grounded in its chunk (too few of its character bigrams and words occur
there); a question asked before, exactly (after folding case, spaces and
punctuation) or nearly (MinHash over character 3-grams, datasketch's LSH).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from converters.safety import SafetyRules

_WORD = re.compile(r"[a-z]{2,}|\d+(?:\.\d+)?")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_NOT_LETTER = re.compile(r"[\W_]+")
SHINGLE = 3
PERMUTATIONS = 128


@dataclass(frozen=True)
class CheckOptions:
    min_answer_chars: int = 10
    min_grounding: float = 0.5
    near_duplicate: float = 0.8  # Jaccard similarity of the questions' 3-grams


def _units(text: str) -> set[str]:
    """Chinese character bigrams (single characters of one-character runs), and Latin
    words and numbers, lower-cased."""
    text = unicodedata.normalize("NFKC", text).lower()
    units = set(_WORD.findall(text))
    for run in _CJK_RUN.findall(text):
        units.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return units


def grounding(answer: str, chunk: str) -> float:
    """The share of the answer's bigrams and words that its chunk contains."""
    units = _units(answer)
    return len(units & _units(chunk)) / len(units) if units else 0.0


def folded(text: str) -> str:
    return _NOT_LETTER.sub("", unicodedata.normalize("NFKC", text).lower())


def _minhash(text: str):
    from datasketch import MinHash

    shingles = {text[i : i + SHINGLE] for i in range(max(1, len(text) - SHINGLE + 1))}
    signature = MinHash(num_perm=PERMUTATIONS, seed=1)
    signature.update_batch([s.encode() for s in shingles])
    return signature


class QuestionIndex:
    """The questions kept so far, to find a new one asked before: exactly (after folding
    case, spaces and punctuation) or nearly (MinHash LSH over character 3-grams)."""

    def __init__(self, near_duplicate: float = 0.8):
        from datasketch import MinHashLSH

        self.near_duplicate = near_duplicate
        self.seen: dict[str, str] = {}  # folded question -> the id that asked it first
        self.index = MinHashLSH(threshold=near_duplicate, num_perm=PERMUTATIONS)
        self.signatures: dict[str, object] = {}

    def repeat_of(self, draft: dict) -> tuple[str, str] | None:
        """(reason, detail) when the draft's question was asked before, else None."""
        key = folded(draft["question"])
        if key in self.seen:
            return "duplicate", f"the question of {self.seen[key]}"
        signature = _minhash(key)
        similar = [
            other for other in self.index.query(signature)
            if signature.jaccard(self.signatures[other]) >= self.near_duplicate
        ]  # fmt: skip
        if similar:
            return "near_duplicate", f"like the question of {similar[0]}"
        return None

    def add(self, draft: dict) -> None:
        key = folded(draft["question"])
        self.seen[key] = draft["id"]
        self.signatures[draft["id"]] = signature = _minhash(key)
        self.index.insert(draft["id"], signature)


def banned_claim(rules: SafetyRules, question: str, answer: str) -> tuple[str, str] | None:
    """(reason, detail) for the first banned claim of the safety rules, else None."""
    claims = [v for v in rules.check([(question, answer)]) if v.kind == "banned_claim"]
    return (f"banned_claim:{claims[0].rule}", f"{claims[0].matched!r}") if claims else None


def check_drafts(
    drafts: list[dict], rules: SafetyRules, options: CheckOptions = CheckOptions()
) -> tuple[list[dict], list[dict]]:
    """(kept drafts, dropped drafts each with `reason` and `detail`), in draft order."""

    def fault(draft: dict) -> tuple[str, str] | None:
        question, answer = draft["question"], draft["answer"]
        if not question or not answer:
            return "empty", "no question" if not question else "no answer"
        if len(answer) < options.min_answer_chars:
            return "too_short", f"{len(answer)} characters < {options.min_answer_chars}"
        if claim := banned_claim(rules, question, answer):
            return claim
        score = grounding(answer, draft["chunk_text"])
        if score < options.min_grounding:
            return "ungrounded", f"grounding {score:.2f} < {options.min_grounding}"
        return None

    def graded(draft: dict) -> dict:
        return {**draft, "grounding": round(grounding(draft["answer"], draft["chunk_text"]), 3)}

    return sift(drafts, fault, QuestionIndex(options.near_duplicate), graded)


def sift(
    drafts: list[dict],
    fault: Callable[[dict], tuple[str, str] | None],
    asked: QuestionIndex,
    kept_as: Callable[[dict], dict],
) -> tuple[list[dict], list[dict]]:
    """(kept drafts, as `kept_as` writes them; dropped drafts with the `reason` and
    `detail` of their first fault, or of asking a question kept before), in draft order."""
    kept, dropped = [], []
    for draft in drafts:
        if reason := fault(draft) or asked.repeat_of(draft):
            dropped.append({**draft, "reason": reason[0], "detail": reason[1]})
        else:
            asked.add(draft)
            kept.append(kept_as(draft))
    return kept, dropped
