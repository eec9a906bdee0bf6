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


def check_drafts(
    drafts: list[dict], rules: SafetyRules, options: CheckOptions = CheckOptions()
) -> tuple[list[dict], list[dict]]:
    """(kept drafts, dropped drafts each with `reason` and `detail`), in draft order."""
    from datasketch import MinHashLSH

    kept, dropped = [], []
    seen: dict[str, str] = {}  # folded question -> the id that asked it first
    index = MinHashLSH(threshold=options.near_duplicate, num_perm=PERMUTATIONS)
    signatures = {}

    def drop(draft: dict, reason: str, detail: str) -> None:
        dropped.append({**draft, "reason": reason, "detail": detail})

    for draft in drafts:
        question, answer = draft["question"], draft["answer"]
        if not question or not answer:
            drop(draft, "empty", "no question" if not question else "no answer")
            continue
        if len(answer) < options.min_answer_chars:
            drop(draft, "too_short", f"{len(answer)} characters < {options.min_answer_chars}")
            continue
        claims = [v for v in rules.check([(question, answer)]) if v.kind == "banned_claim"]
        if claims:
            drop(draft, f"banned_claim:{claims[0].rule}", f"{claims[0].matched!r}")
            continue
        score = grounding(answer, draft["chunk_text"])
        if score < options.min_grounding:
            drop(draft, "ungrounded", f"grounding {score:.2f} < {options.min_grounding}")
            continue
        key = folded(question)
        if key in seen:
            drop(draft, "duplicate", f"the question of {seen[key]}")
            continue
        signature = _minhash(key)
        similar = [
            other for other in index.query(signature)
            if signature.jaccard(signatures[other]) >= options.near_duplicate
        ]  # fmt: skip
        if similar:
            drop(draft, "near_duplicate", f"like the question of {similar[0]}")
            continue
        seen[key] = draft["id"]
        index.insert(draft["id"], signature)
        signatures[draft["id"]] = signature
        kept.append({**draft, "grounding": round(score, 3)})
    return kept, dropped
