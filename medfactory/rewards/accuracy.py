"""`eval reward`: how often a reward model scores the chosen answer above the rejected one
on held-out preference pairs, with a Wilson 95 % interval.

Each answer is scored on the text LLaMA-Factory trains and queries the reward model with:
the prompt and the answer encoded with the recipe's chat template (its eos included).
Pairs are the preference exports' ShareGPT lines (`conversations`, `chosen`,
`rejected`, optional `system`; `from`/`value` or `role`/`content` messages).
"""

from __future__ import annotations

import json
from pathlib import Path

from medfactory.reporting import read_jsonl
from medfactory.rewards.errors import RewardError
from medfactory.rewards.model import RewardModel
from medfactory.stats.intervals import wilson

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
         "system": "system", "observation": "observation", "function_call": "function"}  # fmt: skip


def _message(where: str, message: object) -> dict:
    if not isinstance(message, dict):
        raise RewardError(f"{where}: a message is an object with from/value or role/content")
    role = ROLES.get(str(message.get("from") or message.get("role")))
    content = message.get("value", message.get("content"))
    if role is None or not isinstance(content, str):
        raise RewardError(f"{where}: a message needs from/value (or role/content)")
    return {"role": role, "content": content}


def read_pairs(path: Path) -> list[tuple[list[dict], str, dict, dict]]:
    """(prompt messages, system, chosen, rejected) per line, checked."""
    if not path.is_file():
        raise RewardError(f"{path}: no such pairs file; pass a preference export (.jsonl)")
    pairs = []
    for number, line in read_jsonl(path):
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise RewardError(f"{where}: not a JSON line ({error})") from None
        if not isinstance(row, dict) or not {"conversations", "chosen", "rejected"} <= set(row):
            raise RewardError(f"{where}: needs conversations, chosen and rejected")
        prompt = [_message(where, m) for m in row["conversations"]]
        system = str(row.get("system") or "")
        if prompt and prompt[0]["role"] == "system":
            system, prompt = prompt[0]["content"], prompt[1:]
        pairs.append((prompt, system, _message(where, row["chosen"]),
                      _message(where, row["rejected"])))  # fmt: skip
    if not pairs:
        raise RewardError(f"{path}: no pairs in the file")
    return pairs


def reward_accuracy(pairs_file: Path, model: RewardModel) -> dict:
    """Accuracy (chosen above rejected) with its interval, and each pair's two scores."""
    pairs = read_pairs(pairs_file)
    sequences = [model.encode_turn(p, s, a["content"]) for p, s, c, r in pairs for a in (c, r)]
    scores = model.score_ids(sequences)
    scored = [{"chosen": scores[2 * i], "rejected": scores[2 * i + 1]} for i in range(len(pairs))]
    correct = sum(pair["chosen"] > pair["rejected"] for pair in scored)
    accuracy, low, high = wilson(correct, len(pairs))
    return {"pairs": len(pairs), "correct": correct, "accuracy": accuracy, "low": low,
            "high": high, "scores": scored}  # fmt: skip
