"""What `medfactory users` and `medfactory audit` do, for the thin CLI in cli/access.py."""

from __future__ import annotations

from medfactory.access.audit import Verdict, entries, record, verify, when
from medfactory.access.roles import acting_user
from medfactory.access.users import User, add_user, disable_user, list_users, new_token
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


def audit_verify(store: Store, as_name) -> Verdict:
    acting_user(store, as_name, "audit")
    return verify(store)
