"""LLaMA-Factory's two dataset formats: the record layout and its dataset_info entry.

Alpaca keeps earlier turns in `history`, which LLaMA-Factory ignores unless
the column is declared. ShareGPT samples with a broken role order or an odd
message count are dropped by LLaMA-Factory with only a log line; a `Dialogue`
always alternates and ends with an answer, so neither can happen here.
"""

from __future__ import annotations

from converters.records import Dialogue

# LLaMA-Factory's own defaults for Alpaca columns; `system` and `history` are
# read only when declared.
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output"}
SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "system_tag": "system",
}


def to_alpaca(dialogue: Dialogue) -> dict:
    *history, (question, answer) = dialogue.turns
    record = {"instruction": question, "input": "", "output": answer}
    if dialogue.system:
        record["system"] = dialogue.system
    record["history"] = [[q, a] for q, a in history]
    return record


def to_sharegpt(dialogue: Dialogue) -> dict:
    messages = []
    for question, answer in dialogue.turns:
        messages.append({"from": SHAREGPT_TAGS["user_tag"], "value": question})
        messages.append({"from": SHAREGPT_TAGS["assistant_tag"], "value": answer})
    record = {"conversations": messages}
    if dialogue.system:
        record["system"] = dialogue.system
    return record


def dataset_entry(fmt: str, file_name: str, with_system: bool) -> dict:
    """The `dataset_info.json` entry that makes LLaMA-Factory read a file we wrote."""
    if fmt == "alpaca":
        columns = dict(ALPACA_COLUMNS)
        if with_system:
            columns["system"] = "system"
        columns["history"] = "history"
        return {"file_name": file_name, "formatting": "alpaca", "columns": columns}
    columns = {"messages": "conversations"}
    if with_system:
        columns["system"] = "system"
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": columns,
        "tags": dict(SHAREGPT_TAGS),
    }


FORMATS = {"alpaca": to_alpaca, "sharegpt": to_sharegpt}
