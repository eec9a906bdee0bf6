"""The reward server LLaMA-Factory's PPO trainer posts to (`reward_model_type: api`).

LLaMA-Factory (train/ppo/ppo_utils.py, get_rewards_from_server) posts
`{"model": "model", "messages": [text, ...]}` to the recipe's `reward_model` URL exactly
as written and reads `{"scores": [float, ...]}`, one score a text, in order. Each text is
a prompt and its sampled response decoded together, chat template included. Scores are
cached by (text, verifier), so a repeated answer costs nothing, and each is logged with
its prompt's id and outcome; GET /stats counts the outcomes and names the prompts the
answer key does not cover.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from pydantic import BaseModel

PATH = "/score"
OUTCOMES = ("right", "wrong", "unreadable", "unkeyed", "unjudged", "scored")
log = logging.getLogger("medfactory.rewards")


class RewardRequest(BaseModel):
    model: str = "model"
    messages: list[str]


class RewardResponse(BaseModel):
    scores: list[float]


class Scorer:
    """A verifier with the cache, the counts and the log around it."""

    def __init__(self, verifier):
        self.verifier = verifier
        self.cache: dict[tuple[str, str], float] = {}
        self.outcomes: Counter[str] = Counter()
        self.unkeyed: list[str] = []  # the start of each prompt the key does not cover
        self.lock = threading.Lock()

    def score(self, texts: list[str]) -> list[float]:
        with self.lock:
            new = list(dict.fromkeys(t for t in texts if (t, self.verifier.name) not in self.cache))
            for text, result in zip(new, self.verifier.score_all(new) if new else [], strict=True):
                self.cache[(text, self.verifier.name)] = result.score
                self.outcomes[result.outcome] += 1
                if result.unsafe:
                    self.outcomes["unsafe"] += 1
                if result.outcome == "unkeyed":
                    from medfactory.rewards.text import clean

                    self.unkeyed.append(" ".join(clean(text).split())[:120])
                    log.warning("no answer in the key for the prompt: %s", self.unkeyed[-1])
                log.info(
                    "reward %s=%+.3f prompt=%s outcome=%s%s", self.verifier.name, result.score,
                    result.prompt_id or "-", result.outcome,
                    f" unsafe={','.join(result.unsafe)}" if result.unsafe else "",
                )  # fmt: skip
            return [self.cache[(text, self.verifier.name)] for text in texts]

    def stats(self) -> dict:
        with self.lock:
            return {"verifier": self.verifier.name, "scored": sum(
                self.outcomes[o] for o in OUTCOMES
            ), "outcomes": dict(self.outcomes), "unkeyed": list(self.unkeyed)}  # fmt: skip


def create_app(scorer: Scorer):
    from fastapi import FastAPI

    app = FastAPI(title="medfactory reward server")

    @app.post(PATH, response_model=RewardResponse)
    def score(request: RewardRequest) -> RewardResponse:
        return RewardResponse(scores=scorer.score(request.messages))

    @app.get("/stats")
    def stats() -> dict:
        return scorer.stats()

    return app


def serve(verifier, host: str = "127.0.0.1", port: int = 8300) -> None:
    """Answer LLaMA-Factory's reward requests until stopped (Ctrl-C)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    uvicorn.run(create_app(Scorer(verifier)), host=host, port=port, log_level="warning")
