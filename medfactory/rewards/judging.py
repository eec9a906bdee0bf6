"""A judge model behind the verifiers: the rubric judge's HealthBench score (`judge`), and
whether an open answer is equivalent to its reference (`match`, when its exact match fails).

Both go through `eval judge`'s judge (medfactory/evaluation/judge.py): EvalScope's
HealthBench grader prompt and score, one request per criterion, and the file of earlier
judgments, so an answer judged once is never asked about again, across restarts too.
The equivalence question is the one HuatuoGPT-o1's verifier asks of its judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from medfactory import paths
from medfactory.evaluation.judge import DEFAULT_RUBRIC

EQUIVALENCE_PROMPT = """<Model Response>
{response}
</Model Response>

<Reference Answer>
{reference}
</Reference Answer>

You are provided with a model-generated response (<Model Response>) and a reference answer \
(<Reference Answer>). Compare the model response with the reference answer and determine its \
correctness. Your task is to simply output "True" if the response is correct, and "False" \
otherwise."""
_VERDICT = re.compile(r"\b(true|false)\b", re.IGNORECASE)


def default_cache() -> Path:
    return paths.cache_dir() / "rewards" / "judgments.jsonl"


@dataclass(frozen=True)
class JudgeSpec:
    """The judge as `--judge-endpoint`, `--judge-model`, `--rubric` give it."""

    endpoint: str
    model: str | None = None  # [default: the server's last listed]
    rubric: str = DEFAULT_RUBRIC  # a rubric name, a YAML file or HealthBench JSONL
    api_key: str | None = None
    cache: Path | None = None  # earlier judgments [default: .cache/rewards/judgments.jsonl]
    concurrency: int = 8

    def open(self):
        """The judge, its model settled. With --judge-model nothing is asked until a
        judgment is due (a rerun whose judgments are all kept needs no judge server)."""
        from deploy.client import Endpoint
        from deploy.replies import ParsedReplies
        from medfactory.evaluation.judge import Judge

        endpoint = Endpoint(self.endpoint, api_key=self.api_key, model=self.model)
        if endpoint.model is None:
            endpoint.check()
        replies = ParsedReplies(endpoint, self.cache or default_cache())
        return Judge(replies, self.concurrency)


def parse_verdict(text: str) -> bool | None:
    """The judge's "True" or "False" (the first one it says), or None."""
    found = _VERDICT.search(text or "")
    return None if found is None else found.group(1).lower() == "true"


class Equivalence:
    """Asks the judge whether a response's final answer is the reference's."""

    def __init__(self, judge):
        self.judge = judge

    def same(self, response: str, reference: str) -> bool:
        from deploy.replies import reply_key

        replies = self.judge.replies
        key = reply_key("equivalent", response, reference, replies.endpoint.model)
        prompt = EQUIVALENCE_PROMPT.format(response=response, reference=reference)
        verdict, _cached = replies.ask(
            key, prompt, parse_verdict, keep_failures=False, temperature=0.0, max_tokens=16
        )
        return bool(verdict)


def scaled(score: float) -> float:
    """A HealthBench score (points met over the positive points, clipped to [0, 1] as its
    aggregate is) as a reward in [-1, 1]."""
    return 2.0 * min(max(score, 0.0), 1.0) - 1.0
