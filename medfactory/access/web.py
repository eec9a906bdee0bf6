"""Signing in to the pages by a personal link `BASE/signin/TOKEN` of the users directory.

The link's token is exchanged for an HttpOnly, SameSite=Strict cookie (as the
review page's `/r/TOKEN` is) and looked up again on every request, so a user
disabled or given a new link is out at once. The sign-in goes into the audit log.
"""

from __future__ import annotations

from medfactory.store.db import Store

SESSION_DAYS = 90


def page_user(store: Store, token: str | None, roles: tuple[str, ...]):
    """The directory's user of this token when their role may use the page, else None."""
    from medfactory.access.users import user_for_token

    if not token:
        return None
    user = user_for_token(store, token)
    return user if user is not None and user.role in roles else None


def set_session(response, cookie: str, token: str, secure: bool) -> None:
    response.set_cookie(
        cookie, token, httponly=True, samesite="strict", secure=secure,
        max_age=SESSION_DAYS * 86400,
    )  # fmt: skip


def record_sign_in(store: Store, user, page: str) -> None:
    from medfactory.access.audit import record

    record(store, user.name, "sign-in", page)
