"""Mistakes a user can fix in the access directory, shown as one line."""


class AccessError(Exception):
    """A wrong name, role or option of `users`/`audit`/`--as`."""


class Forbidden(AccessError):
    """403: the named user's role may not run this command."""
