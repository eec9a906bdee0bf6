"""`gateway --store-scrubbed`: what is stored of an exchange goes through the converters'
identifier scrub first (the same scrubber as the exports' and the retrieval index's);
the client has already had the answer as the model gave it."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from converters.clean import scrub_pii
from deploy.gateway import Exchange, Feedback


def scrub(text: str) -> str:
    return scrub_pii(text, Counter()) if isinstance(text, str) and text else text


def scrub_message(message):
    """A chat message with its text scrubbed: a string content, or the text parts of a list."""
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, list):
        content = [
            {**part, "text": scrub(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    else:
        content = scrub(content)
    return {**message, "content": content}


class ScrubbedRecorder:
    """A Recorder that stores every text of the exchanges and the feedback scrubbed."""

    def __init__(self, recorder):
        self.recorder = recorder

    def assignments(self) -> dict[str, str]:
        return self.recorder.assignments()

    def assign(self, user: str, arm: str) -> None:
        self.recorder.assign(user, arm)

    def record(self, exchange: Exchange) -> None:
        self.recorder.record(
            replace(
                exchange,
                messages=[scrub_message(m) for m in exchange.messages],
                answer=scrub(exchange.answer),
                error=scrub(exchange.error),
            )  # fmt: skip
        )

    def feedback(self, feedback: Feedback) -> str | None:
        scrubbed = replace(
            feedback, correction=scrub(feedback.correction), comment=scrub(feedback.comment)
        )
        return self.recorder.feedback(scrubbed)
