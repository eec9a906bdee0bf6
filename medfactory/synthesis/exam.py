"""Multiple-choice questions drafted from the team's own documents (`data synthesize
--kind exam`): parsed from the model's reply, checked, and written in the `eval exam`
file format, each with the passage it was drafted from.

A question is dropped with its reason when its stem is empty, it has not 4 or 5
distinct options, its key is not one of its options, it makes a banned claim, its
key's option is not supported lexically by the passage (too few of its bigrams and
words occur there), or its stem was asked before. Doctors then accept, edit or
reject the kept ones in a single-answer study, where the options and the key are
shown, and edited, as text (`options_text` and `read_options_text`).
"""

from __future__ import annotations

import re
from pathlib import Path

from converters.safety import SafetyRules
from medfactory.evaluation.exam import LETTERS
from medfactory.synthesis.checks import (
    CheckOptions,
    QuestionIndex,
    banned_claim,
    folded,
    grounding,
    sift,
)
from medfactory.synthesis.drafts import language, parse_json_array

OPTION_COUNTS = (4, 5)
KEY_LINE = {"zh": "答案", "en": "Answer"}
_OPTION = re.compile(r"^\s*([A-J])\s*[.．、:：)）]\s*(.*\S)\s*$")
_KEY = re.compile(r"^\s*(?:答案|正确答案|answer|key)\s*[:：]?\s*([A-J])\s*$", re.I)


def parse_questions(reply: str) -> list[dict] | None:
    """The reply's questions ({question, options, answer}), or None when it is not a JSON
    array of such objects. Options may be a list or an {"A": ...} object; whether the
    key is among them is a check, not a parse error, so that it is counted."""
    items = parse_json_array(reply)
    if items is None:
        return None
    questions = []
    for item in items:
        if not isinstance(item, dict):
            return None
        options = item.get("options")
        if isinstance(options, dict):
            options = [options[k] for k in sorted(options) if k.upper() in LETTERS]
        if not (
            isinstance(item.get("question"), str)
            and isinstance(item.get("answer"), str)
            and isinstance(options, list)
            and all(isinstance(option, str | int | float) for option in options)
        ):
            return None
        questions.append({
            "question": item["question"].strip(),
            "options": [str(option).strip() for option in options],
            "answer": item["answer"].strip().upper().rstrip(".．"),
        })  # fmt: skip
    return questions


def check_questions(
    drafts: list[dict],
    rules: SafetyRules,
    options: CheckOptions = CheckOptions(),  # noqa: B008 (frozen)
) -> tuple[list[dict], list[dict]]:
    """(kept questions in the `eval exam` format with their source, dropped ones each with
    `reason` and `detail`), in draft order."""

    def fault(draft: dict) -> tuple[str, str] | None:
        choices, key = draft["options"], draft["answer"]
        if not draft["question"]:
            return "empty", "no question"
        if len(choices) not in OPTION_COUNTS or not all(choices):
            return "options", f"{len(choices)} options, or an empty one; 4 or 5 are asked for"
        if len({folded(choice) for choice in choices}) < len(choices):
            return "repeated_option", "two options say the same"
        letters = LETTERS[: len(choices)]
        if len(key) != 1 or key not in letters:
            return "key_not_an_option", f"key {key!r} is not one of {', '.join(letters)}"
        right = choices[letters.index(key)]
        if claim := banned_claim(rules, draft["question"], right):
            return claim
        support = grounding(right, draft["chunk_text"])
        if support < options.min_grounding:
            return (
                "key_unsupported",
                f"the passage supports the key {key} ({right!r}) {support:.2f} < "
                f"{options.min_grounding}",
            )
        return None

    def as_exam_question(draft: dict) -> dict:
        key_text = draft["options"][LETTERS.index(draft["answer"])]
        return {
            "id": draft["id"], "subject": Path(draft["source"]["file"]).stem,
            "question": draft["question"], "options": draft["options"],
            "answer": draft["answer"], "source": draft["source"],
            "chunk_text": draft["chunk_text"],
            "grounding": round(grounding(key_text, draft["chunk_text"]), 3),
        }  # fmt: skip

    return sift(drafts, fault, QuestionIndex(options.near_duplicate), as_exam_question)


def is_exam_draft(draft: dict) -> bool:
    return isinstance(draft.get("options"), list)


def options_text(options: list[str], answer: str, stem: str) -> str:
    """The options and the key as the text a doctor reads and edits:
    "A. …" per line, then "答案：B" (or "Answer: B" for an English stem)."""
    lines = [f"{letter}. {option}" for letter, option in zip(LETTERS, options, strict=False)]
    return "\n".join([*lines, f"{KEY_LINE[language(stem)]}：{answer}"])


def read_options_text(text: str) -> tuple[list[str], str]:
    """(options, key) back from a doctor's edit of `options_text`; ValueError saying what
    is wrong when the edit cannot be read as options A, B, ... and a key line."""
    options, key = [], None
    for line in text.strip().splitlines():
        if not line.strip():
            continue
        if match := _KEY.match(line):
            key = match.group(1).upper()
        elif match := _OPTION.match(line):
            if match.group(1) != LETTERS[len(options)]:
                raise ValueError(f"option {match.group(1)} out of order (expected "
                                 f"{LETTERS[len(options)]})")  # fmt: skip
            options.append(match.group(2))
        elif options:  # an option's text that runs onto the next line
            options[-1] += " " + line.strip()
        else:
            raise ValueError(f"{line.strip()!r} is neither an option (A. ...) nor the key")
    if len(options) < 2:
        raise ValueError("fewer than 2 options (lines A. ..., B. ...)")
    if key is None or key not in LETTERS[: len(options)]:
        raise ValueError(f"no key line naming one of {', '.join(LETTERS[: len(options)])}")
    return options, key
