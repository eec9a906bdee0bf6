"""The one rule of a settled verdict: the arbiter has ruled, or every assigned rater has
rated and they agree (verdict and, for drafts, the same edit). The report, the status,
the exports, the calibration and the drafts report all read verdicts through here.

Every item stands in one of four places: settled; waiting (rated by fewer than its
assigned raters, not arbitrated); disputed (every rater rated, they differ, no
arbiter yet); not rated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from medfactory.review.rating import current_arbitrations, current_ratings, edited_alike
from medfactory.review.rating import status as rating_status
from medfactory.review.studies import find_study
from medfactory.store.db import Arbitration, Assignment, Item, Store

SETTLED, WAITING, DISPUTED, NOT_RATED = "settled", "waiting", "disputed", "not rated"
STANDINGS = (SETTLED, WAITING, DISPUTED, NOT_RATED)
# Why an item has no final verdict, as the exports count their skipped items.
WHY_NOT = {
    WAITING: "waiting for its other raters",
    DISPUTED: "raters disagree, not arbitrated",
    NOT_RATED: "not rated",
}


def standing(arbitrated: str | None, ratings: list, assigned: int) -> str:
    """Where an item stands: settled, waiting, disputed or not rated."""
    if arbitrated is not None:
        return SETTLED
    if not ratings:
        return NOT_RATED
    if len(ratings) < assigned:
        return WAITING
    if len({r.verdict for r in ratings}) > 1 or not edited_alike(ratings):
        return DISPUTED
    return SETTLED


def settled_verdict(arbitrated: str | None, ratings: list, assigned: int) -> str | None:
    """The item's settled verdict as stored (left, right, tie, both_bad; accept, edit,
    reject), or None while it is not settled."""
    if standing(arbitrated, ratings, assigned) != SETTLED:
        return None
    return arbitrated if arbitrated is not None else ratings[0].verdict


def final_verdict(arbitrated: str | None, ratings: list, assigned: int) -> str:
    """The item's settled verdict in words (both_bad reads "both unacceptable"), or why
    there is none yet."""
    verdict = settled_verdict(arbitrated, ratings, assigned)
    if verdict is None:
        return WHY_NOT[standing(arbitrated, ratings, assigned)]
    return {"tie": "tie", "both_bad": "both unacceptable"}.get(verdict, verdict)


@dataclass
class Reviewed:
    """What a study's items need for their final verdict, read in one session."""

    items: list[Item]  # in position order
    assigned: Counter  # item id -> raters assigned
    rated: dict[int, list]  # item id -> current ratings
    arbitrations: dict[int, Arbitration]  # item id -> the arbiter's current one
    rows: list  # every current rating with its rater and order (rating.current_ratings)

    @classmethod
    def of(cls, session, study, chats: bool = True) -> Reviewed:
        """Everything read at once; without `chats`, each item's position, versions and
        answers only (a report of 10,000 items needs no conversation)."""
        if chats:
            items = session.scalars(
                select(Item).where(Item.study_id == study.id).order_by(Item.position)
            ).all()
        else:  # rows with the same attribute names, lighter than whole items
            items = session.execute(
                select(Item.id, Item.position, Item.left_id, Item.right_id, Item.left_answer,
                       Item.right_answer)
                .where(Item.study_id == study.id).order_by(Item.position)
            ).all()  # fmt: skip
        assigned = Counter(
            session.scalars(select(Assignment.item_id).join(Item).where(Item.study_id == study.id))
        )
        rows = current_ratings(session, study.id)
        rated: dict[int, list] = {}
        for row in rows:
            rated.setdefault(row.item_id, []).append(row.Rating)
        return cls(items, assigned, rated, current_arbitrations(session, study.id), rows)

    def _arbitrated(self, item: Item) -> str | None:
        arbitration = self.arbitrations.get(item.id)
        return arbitration.verdict if arbitration else None

    def standing(self, item: Item) -> str:
        return standing(self._arbitrated(item), self.rated.get(item.id, []), self.assigned[item.id])

    def verdict(self, item: Item) -> str | None:
        """The settled verdict as stored, or None."""
        return settled_verdict(
            self._arbitrated(item), self.rated.get(item.id, []), self.assigned[item.id]
        )

    def final_verdict(self, item: Item) -> str:
        return final_verdict(
            self._arbitrated(item), self.rated.get(item.id, []), self.assigned[item.id]
        )

    def positions(self) -> dict[str, list[int]]:
        """standing -> the positions of the items that stand there."""
        placed = {s: [] for s in STANDINGS}
        for item in self.items:
            placed[self.standing(item)].append(item.position)
        return placed


def reviewed(store: Store, study_name: str) -> Reviewed:
    with store.session() as session:
        return Reviewed.of(session, find_study(session, study_name))


def settled_items(store: Store, study_name: str) -> list[dict]:
    """The items of a study whose final verdict is settled (arbitrated, or every rater
    agreeing), with their chat, both answers and the verdict (left, right, tie, both_bad)."""
    state = reviewed(store, study_name)
    return [
        {"position": item.position, "conversation": item.conversation,
         "left_answer": item.left_answer, "right_answer": item.right_answer,
         "verdict": verdict}
        for item in state.items
        if (verdict := state.verdict(item)) is not None
    ]  # fmt: skip


def listed(positions: list[int], shown: int = 20) -> str:
    """Item positions for a line of text: "items 3, 5, 8" (the first `shown`, then a count)."""
    text = "items " + ", ".join(str(p) for p in positions[:shown])
    return text + (f" and {len(positions) - shown} more" if len(positions) > shown else "")


def study_status(store: Store, name: str) -> dict:
    """Done per rater, open disagreements and arbitrated items, and where each item
    stands under the settled rule (the positions of those waiting for their raters)."""
    result = rating_status(store, name)
    placed = reviewed(store, name).positions()
    result["standing"] = {s: len(p) for s, p in placed.items()}
    result["waiting"] = placed[WAITING]
    return result
