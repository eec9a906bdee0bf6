"""How well a judge model, or a reward model, agrees with the clinicians: it scores both
answers of each item a review study settled, prefers the higher score, and Cohen's kappa
(scikit-learn) measures its agreement with the clinicians' final verdicts. That figure
says whether the judge may stand in for doctors on this kind of question, and whether a
reward model learned what they prefer.
"""

from __future__ import annotations

import numpy as np

from medfactory.evaluation.errors import JudgeError
from medfactory.evaluation.judge import Answer, Judge, Rubrics, item_score, last_user
from medfactory.evaluation.scoring import split_think
from medfactory.review.settled import settled_items
from medfactory.review.studies import find_study

LABELS = ("left", "right", "tie")


def preference(left: float | None, right: float | None) -> str | None:
    if left is None or right is None:
        return None
    return "left" if left > right else "right" if right > left else "tie"


def calibration(pairs: list[dict]) -> dict:
    """Cohen's kappa between the scorer's preference (`judge`: the judge's, or the reward
    model's) and the clinicians' final verdicts (both unacceptable counts as no
    preference: a tie)."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    usable = [p for p in pairs if p["judge"] is not None]
    clinicians = [p["clinicians"] for p in usable]
    judge = [p["judge"] for p in usable]
    result = {
        "items": len(pairs),
        "compared": len(usable),
        "unscored": len(pairs) - len(usable),
        "labels": list(LABELS),
        "agreement": float(np.mean([a == b for a, b in zip(clinicians, judge, strict=True)]))
        if usable
        else float("nan"),
        "kappa": None,
        "confusion": None,
        "pairs": pairs,
    }
    if usable:
        kappa = cohen_kappa_score(clinicians, judge, labels=list(LABELS))
        result["kappa"] = None if np.isnan(kappa) else float(kappa)
        result["confusion"] = confusion_matrix(clinicians, judge, labels=list(LABELS)).tolist()
    return result


def settled_pairs(store, study: str, what: str) -> list[dict]:
    """The settled items of an A/B study; one message when it has none to calibrate
    `what` against."""
    with store.session() as session:
        if find_study(session, study).kind == "single":
            raise JudgeError(
                f"study {study!r} reviews drafts (accept, edit, reject): it has no preference "
                f"between two answers to calibrate {what} against; give an A/B study"
            )
    items = settled_items(store, study)
    if not items:
        raise JudgeError(
            f"study {study!r} has no settled verdicts yet (arbitrated, or both raters agreeing); "
            "calibrate once the clinicians have rated"
        )
    return items


def verdict(item: dict) -> str:
    return "tie" if item["verdict"] == "both_bad" else item["verdict"]


def calibrate(judge: Judge, rubrics: Rubrics, store, study: str, on_progress=None) -> dict:
    """Grade both answers of each settled item of a review study, and compare the
    judge's preference with the clinicians' verdict."""
    items = settled_pairs(store, study, "a judge")
    answers = []
    for item in items:
        conversation = tuple((m["role"], m["content"]) for m in item["conversation"])
        rubric = rubrics.for_question(last_user(item["conversation"]))
        if rubric is None:
            raise JudgeError(
                f"{rubrics.source} has no rubric for item {item['position']} of study {study!r} "
                f"({last_user(item['conversation'])[:40]!r}); rubric the same prompts"
            )
        for side in ("left", "right"):
            answer = split_think(item[f"{side}_answer"])[1]
            where = f"study {study} item {item['position']} ({side})"
            answers.append(Answer(where, conversation, answer, rubric))
    grades = judge.grade_all(answers, on_progress)
    scores = [item_score(a.rubric, g) for a, g in zip(answers, grades, strict=True)]
    pairs = []
    for number, item in enumerate(items):
        left, right = scores[2 * number], scores[2 * number + 1]
        left_score = left["overall"] if left else None
        right_score = right["overall"] if right else None
        pairs.append({
            "position": item["position"],
            "clinicians": verdict(item), "judge": preference(left_score, right_score),
            "left_score": left_score, "right_score": right_score,
        })  # fmt: skip
    return {"study": study, **calibration(pairs)}


def calibrate_reward_model(model, store, study: str) -> dict:
    """Score both answers of each item of a review study the clinicians settled for one
    side with a reward model (rewards.model.RewardModel), each as the finished turn it
    was trained on, and compare its preference with theirs. Items settled as a tie or
    both unacceptable are counted apart: a reward model's scores are never equal, and
    the DPO exports it trains on leave those items out too."""
    settled = settled_pairs(store, study, "a reward model")
    items = [item for item in settled if item["verdict"] in LABELS[:2]]
    sequences = []
    for item in items:
        system = "\n".join(m["content"] for m in item["conversation"] if m["role"] == "system")
        prompt = [m for m in item["conversation"] if m["role"] != "system"]
        sequences += [model.encode_turn(prompt, system, item[f"{side}_answer"])
                      for side in LABELS[:2]]  # fmt: skip
    scores = model.score_ids(sequences)
    pairs = [
        {"position": item["position"], "clinicians": item["verdict"],
         "judge": preference(scores[2 * n], scores[2 * n + 1]),
         "left_score": scores[2 * n], "right_score": scores[2 * n + 1]}
        for n, item in enumerate(items)
    ]  # fmt: skip
    return {"study": study, **calibration(pairs), "without_a_side": len(settled) - len(items)}
