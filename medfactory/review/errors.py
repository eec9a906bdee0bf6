"""The review's mistakes a user can fix; light to import, so `medfactory --help` stays fast."""

from medfactory.store.errors import ExportError, StoreError


class StudyError(ValueError):
    """A study cannot be made or found; the message names the file, line or thing to do."""


class RatingError(ValueError):
    """A submission that cannot be stored; the message names the field."""


class NotYours(LookupError):
    """The item is not in this person's queue (HTTP 403)."""


class SheetError(ValueError):
    """A sheet that cannot be imported; the message names file, row and column."""


REVIEW_ERRORS = (ExportError, NotYours, RatingError, SheetError, StoreError, StudyError)
