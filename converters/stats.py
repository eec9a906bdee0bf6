"""Statistics of a registered dataset, read the way LLaMA-Factory reads it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from converters.conversations import load_conversations, locate
from converters.convert import percentiles


def dataset_stats(dataset_dir: Path, name: str, tokenizer: Path | None = None) -> dict:
    entry, path = locate(dataset_dir, name)
    conversations = load_conversations(dataset_dir, name)
    turns = Counter(c.turns for c in conversations)
    result = {
        "name": name,
        "file": str(path),
        "formatting": entry.get("formatting", "alpaca"),
        "records": len(conversations),
        "turns": dict(sorted(turns.items())),
        "chars": percentiles(Counter(c.chars for c in conversations)),
    }
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
        counts = [
            sum(map(len, tok([m["content"] for m in c.messages] + [c.reference],
                             add_special_tokens=False)["input_ids"]))
            for c in conversations
        ]  # fmt: skip
        result["tokens"] = percentiles(Counter(counts))
    return result
