"""Rating: a rater's queue, what they see, what they submit; disagreements and arbitration.

In an A/B study a rater sees "Answer 1" and "Answer 2" in the order drawn for
them, never a model name, never another rater's verdict. What they submit is
stored relative to the item's pair (left/right), so orders never mix up in the
report. In a single-answer study (a model's drafts) each answer is accepted,
edited (the corrected answer is the edit) or rejected. Each submission is one
transaction; resending it (same submit key) changes nothing, and a revision
keeps the earlier rating in the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from medfactory.access.audit import record
from medfactory.review.errors import NotYours, RatingError
from medfactory.review.studies import find_study, token_hash
from medfactory.store.db import (
    SINGLE_VERDICTS,
    Arbitration,
    Assignment,
    Item,
    Rater,
    Rating,
    Store,
    Study,
)

SHOWN_VERDICTS = ("1", "2", "tie", "both_bad")
SCORES = range(1, 6)
# Two raters disagree when their verdicts differ, or a score of one answer differs this much.
SCORE_GAP = 2


@dataclass
class Submission:
    verdict: str  # as shown: 1, 2, tie, both_bad
    scores: dict[str, tuple[int, int]]  # axis -> (answer 1, answer 2), as shown
    correction: str = ""
    comment: str = ""
    seconds: float | None = None


@dataclass
class ItemView:
    position: int
    total: int
    done: int
    conversation: list[dict]
    answers: tuple[str, ...]  # Answer 1, Answer 2; a single-answer study: the answer
    axes: list[str]
    kind: str = "pair"
    source: dict | None = None  # a draft's origin: file, chunk, range, the chunk's text
    previous: dict | None = None  # this rater's current rating, as shown
    ratings: list[dict] = field(default_factory=list)  # arbiter: both ratings, as shown


def rater_by_token(session, token: str) -> Rater | None:
    return session.scalar(select(Rater).where(Rater.token_hash == token_hash(token)))


def verdicts_of(study: Study) -> tuple[str, ...]:
    """The verdicts a rater may give, as shown."""
    return SINGLE_VERDICTS if study.kind == "single" else SHOWN_VERDICTS


def to_stored(verdict: str, left_first: bool) -> str:
    if verdict not in ("1", "2"):  # tie, both_bad, and a single answer's verdicts
        return verdict
    first_is_left = verdict == "1"
    return "left" if first_is_left == left_first else "right"


def to_shown(verdict: str, left_first: bool) -> str:
    if verdict not in ("left", "right"):
        return verdict
    return "1" if (verdict == "left") == left_first else "2"


def _ordered(pair, left_first: bool):
    return (pair[0], pair[1]) if left_first else (pair[1], pair[0])


def check_submission(submission: Submission, axes: list[str], kind: str = "pair") -> None:
    verdicts = SINGLE_VERDICTS if kind == "single" else SHOWN_VERDICTS
    if submission.verdict not in verdicts:
        raise RatingError(f"verdict {submission.verdict!r}: one of {', '.join(verdicts)}")
    if submission.verdict == "edit" and not submission.correction.strip():
        raise RatingError("edit: write the corrected answer in `correction`")
    for axis in axes:
        for answer, score in zip((1, 2), submission.scores.get(axis, (None, None)), strict=True):
            if score not in SCORES:
                raise RatingError(f"{axis}_{answer} {score!r}: a score from 1 to 5")


def queue(session, rater: Rater) -> list[tuple[Item, Assignment, Rating | None]]:
    rows = session.execute(
        select(Item, Assignment)
        .join(Assignment, Assignment.item_id == Item.id)
        .where(Assignment.rater_id == rater.id)
        .order_by(Item.position)
    ).all()
    current = {
        r.assignment_id: r
        for r in session.scalars(
            select(Rating).where(
                Rating.assignment_id.in_([a.id for _, a in rows]), Rating.current.is_(True)
            )
        )
    }
    return [(item, assignment, current.get(assignment.id)) for item, assignment in rows]


def _is_rated():
    """An assignment with a current rating (a correlated EXISTS)."""
    return (
        select(Rating.id)
        .where(Rating.assignment_id == Assignment.id, Rating.current.is_(True))
        .exists()
    )


def next_position(session, rater: Rater) -> int | None:
    if rater.role == "arbiter":
        open_items = disagreements(session, rater.study_id)
        return open_items[0] if open_items else None
    return session.scalar(
        select(Item.position)
        .join(Assignment, Assignment.item_id == Item.id)
        .where(Assignment.rater_id == rater.id, ~_is_rated())
        .order_by(Item.position)
        .limit(1)
    )


def progress(session, rater: Rater) -> tuple[int, int]:
    """(rated, assigned) of a rater's queue."""
    mine = select(Assignment).where(Assignment.rater_id == rater.id)
    total = session.scalar(select(func.count()).select_from(mine.subquery()))
    done = session.scalar(select(func.count()).select_from(mine.where(_is_rated()).subquery()))
    return done, total


