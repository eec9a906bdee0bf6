"""The store's and the exports' mistakes a user can fix; light to import."""


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what to do."""


class ExportError(ValueError):
    """Nothing to export, or a format that cannot hold the data; the message says what."""
