"""medfactory's verifiers as an EasyR1 reward function, for GRPO (`medfactory recipe easyr1`).

EasyR1 loads this file by its path (`worker.reward.reward_function:
medfactory/rewards/easyr1_reward.py:compute_score`) in its own environment, so it
imports nothing but the standard library: the scoring stays in `medfactory reward
serve`, which runs beside the training in medfactory's environment with the answer
key, the verifier and the safety penalty, exactly as for LLaMA-Factory's PPO.

EasyR1 calls `compute_score(reward_inputs, **reward_function_kwargs)` with a batch of
{"response", "response_length", "ground_truth"}; the ground truth of a medfactory
prompt set is the question its answer key is found by. Each question and response
go to the server as one chat text, the form LLaMA-Factory's PPO posts, and each
score comes back as EasyR1's {"overall"}.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

REWARD_NAME = "medfactory"
REWARD_TYPE = "batch"  # EasyR1 passes the whole batch in one call
DEFAULT_URL = "http://127.0.0.1:8300/score"


def chat_text(question: str, response: str) -> str:
    """The question and the response as one ChatML text, which the server takes apart."""
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>"


def compute_score(
    reward_inputs: list[dict[str, Any]], url: str = DEFAULT_URL, timeout: float = 600.0
) -> list[dict[str, float]]:
    texts = [chat_text(str(item["ground_truth"]), item["response"]) for item in reward_inputs]
    body = json.dumps({"model": REWARD_NAME, "messages": texts}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            scores = json.load(reply)["scores"]
    except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
        raise RuntimeError(
            f"the medfactory reward server at {url} did not score the batch ({error}); "
            "start it with `medfactory reward serve` before training"
        ) from None
    if len(scores) != len(texts):
        raise RuntimeError(f"{url} returned {len(scores)} scores for {len(texts)} responses")
    return [{"overall": float(score)} for score in scores]
