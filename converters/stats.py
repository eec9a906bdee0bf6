"""Statistics of a registered dataset, read the way LLaMA-Factory reads it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from converters.convert import percentiles
from converters.records import SourceError
from converters.registry import INFO_FILE, read_registry


def dialogue_texts(record: dict, entry: dict) -> tuple[int, list[str]]:
    """(turns, texts) of one record under its dataset_info entry's columns."""
    columns = entry.get("columns", {})
    if entry.get("formatting", "alpaca") == "sharegpt":
        tags = entry.get("tags", {})
        messages = record[columns.get("messages", "conversations")]
        texts = [m[tags.get("content_tag", "value")] for m in messages]
        turns = len(messages) // 2
    else:
        history = record.get(columns.get("history", "history")) or []
        texts = [text for pair in history for text in pair]
        texts += [record.get(columns.get(k, k), "") or "" for k in ("prompt", "query", "response")]
        turns = len(history) + 1
    system = record.get(columns.get("system", "system"))
    return turns, ([system] if system else []) + texts


def read_records(path: Path) -> list[dict]:
    raw = path.read_bytes()
    if path.suffix == ".jsonl":
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    return orjson.loads(raw)


def dataset_stats(dataset_dir: Path, name: str, tokenizer: Path | None = None) -> dict:
    registry = read_registry(dataset_dir)
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise SourceError(
            f"{Path(dataset_dir) / INFO_FILE} has no dataset {name!r}; known: {known}"
        )
    entry = registry[name]
    path = Path(dataset_dir) / entry["file_name"]
    if not path.is_file():
        raise SourceError(f"{path}: registered as {name!r} but missing; convert it again")
    turns, chars, texts_per_record = Counter(), Counter(), []
    for record in read_records(path):
        count, texts = dialogue_texts(record, entry)
        turns[count] += 1
        chars[sum(len(t) for t in texts)] += 1
        texts_per_record.append(texts)
    result = {
        "name": name,
        "file": str(path),
        "formatting": entry.get("formatting", "alpaca"),
        "records": turns.total(),
        "turns": dict(sorted(turns.items())),
        "chars": percentiles(chars),
    }
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
        counts = [
            sum(len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"])
            for texts in texts_per_record
        ]
        result["tokens"] = percentiles(Counter(counts))
    return result
