"""Score a `generated_predictions.jsonl` and write `scores.json` beside it.

The file is LLaMA-Factory's prediction output (`prompt`/`predict`/`label` per
line), or the same shape written by `medfactory eval endpoint`. With
`think="keep"` the numbers are LLaMA-Factory's own (its `predict_results.json`);
with `think="strip"` a reasoning model is judged on its final answer: the
`<think>...</think>` part is removed from prediction and label alike, and its
length reported separately.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from medfactory.evaluation.metrics import mean_scores, score_pairs
from medfactory.evaluation.progress import Progress, no_progress
from medfactory.reporting import write_json

SCORES_FILE = "scores.json"
THINK_MODES = ("keep", "strip")
_THINK_OPEN = re.compile(r"^\s*<think>")


class PredictionsError(ValueError):
    """A predictions or scores file cannot be used; the message names file, line and fix."""


def split_think(text: str) -> tuple[str | None, str]:
    """(thought, answer). A thought cut off before `</think>` leaves an empty answer.

    Also handles templates that put `<think>` in the prompt, so the output
    starts inside the thought and only `</think>` appears.
    """
    if "</think>" in text:
        thought, answer = text.split("</think>", 1)
        return _THINK_OPEN.sub("", thought).strip(), answer.strip()
    if _THINK_OPEN.match(text):
        return _THINK_OPEN.sub("", text).strip(), ""
    return None, text


def read_predictions(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such predictions file; pass the generated_predictions.jsonl "
            "written by `medfactory predict` or `medfactory eval endpoint`"
        )
    rows = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise PredictionsError(f"{path}:{number}: not a JSON line ({error})") from None
            if not isinstance(row, dict) or not all(
                isinstance(row.get(key), str) for key in ("predict", "label")
            ):
                raise PredictionsError(
                    f"{path}:{number}: expected an object with string `predict` and `label` "
                    "(LLaMA-Factory's generated_predictions.jsonl format)"
                )
            rows.append(row)
    if not rows:
        raise PredictionsError(f"{path}: no predictions in the file")
    return rows


def score_predictions(
    path: Path,
    think: str = "keep",
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict:
    """Score every line; write and return the `scores.json` content."""
    rows = read_predictions(path)
    pairs, thoughts = [], []
    for row in rows:
        predict, label = row["predict"], row["label"]
        if think == "strip":
            thought, predict = split_think(predict)
            label = split_think(label)[1]
            thoughts.append(thought)
        pairs.append((predict, label))
    per_sample = score_pairs(pairs, workers=workers, on_progress=on_progress)
    scores = {
        "predictions": str(path),
        "samples": len(rows),
        "think": think,
        **mean_scores(per_sample),
        # Comparisons pair samples by position; this proves both files hold the same labels.
        "labels_sha256": _digest(row["label"] for row in rows),
    }
    if think == "strip":
        finished = [len(t) for t in thoughts if t is not None]
        scores["thought"] = {
            "with_thought": len(finished),
            "mean_chars": sum(finished) / len(finished) if finished else 0.0,
            "unfinished": sum(
                1 for t, (p, _) in zip(thoughts, pairs, strict=True) if t is not None and not p
            ),
        }
    scores["per_sample"] = per_sample
    write_json(Path(path).parent / SCORES_FILE, scores)
    return scores


def score_file(
    path: Path, think: str = "keep", workers: int | None = None, progress: Progress = no_progress
) -> dict:
    """`eval predictions`: `score_predictions` with a progress bar over the samples."""
    total = len(read_predictions(path))
    with progress("scoring", total) as advance:
        return score_predictions(path, think=think, workers=workers, on_progress=advance)


def read_scores(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such scores file; write one with `medfactory eval`")
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictionsError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(scores, dict) or not isinstance(scores.get("per_sample"), list):
        raise PredictionsError(
            f"{path}: not a scores.json from `medfactory eval` (no per_sample list)"
        )
    return scores


def _digest(labels) -> str:
    digest = hashlib.sha256()
    for label in labels:
        digest.update(label.encode("utf-8") + b"\0")
    return digest.hexdigest()


_CHATML = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>", re.S)


def conversation_of(row: dict) -> list[dict]:
    """The chat a prediction answers: `messages` when the file has them (eval endpoint),
    a ChatML prompt split into turns (LLaMA-Factory's predict), else the prompt as is."""
    if isinstance(row.get("messages"), list):
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    prompt = str(row.get("prompt", ""))
    turns = [{"role": role, "content": text.strip()} for role, text in _CHATML.findall(prompt)]
    return [t for t in turns if t["role"] != "assistant" or t["content"]] or [
        {"role": "user", "content": prompt}
    ]
