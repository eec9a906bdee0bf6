"""The audit log: append-only rows, each hashed with the previous row's hash.

The hash covers the row's id, time, actor, action, target and details, so a
field edited by hand, a row deleted or rows swapped break the chain at that
row, and `verify` names it. The newest rows deleted, or the whole chain
rewritten with fresh hashes, leave a chain that checks; an anchor kept outside
the database (`anchor`: how many entries and the last one's hash, written by a
cron job to a place the database's admins cannot rewrite) catches both.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import time
from dataclasses import dataclass

from sqlalchemy import func, select

from medfactory.store.db import AuditRow, Meta, Store

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    details: dict


def os_user() -> str:
    """Who runs the command, for a store without users."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _digest(prev: str, id_: int, at: float, actor, action, target, details) -> str:
    body = json.dumps(
        [prev, id_, repr(float(at)), actor, action, target, details or {}],
        sort_keys=True, ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


def record(
    engine: Store, actor: str, action: str, target: str, details: dict | None = None
) -> None:
    """Append one entry, chained to the last."""
    details = dict(details or {})
    actor = actor or os_user()
    with engine.session() as session:
        # One writer at a time extends the chain: SQLite's BEGIN IMMEDIATE already
        # serialises; on PostgreSQL the meta row's lock does.
        session.scalar(select(Meta).where(Meta.key == "schema_version").with_for_update())
        last = session.scalar(select(AuditRow).order_by(AuditRow.id.desc()).limit(1))
        prev = last.hash if last is not None else GENESIS
        id_ = (last.id if last is not None else 0) + 1
        at = round(time.time(), 6)
        session.add(AuditRow(
            id=id_, at=at, actor=actor, action=action, target=target, details=details,
            prev_hash=prev, hash=_digest(prev, id_, at, actor, action, target, details),
        ))  # fmt: skip


def export_details(summary: dict, name: str) -> dict:
    """What an export wrote, for its audit entry: how many rows of each kind, to which name."""
    written = summary.get("written", {})
    rows = {kind: sum(splits.values()) for kind, splits in written.items()}
    return {"name": name, "rows": sum(rows.values()), "by_kind": rows}


def entries(engine: Store, since: float | None = None, actor: str | None = None) -> list[Entry]:
    query = select(AuditRow).order_by(AuditRow.id)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    with engine.session() as session:
        return [
            Entry(r.id, r.at, r.actor, r.action, r.target, r.details or {})
            for r in session.scalars(query)
        ]


@dataclass(frozen=True)
class Verdict:
    count: int
    broken: Entry | None  # the first entry whose hash does not match
    reason: str = ""  # why it is not intact (with no `broken` entry: entries are missing)
    head: str = GENESIS  # the last entry's hash, when the chain is intact

    @property
    def intact(self) -> bool:
        return not self.reason


def anchor(engine: Store) -> dict:
    """The chain's head, to keep outside the database: {"entries", "head", "at"}."""
    verdict = verify(engine)
    if not verdict.intact:
        raise ValueError(f"the chain is broken at entry {verdict.broken.id}: {verdict.reason}")
    return {"entries": verdict.count, "head": verdict.head, "at": when(time.time())}


def verify(engine: Store, anchored: dict | None = None) -> Verdict:
    """The chain checked entry by entry, and against an anchor written earlier: the
    anchor's entry must still be there, with the hash it had."""
    prev = GENESIS
    count = 0
    with engine.session() as session:
        rows = list(session.scalars(select(AuditRow).order_by(AuditRow.id)))
        if anchored and len(rows) < anchored["entries"]:
            missing = f"entries {len(rows) + 1} to {anchored['entries']} were deleted"
            return Verdict(len(rows), None, f"the anchor of {anchored['at']} counted "
                           f"{anchored['entries']} entries and the log holds {len(rows)}: "
                           f"{missing}")  # fmt: skip
        for expected_id, row in enumerate(rows, start=1):
            entry = Entry(row.id, row.at, row.actor, row.action, row.target, row.details or {})
            if row.id != expected_id:
                return Verdict(count, entry, f"entry {expected_id} is missing")
            if row.prev_hash != prev:
                return Verdict(count, entry, "does not follow the entry before it")
            digest = _digest(prev, row.id, row.at, row.actor, row.action, row.target, row.details)
            if digest != row.hash:
                return Verdict(count, entry, "its contents were changed")
            if anchored and row.id == anchored["entries"] and row.hash != anchored["head"]:
                return Verdict(count, entry, f"its hash differs from the anchor of "
                               f"{anchored['at']}: the log was rewritten up to here")  # fmt: skip
            prev = row.hash
            count += 1
        total = session.scalar(select(func.count(AuditRow.id)))
    return Verdict(total or count, None, head=prev)


def when(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
