"""The live A/B record: the gateway's exchanges and the feedback on them, in the store.

`StoreRecorder` is what the gateway (deploy/gateway.py) writes through; the
rest reads the record back for the report and the exports.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from sqlalchemy import delete, select, update

from deploy.gateway import Arm, Exchange, Feedback
from medfactory.store.db import ArmUser, ExchangeFeedback, ExchangeRow, Experiment, Store
from medfactory.store.errors import StoreError

RECORDED = (
    "user", "arm", "served_model", "completion_id", "conversation", "messages", "answer",
    "finish_reason", "prompt_tokens", "completion_tokens", "ttft", "latency", "stream", "error",
    "replica", "passages", "model_version",
)  # fmt: skip


class StoreRecorder:
    """The gateway's Recorder on the store, for one experiment."""

    def __init__(self, store: Store, experiment: str, arms: list[Arm]):
        self.store = store
        with store.session() as session:
            found = session.scalar(select(Experiment).where(Experiment.name == experiment))
            if found is None:
                found = Experiment(name=experiment, arms=[])
                session.add(found)
            found.arms = [asdict(arm) for arm in arms]  # as last started
            session.flush()
            self.experiment_id = found.id

    def assignments(self) -> dict[str, str]:
        with self.store.session() as session:
            rows = session.execute(
                select(ArmUser.user, ArmUser.arm).where(ArmUser.experiment_id == self.experiment_id)
            )
            return dict(rows.all())

    def assign(self, user: str, arm: str) -> None:
        with self.store.session() as session:
            found = session.scalar(
                select(ArmUser).where(
                    ArmUser.experiment_id == self.experiment_id, ArmUser.user == user
                )
            )
            if found is None:
                session.add(ArmUser(experiment_id=self.experiment_id, user=user, arm=arm))
            else:  # its arm was dropped from the experiment
                found.arm = arm

    def record(self, exchange: Exchange) -> None:
        values = {name: getattr(exchange, name) for name in RECORDED}
        with self.store.session() as session:
            session.add(
                ExchangeRow(experiment_id=self.experiment_id, created_at=exchange.started, **values)
            )

    def feedback(self, feedback: Feedback) -> str | None:
        with self.store.session() as session:
            exchange = session.scalar(
                select(ExchangeRow).where(
                    ExchangeRow.experiment_id == self.experiment_id,
                    ExchangeRow.completion_id == feedback.completion_id,
                    ExchangeRow.user == feedback.user,
                )
            )
            if exchange is None:
                return None
            # What is not sent again is kept: a correction after a thumb keeps the thumb.
            before = session.scalar(
                select(ExchangeFeedback).where(
                    ExchangeFeedback.exchange_id == exchange.id, ExchangeFeedback.current
                )
            )
            session.execute(
                update(ExchangeFeedback)
                .where(ExchangeFeedback.exchange_id == exchange.id)
                .values(current=False)
            )
            rating = feedback.rating
            correction, comment = feedback.correction.strip(), feedback.comment.strip()
            if before is not None:
                rating = before.rating if rating is None else rating
                correction = correction or before.correction
                comment = comment or before.comment
            session.add(
                ExchangeFeedback(
                    exchange_id=exchange.id, rating=rating, correction=correction, comment=comment
                )
            )
            return exchange.arm


def find_experiment(store: Store, name: str) -> int:
    with store.session() as session:
        found = session.scalar(select(Experiment.id).where(Experiment.name == name))
        if found is None:
            known = session.scalars(select(Experiment.name).order_by(Experiment.name)).all()
            raise StoreError(
                f"no A/B experiment {name!r} in this store (it has: "
                f"{', '.join(known) or 'none'}); pass --experiment as given to `medfactory gateway`"
                + (f", e.g. --experiment {known[0]}" if known else "")
            )
    return found


def users_of(store: Store, experiment: str) -> set[str] | None:
    """Everyone the experiment has assigned or recorded; None when there is no such experiment."""
    with store.session() as session:
        found = session.scalar(select(Experiment.id).where(Experiment.name == experiment))
        if found is None:
            return None
        assigned = session.scalars(select(ArmUser.user).where(ArmUser.experiment_id == found))
        recorded = session.scalars(
            select(ExchangeRow.user).where(ExchangeRow.experiment_id == found).distinct()
        )
        return set(assigned) | set(recorded)


def forget_experiment(store: Store, experiment: str) -> None:
    """Delete the experiment with its assignments, exchanges and feedback."""
    with store.session() as session:
        found = session.scalar(select(Experiment.id).where(Experiment.name == experiment))
        if found is None:
            return
        exchanges = select(ExchangeRow.id).where(ExchangeRow.experiment_id == found)
        session.execute(delete(ExchangeFeedback).where(ExchangeFeedback.exchange_id.in_(exchanges)))
        session.execute(delete(ExchangeRow).where(ExchangeRow.experiment_id == found))
        session.execute(delete(ArmUser).where(ArmUser.experiment_id == found))
        session.execute(delete(Experiment).where(Experiment.id == found))


def exchanges_since(store: Store, experiment: str, since: float | None = None) -> list[dict]:
    """Every exchange of the experiment from `since` on (epoch seconds), oldest first, each
    with its current feedback (`rating`, `correction`, `comment`; None/"" without)."""
    experiment_id = find_experiment(store, experiment)
    query = (
        select(ExchangeRow, ExchangeFeedback)
        .outerjoin(
            ExchangeFeedback,
            (ExchangeFeedback.exchange_id == ExchangeRow.id) & ExchangeFeedback.current,
        )
        .where(ExchangeRow.experiment_id == experiment_id)
        .order_by(ExchangeRow.id)
    )
    if since is not None:
        query = query.where(ExchangeRow.created_at >= since)
    rows = []
    with store.session() as session:
        for exchange, feedback in session.execute(query):
            row = {name: getattr(exchange, name) for name in RECORDED}
            row["id"] = exchange.id
            row["created_at"] = exchange.created_at
            row["rating"] = feedback.rating if feedback else None
            row["correction"] = feedback.correction if feedback else ""
            row["comment"] = feedback.comment if feedback else ""
            rows.append(row)
    return rows


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """`--since`: an ISO date or time (2026-12-01, 2026-12-01T09:30) or an age (90m, 2h, 7d)."""
    from datetime import datetime

    if not text:
        return None
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:].lower()
    if unit in units:
        try:
            return now - float(number) * units[unit]
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise StoreError(
            f"--since {text!r}: give a date or time (2026-12-01, 2026-12-01T09:30) "
            "or an age (90m, 2h, 7d)"
        ) from None
