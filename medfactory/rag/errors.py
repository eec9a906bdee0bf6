"""The one error of retrieval a user can fix: its message names the option or file and
what to do."""


class RagError(RuntimeError):
    """An index, a question file or an embeddings server cannot be used as given."""


class NoQuestion(RagError, ValueError):
    """A conversation without a user question to retrieve for: the request's fault (a
    gateway answers it with 400), not the index's."""
