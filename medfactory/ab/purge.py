"""Retention: `ab purge` deletes what was said before a cut and keeps what was counted.

Messages, answers, a rag arm's passages and the feedback's correction and comment
texts go; arm, user, conversation id, thumbs, errors, tokens and latencies stay,
so `ab report` over the purged period gives the same figures. A correction or
comment that existed keeps a marker, since the report counts them.
"""

from __future__ import annotations

from sqlalchemy import select, update

from medfactory.ab.recorder import find_experiment
from medfactory.access.audit import record
from medfactory.store.db import ExchangeFeedback, ExchangeRow, Store

PURGED = "[purged]"


def purge_conversations(store: Store, experiment: str, before: float, actor: str) -> dict:
    """Clear the texts of the experiment's exchanges made before `before` (epoch seconds)."""
    experiment_id = find_experiment(store, experiment)
    old = select(ExchangeRow.id).where(
        ExchangeRow.experiment_id == experiment_id, ExchangeRow.created_at < before,
        ExchangeRow.answer != PURGED,
    )  # fmt: skip
    with store.session() as session:
        ids = list(session.scalars(old))
        feedback = 0
        for column in (ExchangeFeedback.correction, ExchangeFeedback.comment):
            feedback += session.execute(
                update(ExchangeFeedback)
                .where(ExchangeFeedback.exchange_id.in_(ids), column != "")
                .values({column: PURGED})
            ).rowcount
        session.execute(
            update(ExchangeRow).where(ExchangeRow.id.in_(ids))
            .values(messages=[], answer=PURGED, passages=None)
        )  # fmt: skip
    result = {"experiment": experiment, "before": before, "exchanges": len(ids),
              "feedback_texts": feedback}  # fmt: skip
    record(store, actor, "ab-purge", experiment, result)
    return result
