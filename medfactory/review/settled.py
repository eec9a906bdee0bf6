"""The one rule of a settled verdict: the arbiter has ruled, or every assigned rater has
rated and they agree (verdict and, for drafts, the same edit). The report, the status,
the exports, the calibration and the drafts report all read verdicts through here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from medfactory.review.rating import current_arbitrations, current_ratings, edited_alike
from medfactory.review.studies import find_study
from medfactory.store.db import Arbitration, Assignment, Item, Store


def settled_items(store: Store, study_name: str) -> list[dict]:
    """The items of a study whose final verdict is settled (arbitrated, or every rater
    agreeing), with their chat, both answers and the verdict (left, right, tie, both_bad)."""
    with store.session() as session:
        state = Reviewed.of(session, find_study(session, study_name))
    shown = {"tie": "tie", "both unacceptable": "both_bad", "left": "left", "right": "right"}
    return [
        {"position": item.position, "conversation": item.conversation,
         "left_answer": item.left_answer, "right_answer": item.right_answer,
         "verdict": shown[verdict]}
        for item in state.items
        if (verdict := state.final_verdict(item)) in shown
    ]  # fmt: skip


@dataclass
class Reviewed:
    """What a study's items need for their final verdict, read in one session."""

    items: list[Item]  # in position order
    assigned: Counter  # item id -> raters assigned
    rated: dict[int, list]  # item id -> current ratings
    arbitrations: dict[int, Arbitration]  # item id -> the arbiter's current one

    @classmethod
    def of(cls, session, study) -> Reviewed:
        items = session.scalars(
            select(Item).where(Item.study_id == study.id).order_by(Item.position)
        ).all()
        assigned = Counter(
            session.scalars(select(Assignment.item_id).join(Item).where(Item.study_id == study.id))
        )
        rated: dict[int, list] = {}
        for row in current_ratings(session, study.id):
            rated.setdefault(row.item_id, []).append(row.Rating)
        return cls(items, assigned, rated, current_arbitrations(session, study.id))

    def final_verdict(self, item: Item) -> str:
        arbitration = self.arbitrations.get(item.id)
        return final_verdict(
            arbitration.verdict if arbitration else None,
            self.rated.get(item.id, []),
            self.assigned[item.id],
        )


def final_verdict(arbitrated: str | None, ratings: list, assigned: int) -> str:
    """The item's settled verdict, or why there is none yet."""
    verdict = arbitrated
    if verdict is None:
        if not ratings:
            return "not rated"
        if len(ratings) < assigned:
            return "waiting for its other raters"
        if len({r.verdict for r in ratings}) > 1 or not edited_alike(ratings):
            return "raters disagree, not arbitrated"
        verdict = ratings[0].verdict
    return {"tie": "tie", "both_bad": "both unacceptable"}.get(verdict, verdict)
