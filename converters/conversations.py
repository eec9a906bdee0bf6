"""Read a registered split back, the way LLaMA-Factory reads it: the one reader.

`data stats`, `eval endpoint` and `loadtest` all go through here, so a dataset
name resolves the same way everywhere and a missing one gets the same message,
naming the registry that was read. Each record becomes the chat it stands for:
the system prompt and every earlier turn, then the user's question; the last
answer is the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from converters.formats import ALPACA_COLUMNS, SHAREGPT_TAGS
from converters.registry import INFO_FILE, RegistryError, read_registry


@dataclass(frozen=True)
class Conversation:
    messages: list[dict]  # OpenAI chat messages, ending with the user's question
    reference: str  # the dataset's answer to it

    @property
    def turns(self) -> int:
        return sum(message["role"] == "user" for message in self.messages)

    @property
    def chars(self) -> int:
        return sum(len(m["content"]) for m in self.messages) + len(self.reference)


def locate(dataset_dir: Path, name: str) -> tuple[dict, Path]:
    """The dataset_info entry of `name` and its data file; RegistryError naming the folder."""
    dataset_dir = Path(dataset_dir)
    registry = read_registry(dataset_dir)
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise RegistryError(
            f"{dataset_dir / INFO_FILE} has no dataset {name!r} (registered: {known}); "
            "convert one with `medfactory data convert`, or pass --dataset-dir"
        )
    entry = registry[name]
    path = dataset_dir / entry.get("file_name", "")
    if not path.is_file():
        raise RegistryError(
            f"{path}: the data file of {name!r} is missing; run `make data` or the "
            "`medfactory data convert` that registered it"
        )
    return entry, path


def load_conversations(dataset_dir: Path, name: str, limit: int | None = None) -> list:
    """The conversations of dataset `name` registered in `dataset_dir/dataset_info.json`."""
    entry, path = locate(dataset_dir, name)
    to_conversation = _sharegpt if entry.get("formatting") == "sharegpt" else _alpaca
    conversations = []
    for number, row in _rows(path):
        try:
            conversations.append(to_conversation(row, entry))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RegistryError(
                f"{path}:{number}: record does not match its dataset_info entry "
                f"{name!r} ({type(error).__name__}: {error}); re-convert the dataset"
            ) from None
        if limit and len(conversations) >= limit:
            break
    return conversations


def _rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) of a JSON-lines file or (element number, record) of a JSON array."""
    raw = path.read_bytes()
    try:
        if path.suffix != ".jsonl":
            yield from enumerate(orjson.loads(raw), 1)
            return
        for number, line in enumerate(raw.split(b"\n"), 1):
            if line.strip():
                yield number, orjson.loads(line)
    except orjson.JSONDecodeError as error:
        where = f":{number}" if path.suffix == ".jsonl" else ""
        raise RegistryError(f"{path}{where}: not valid JSON ({error}); re-convert it") from None


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