def neighbours(session, rater: Rater, position: int, around: int = 12) -> list[tuple[int, bool]]:
    """(position, rated) of the queue's items nearest `position`, for moving and revising."""
    rated = _is_rated().label("rated")
    base = (
        select(Item.position, rated)
        .join(Assignment, Assignment.item_id == Item.id)
        .where(Assignment.rater_id == rater.id)
    )
    before = session.execute(
        base.where(Item.position < position).order_by(Item.position.desc()).limit(around)
    ).all()
    after = session.execute(
        base.where(Item.position >= position).order_by(Item.position).limit(around + 1)
    ).all()
    return [(p, bool(r)) for p, r in [*reversed(before), *after]]


def rater_view(session, rater: Rater, position: int) -> ItemView:
    study = session.get(Study, rater.study_id)
    found = session.execute(
        select(Item, Assignment)
        .join(Assignment, Assignment.item_id == Item.id)
        .where(
            Assignment.rater_id == rater.id, Item.position == position, Item.study_id == study.id
        )
    ).first()
    if found is None:
        raise NotYours(f"item {position} is not in {rater.name}'s queue")
    item, assignment = found
    rating = session.scalar(
        select(Rating).where(Rating.assignment_id == assignment.id, Rating.current.is_(True))
    )
    answers = _answers(item, study, assignment.left_first)
    previous = _shown_rating(rating, assignment.left_first) if rating is not None else None
    done, total = progress(session, rater)
    return ItemView(
        position, total, done, item.conversation, answers, study.axes, study.kind, item.source,
        previous,
    )  # fmt: skip


def _answers(item: Item, study: Study, left_first: bool) -> tuple[str, ...]:
    if study.kind == "single":
        return (item.left_answer,)
    return _ordered((item.left_answer, item.right_answer), left_first)


def _shown_rating(rating: Rating, left_first: bool) -> dict:
    return {
        "verdict": to_shown(rating.verdict, left_first),
        "scores": {a: _ordered(s, left_first) for a, s in rating.scores.items()},
        "correction": rating.correction,
        "comment": rating.comment,
    }


def submit(
    store: Store,
    rater_id: int,
    position: int,
    submission: Submission,
    submit_key: str | None,
    source: str = "page",
) -> None:
    """Store one rating in one transaction; a resent submit key is a no-op."""
    try:
        with store.session() as session:
            if _already_stored(session, Rating, submit_key):
                return
            rater = session.get(Rater, rater_id)
            study = session.get(Study, rater.study_id)
            assignment = session.scalar(
                select(Assignment)
                .join(Item, Item.id == Assignment.item_id)
                .where(Assignment.rater_id == rater.id, Item.position == position)
                .with_for_update()  # PostgreSQL: one submission per assignment at a time
            )
            if assignment is None:
                raise NotYours(f"item {position} is not in {rater.name}'s queue")
            check_submission(submission, study.axes, study.kind)
            first = assignment.left_first
            rating = Rating(
                assignment_id=assignment.id,
                verdict=to_stored(submission.verdict, first),
                scores={a: list(_ordered(submission.scores[a], first)) for a in study.axes},
                # a draft's answer box is sent with every verdict: only an edit keeps it
                correction=(
                    submission.correction.strip()
                    if study.kind == "pair" or submission.verdict == "edit"
                    else ""
                ),
                comment=submission.comment.strip(),
                seconds=submission.seconds,
                source=source,
                submit_key=submit_key,
            )
            earlier = session.scalars(
                select(Rating).where(
                    Rating.assignment_id == assignment.id, Rating.current.is_(True)
                )
            ).all()
            if any(_same(rating, e) for e in earlier):
                return  # nothing changed: no new revision
            for e in earlier:
                e.current = False
            session.add(rating)
    except IntegrityError:  # the same key arrived twice at once: the other one was stored
        return


def _same(a: Rating, b: Rating) -> bool:
    fields = ("verdict", "scores", "correction", "comment")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def current_ratings(session, study_id: int) -> list:
    """Every current rating of a study with what the statistics need, answers left out:
    rows of (item_id, position, left_id, right_id, rater, left_first, rating)."""
    return session.execute(
        select(
            Item.id.label("item_id"), Item.position, Item.left_id, Item.right_id,
            Rater.name.label("rater"), Assignment.left_first, Rating,
        )
        .join(Assignment, Assignment.item_id == Item.id)
        .join(Rater, Rater.id == Assignment.rater_id)
        .join(Rating, Rating.assignment_id == Assignment.id)
        .where(Item.study_id == study_id, Rating.current.is_(True))
        .order_by(Item.position, Rater.name)
    ).all()  # fmt: skip


def current_arbitrations(session, study_id: int) -> dict[int, Arbitration]:
    """item id -> the arbiter's current arbitration, for the items of a study it settled."""
    settled = session.scalars(
        select(Arbitration)
        .join(Item, Item.id == Arbitration.item_id)
        .where(Item.study_id == study_id, Arbitration.current.is_(True))
    )
    return {arbitration.item_id: arbitration for arbitration in settled}


def arbitrated_verdicts(session, study_id: int) -> dict[int, str]:
    """item id -> the arbiter's current verdict, for the items of a study an arbiter settled."""
    return {i: a.verdict for i, a in current_arbitrations(session, study_id).items()}


