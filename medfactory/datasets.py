"""Read a registered dataset split back as chat messages, the way LLaMA-Factory reads it.

Used to query a served model with the test split's real conversations
(evaluation, load tests): every earlier turn and the system prompt are sent,
the last answer is the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from converters.formats import SHAREGPT_TAGS
from converters.registry import INFO_FILE, RegistryError, read_registry

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}


@dataclass(frozen=True)
class Conversation:
    messages: list[dict]  # OpenAI chat messages, ending with the user's question
    reference: str  # the dataset's answer to it


def load_conversations(dataset_dir: Path, name: str, limit: int | None = None) -> list:
    """The conversations of dataset `name` registered in `dataset_dir/dataset_info.json`."""
    registry = read_registry(dataset_dir)
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise RegistryError(
            f"{Path(dataset_dir) / INFO_FILE} has no dataset {name!r} (registered: {known}); "
            "convert one with `medfactory data convert` or pass --dataset-dir"
        )
    entry = registry[name]
    path = Path(dataset_dir) / entry.get("file_name", "")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the data file of {name!r} is missing; re-run `make data` "
            "or the `medfactory data convert` that registered it"
        )
    to_conversation = _sharegpt if entry.get("formatting") == "sharegpt" else _alpaca
    conversations = []
    for number, row in _rows(path):
        try:
            conversations.append(to_conversation(row, entry))
        except (KeyError, TypeError, ValueError) as error:
            raise RegistryError(
                f"{path}:{number}: record does not match its dataset_info entry "
                f"{name!r} ({error}); re-convert the dataset"
            ) from None
        if limit and len(conversations) >= limit:
            break
    return conversations


def _rows(path: Path):
    if path.suffix == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        yield from enumerate(rows, 1)
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield number, json.loads(line)


def _alpaca(row: dict, entry: dict) -> Conversation:
    columns = {**ALPACA_COLUMNS, **entry.get("columns", {})}
    messages = _system(row, columns)
    for question, answer in row.get(columns.get("history", "")) or []:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    # LLaMA-Factory joins instruction and input with a newline.
    parts = (row[columns["prompt"]], row.get(columns["query"]))
    question = "\n".join(part for part in parts if part)
    messages.append({"role": "user", "content": question})
    return Conversation(messages, row[columns["response"]])


def _sharegpt(row: dict, entry: dict) -> Conversation:
    columns = {"messages": "conversations", **entry.get("columns", {})}
    tags = {**SHAREGPT_TAGS, **entry.get("tags", {})}
    roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant"}
    roles[tags["system_tag"]] = "system"
    turns = [
        {"role": roles[turn[tags["role_tag"]]], "content": turn[tags["content_tag"]]}
        for turn in row[columns["messages"]]
    ]
    if not turns or turns[-1]["role"] != "assistant":
        raise ValueError("the last message is not an answer")
    if turns[0]["role"] != "system":
        turns = _system(row, columns) + turns
    return Conversation(turns[:-1], turns[-1]["content"])


def _system(row: dict, columns: dict) -> list[dict]:
    system = row.get(columns.get("system", ""))
    return [{"role": "system", "content": system}] if system else []
