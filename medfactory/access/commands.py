"""What `medfactory users` and `medfactory audit` do, for the thin CLI in cli/access.py."""

from __future__ import annotations

import json
from pathlib import Path

from medfactory.access.audit import Verdict, anchor, entries, record, verify, when
from medfactory.access.errors import AccessError
from medfactory.access.roles import acting_user
from medfactory.access.users import User, add_user, disable_user, list_users, new_token
from medfactory.reporting import write_json
from medfactory.store.db import Store

DEFAULT_BASE = "http://127.0.0.1:7870"


def signin_link(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/signin/{token}"


def add(store: Store, as_name, name, role, email, base) -> dict:
    actor = acting_user(store, as_name, "users")
    user, token = add_user(store, name, role, email)
    record(store, actor, "user-added", name, {"role": role, "email": email})
    return {"name": user.name, "role": user.role, "link": signin_link(base, token), "token": token}


def link(store: Store, as_name, name, base) -> str:
    actor = acting_user(store, as_name, "users")
    token = new_token(store, name)
    record(store, actor, "user-new-link", name)
    return signin_link(base, token)


def disable(store: Store, as_name, name) -> User:
    actor = acting_user(store, as_name, "users")
    user = disable_user(store, name)
    record(store, actor, "user-disabled", name)
    return user


def listing(store: Store, as_name) -> list[User]:
    acting_user(store, as_name, "users")
    return list_users(store)


def audit_entries(store: Store, as_name, since: float | None, actor: str | None) -> list[dict]:
    acting_user(store, as_name, "audit", "audit-listed", actor or "")
    return [
        {"id": e.id, "at": when(e.at), "actor": e.actor, "action": e.action,
         "target": e.target, "details": e.details}
        for e in entries(store, since, actor)
    ]  # fmt: skip


def audit_verify(store: Store, as_name, anchor_file: Path | None = None) -> Verdict:
    acting_user(store, as_name, "audit")
    return verify(store, read_anchor(anchor_file) if anchor_file else None)


def audit_anchor(store: Store, as_name, out: Path | None = None) -> dict:
    """The chain's head, written to OUT when given (whole or not at all)."""
    acting_user(store, as_name, "audit")
    try:
        head = anchor(store)
    except ValueError as error:
        raise AccessError(f"no anchor: {error}; see `medfactory audit verify`") from None
    if out:
        write_json(out, head)
    return head


def read_anchor(path: Path) -> dict:
    """An anchor file of `audit anchor`, checked; AccessError naming what is wrong."""
    try:
        anchored = json.loads(Path(path).read_text(encoding="utf-8"))
        if not (isinstance(anchored["entries"], int) and isinstance(anchored["head"], str)):
            raise ValueError
        anchored.setdefault("at", str(path))
        return anchored
    except OSError as error:
        raise AccessError(f"--anchor {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise AccessError(
            f'--anchor {path}: not an anchor ({{"entries", "head", "at"}} from '
            "`medfactory audit anchor`)"
        ) from None