def edited_alike(ratings: list[Rating]) -> bool:
    """Whether every edit among `ratings` says the same, spacing aside."""
    return len({" ".join(r.correction.split()) for r in ratings if r.verdict == "edit"}) <= 1


def disagree(ratings: list[Rating]) -> bool:
    if len({r.verdict for r in ratings}) > 1:
        return True
    if not edited_alike(ratings):
        return True  # both edited a draft, differently: the arbiter writes the answer
    for axis in ratings[0].scores:
        for side in (0, 1):
            values = [r.scores[axis][side] for r in ratings]
            if max(values) - min(values) >= SCORE_GAP:
                return True
    return False


def disagreements(session, study_id: int) -> list[int]:
    """Positions of the items rated by two or more whose ratings disagree, not arbitrated."""
    by_item: dict[int, list] = {}
    positions = {}
    for row in current_ratings(session, study_id):
        by_item.setdefault(row.item_id, []).append(row.Rating)
        positions[row.item_id] = row.position
    settled = set(
        session.scalars(
            select(Arbitration.item_id)
            .join(Item, Item.id == Arbitration.item_id)
            .where(Arbitration.current.is_(True), Item.study_id == study_id)
        )
    )
    return [
        positions[i]
        for i, ratings in by_item.items()
        if len(ratings) >= 2 and i not in settled and disagree(ratings)
    ]


def _arbiter_order(item: Item, study: Study) -> bool:
    """The arbiter's "Answer 1": fixed per item, and as blind as the raters' own orders."""
    return (item.id + study.seed) % 2 == 0


def _item_to_settle(session, arbiter: Rater, study: Study, position: int) -> Item:
    item = session.scalar(select(Item).where(Item.study_id == study.id, Item.position == position))
    if item is None or arbiter.role != "arbiter":
        raise NotYours(f"item {position} is not for {arbiter.name} to arbitrate")
    return item


def _already_stored(session, model, submit_key: str | None) -> bool:
    """A form sent before under the same key (Rating or Arbitration)."""
    return (
        bool(submit_key)
        and session.scalar(select(model.id).where(model.submit_key == submit_key)) is not None
    )


def arbiter_view(session, arbiter: Rater, position: int) -> ItemView:
    study = session.get(Study, arbiter.study_id)
    item = _item_to_settle(session, arbiter, study, position)
    left_first = _arbiter_order(item, study)
    rated = session.scalars(
        select(Rating)
        .join(Assignment, Assignment.id == Rating.assignment_id)
        .join(Rater, Rater.id == Assignment.rater_id)
        .where(Assignment.item_id == item.id, Rating.current.is_(True))
        .order_by(Rater.name)
    )
    ratings = [  # the raters' names stay hidden too
        {"rater": f"Rater {n}", **_shown_rating(rating, left_first)}
        for n, rating in enumerate(rated, 1)
    ]
    answers = _answers(item, study, left_first)
    open_items = disagreements(session, study.id)
    return ItemView(
        position, len(open_items), 0, item.conversation, answers, study.axes, study.kind,
        item.source, ratings=ratings,
    )  # fmt: skip


def arbitrate(
    store: Store, arbiter_id: int, position: int, verdict: str, comment: str,
    submit_key: str | None, correction: str = "",
) -> None:  # fmt: skip
    """The arbiter's verdict; in a single-answer study "edit" carries the final answer."""
    try:
        with store.session() as session:
            if _already_stored(session, Arbitration, submit_key):
                return
            arbiter = session.get(Rater, arbiter_id)
            study = session.get(Study, arbiter.study_id)
            check_submission(Submission(verdict, {}, correction), [], study.kind)
            item = _item_to_settle(session, arbiter, study, position)
            for earlier in session.scalars(
                select(Arbitration).where(
                    Arbitration.item_id == item.id, Arbitration.current.is_(True)
                )
            ):
                earlier.current = False
            left_first = _arbiter_order(item, study)
            session.add(
                Arbitration(
                    item_id=item.id,
                    rater_id=arbiter.id,
                    verdict=to_stored(verdict, left_first),
                    correction=correction.strip() if verdict == "edit" else "",
                    comment=comment.strip(),
                    submit_key=submit_key,
                )
            )
            who, what = arbiter.name, f"{study.name} item {position}"
    except IntegrityError:
        return
    record(store, who, "arbitration", what, {"verdict": verdict})


def status(store: Store, name: str) -> dict:
    with store.session() as session:
        study = find_study(session, name)
        people = {}
        for rater in session.scalars(
            select(Rater).where(Rater.study_id == study.id).order_by(Rater.name)
        ):
            if rater.role == "rater":
                done, total = progress(session, rater)
                people[rater.name] = {"done": done, "assigned": total}
        arbitrated = session.scalars(
            select(Arbitration.item_id)
            .join(Item)
            .where(Item.study_id == study.id, Arbitration.current.is_(True))
        ).all()
        return {
            "study": study.name,
            "raters": people,
            "open_disagreements": len(disagreements(session, study.id)),
            "arbitrated": len(set(arbitrated)),
        }
