"""The one record shape every source is read into, and how a record is refused.

A `Dialogue` is what LLaMA-Factory trains on: alternating user/assistant turns,
always ending with an answer, plus an optional system prompt. Readers turn
source records into dialogues or raise `RecordError` with a reason code; the
converter writes the dialogue, or the rejected record with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialogue:
    """Question/answer pairs in order; the last pair is the one trained on."""

    turns: tuple[tuple[str, str], ...]
    system: str = ""
    dropped_trailing_question: bool = False

    def texts(self):
        if self.system:
            yield self.system
        for question, answer in self.turns:
            yield question
            yield answer

    @property
    def chars(self) -> int:
        return sum(len(text) for text in self.texts())


class RecordError(ValueError):
    """A source record that cannot become a dialogue: `reason` is a stable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SourceError(ValueError):
    """A whole input that cannot be read (missing file, not a JSON array, ...)."""
