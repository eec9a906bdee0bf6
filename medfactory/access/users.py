"""The users directory: a name, a role and a personal token kept only as its sha256.

A token is shown once, when made; a new one replaces the old, so a lost link is
fixed by `users link NAME`. Lookups compare hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from medfactory.access.errors import AccessError
from medfactory.store.db import Store, UserRow

ROLES = ("clinician", "rater", "lead", "admin", "service")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    email: str | None
    disabled: bool


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(row: UserRow) -> User:
    return User(name=row.name, role=row.role, email=row.email, disabled=bool(row.disabled))


def _row(session, name: str) -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.name == name))
    if row is None:
        raise AccessError(f"no user {name!r}; see `medfactory users list`")
    return row


def add_user(engine: Store, name: str, role: str, email: str | None = None) -> tuple[User, str]:
    """Add a user; returns (user, token). The token is not stored, only its hash."""
    if role not in ROLES:
        raise AccessError(f"--role {role!r}: one of {', '.join(ROLES)}")
    if not name.strip():
        raise AccessError("a user needs a name")
    token = secrets.token_urlsafe(32)
    with engine.session() as session:
        if session.scalar(select(UserRow).where(UserRow.name == name)) is not None:
            raise AccessError(
                f"user {name!r} exists; `medfactory users link {name}` for a new link"
            )
        row = UserRow(name=name, role=role, email=email, token_hash=_hash(token), disabled=False)
        session.add(row)
        session.flush()
        return _user(row), token


def new_token(engine: Store, name: str) -> str:
    """A new token for `name`; the old one stops working."""
    token = secrets.token_urlsafe(32)
    with engine.session() as session:
        _row(session, name).token_hash = _hash(token)
    return token


def disable_user(engine: Store, name: str) -> User:
    with engine.session() as session:
        row = _row(session, name)
        row.disabled = True
        return _user(row)


def list_users(engine: Store) -> list[User]:
    with engine.session() as session:
        return [_user(row) for row in session.scalars(select(UserRow).order_by(UserRow.name))]


def has_users(engine: Store) -> bool:
    with engine.session() as session:
        return session.scalar(select(UserRow.id).limit(1)) is not None


def get_user(engine: Store, name: str) -> User | None:
    with engine.session() as session:
        row = session.scalar(select(UserRow).where(UserRow.name == name))
        return _user(row) if row is not None else None


def user_for_token(engine: Store, token: str) -> User | None:
    """The enabled user holding `token`, else None (unknown, replaced or disabled)."""
    if not token:
        return None
    wanted = _hash(token)
    with engine.session() as session:
        row = session.scalar(select(UserRow).where(UserRow.token_hash == wanted))
        # The index finds the row; the constant-time compare decides.
        if row is None or not hmac.compare_digest(row.token_hash, wanted) or row.disabled:
            return None
        return _user(row)
