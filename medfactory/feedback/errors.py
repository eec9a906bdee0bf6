"""The review's mistakes a user can fix; light to import, so `medfactory --help` stays fast."""


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what to do."""


class StudyError(ValueError):
    """A study cannot be made or found; the message names the file, line or thing to do."""


class RatingError(ValueError):
    """A submission that cannot be stored; the message names the field."""


class NotYours(LookupError):
    """The item is not in this person's queue (HTTP 403)."""


class SheetError(ValueError):
    """A sheet that cannot be imported; the message names file, row and column."""


class ExportError(ValueError):
    """Nothing to export, or a format that cannot hold the data; the message says what."""


REVIEW_ERRORS = (ExportError, NotYours, RatingError, SheetError, StoreError, StudyError)
