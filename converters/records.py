"""The one record shape every source is read into, and how a record is refused.

A `Dialogue` is what LLaMA-Factory trains on: alternating user/assistant turns,
always ending with an answer, plus an optional system prompt. Readers turn
source records into dialogues or raise `RecordError` with a reason code; the
converter writes the dialogue, or the rejected record with that reason.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple


class Dialogue(NamedTuple):
    """Question/answer pairs in order; the last pair is the one trained on.

    A named tuple, not a frozen dataclass: one is built per record, and a
    frozen dataclass takes three times as long to build.
    """

    turns: tuple[tuple[str, str], ...]
    system: str = ""
    dropped_trailing_question: bool = False

    @property
    def text(self) -> str:
        """Every text concatenated: what the near-duplicate fold and --max-chars read."""
        return self.system + "".join(itertools.chain.from_iterable(self.turns))


class RecordError(ValueError):
    """A source record that cannot become a dialogue: `reason` is a stable code."""

    def __init__(self, reason: str, detail: str, row: int | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.row = row  # the row of a multi-row record the problem is on, numbered as its own


class SourceError(ValueError):
    """A whole input that cannot be read (missing file, not a JSON array, ...)."""
