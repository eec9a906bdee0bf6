"""Which role may run which data command, and who an action is recorded under.

A store without users behaves as before users existed: anyone at the machine,
recorded under the OS user. Once it has users, `--as NAME` is required and the
name's role decides.
"""

from __future__ import annotations

from medfactory.access.audit import os_user, record
from medfactory.access.errors import AccessError, Forbidden
from medfactory.access.users import get_user, has_users, list_users
from medfactory.store.db import Store

# What each permission is for: reading reports, making review studies and moving
# raters' sheets, exporting people's data, managing users and the audit log,
# deleting conversations.
PERMISSIONS = {
    "report": ("lead", "admin"),
    "study": ("lead", "admin"),
    "export": ("lead", "admin"),
    "users": ("admin",),
    "audit": ("admin",),
    "purge": ("admin",),
}


def acting_user(
    engine: Store, as_name: str | None, permission: str, action: str | None = None,
    target: str = "",
) -> str:  # fmt: skip
    """The name to record the action under; Forbidden when that user's role may not.
    With `action`, the granted action is recorded at once (a report read, a listing)."""
    actor = _checked(engine, as_name, permission)
    if action:
        record(engine, actor, action, target)
    return actor


def _checked(engine: Store, as_name: str | None, permission: str) -> str:
    if not has_users(engine):
        return as_name or os_user()
    # Until someone may manage users, whoever holds the store may (else a store whose
    # first user is a clinician could never get an admin).
    if permission == "users" and not any(u.role == "admin" and not u.disabled
                                         for u in list_users(engine)):  # fmt: skip
        return as_name or os_user()
    if not as_name:
        raise AccessError(
            "this store has users: say who you are with --as NAME "
            f"(a role of {', '.join(PERMISSIONS[permission])})"
        )
    user = get_user(engine, as_name)
    if user is None or user.disabled:
        raise Forbidden(f"403: --as {as_name!r} is no enabled user of this store")
    if user.role not in PERMISSIONS[permission]:
        raise Forbidden(f"403: {as_name} is a {user.role}; {permission} needs a role of "
                        f"{', '.join(PERMISSIONS[permission])}")  # fmt: skip
    return user.name
