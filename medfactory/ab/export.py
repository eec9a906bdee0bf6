"""The live A/B record as LLaMA-Factory training data: KTO records from thumbs, SFT
records from corrections, and a DPO pair of each correction and the answer it corrects."""

from __future__ import annotations

import time

from medfactory.ab.recorder import exchanges_since
from medfactory.access.audit import export_details, record
from medfactory.exports import Example, Export, split_chat, write_export
from medfactory.store.db import Store


def ab_export(store: Store, experiment: str, since: float | None = None) -> Export:
    """KTO records from thumbs; SFT records and DPO pairs from corrections of the live A/B."""
    export = Export(source=f"ab {experiment}")
    rows = exchanges_since(store, experiment, since)
    export.read = len(rows)
    for row in rows:
        if row["error"]:
            export.skipped["failed exchange"] += 1
            continue
        messages = row["messages"]
        if not messages or messages[-1].get("role") != "user" or not _alternates(messages):
            export.skipped["not a chat ending on the user's question"] += 1
            continue
        system, turns, question = split_chat(messages)
        origin = _provenance(experiment, row)
        if row["correction"]:
            export.examples["sft"].append(
                Example(system, turns, question, answer=row["correction"],
                        provenance=origin | {"verdict": "corrected"})
            )  # fmt: skip
            if row["correction"].strip() != row["answer"].strip():
                export.examples["dpo"].append(
                    Example(system, turns, question, row["correction"], row["answer"],
                            provenance=origin | {"verdict": "corrected"})
                )  # fmt: skip
        if row["rating"] in (1, -1):
            export.examples["kto"].append(
                Example(system, turns, question, answer=row["answer"], tag=row["rating"] == 1,
                        provenance=origin | {"verdict": "up" if row["rating"] == 1 else "down"})
            )  # fmt: skip
        elif not row["correction"]:
            export.skipped["no feedback"] += 1
    return export


def export_experiment(
    store: Store, experiment: str, since: float | None, name: str, dataset_dir, fmt: str,
    split: tuple[float, ...], seed: int, force: bool, actor: str = "",
) -> dict:  # fmt: skip
    """`ab export`: the experiment's training data written and registered; the summary."""
    summary = write_export(ab_export(store, experiment, since), dataset_dir, name, fmt, split,
                           seed, force)  # fmt: skip
    record(store, actor, "ab-export", experiment, export_details(summary, name))
    return summary


def _provenance(experiment: str, row: dict) -> dict:
    """Whose feedback on which exchange: the chat user, the arm and model that answered (and
    its recorded version, when the arm was named by one)."""
    when = row.get("created_at")
    version = {"model_version": row["model_version"]} if row.get("model_version") else {}
    return {
        "experiment": experiment, "exchange": row["id"], "user": row["user"], "arm": row["arm"],
        "served_model": row["served_model"],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(when)) if when else None,
    } | version  # fmt: skip


def _alternates(messages: list[dict]) -> bool:
    chat = messages[1:] if messages[0].get("role") == "system" else messages
    roles = [m.get("role") for m in chat]
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
    return roles == expected and all(isinstance(m.get("content"), str) for m in chat)
