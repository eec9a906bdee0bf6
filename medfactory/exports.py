"""Clinicians' verdicts and corrections as LLaMA-Factory training data.

From a review study: DPO pairs from each item's final verdict (the arbiter's,
or the verdict every assigned rater gave), chosen the preferred answer and
rejected the other; and SFT records from the raters' corrected answers. From
the live A/B record: KTO records from thumbs (`kto_tag`), SFT records from the
corrections sent with feedback, and a DPO pair of each correction (chosen) and
the answer it corrects (rejected). Every text is scrubbed of identifiers by
the converters' scrubber; every verdict or feedback row is written or skipped
with its reason; each kind is split and registered as `data convert` does
(NAME_KIND_train/_val/_test, atomically, refusing to replace without force).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from converters.clean import scrub_pii
from converters.formats import SHAREGPT_TAGS, dataset_entry, to_alpaca, to_sharegpt
from converters.records import Dialogue
from converters.registry import register
from converters.split import SPLIT_NAMES, assign_split
from medfactory.store.errors import ExportError

KINDS = ("dpo", "kto", "sft")
FORMATS = ("sharegpt", "alpaca")
USER, ASSISTANT = SHAREGPT_TAGS["user_tag"], SHAREGPT_TAGS["assistant_tag"]


@dataclass
class Example:
    """One training example before formatting: the chat up to the question, then what the
    kind needs (chosen/rejected, an answer and its tag, or the corrected answer)."""

    system: str
    turns: list[tuple[str, str]]  # earlier (question, answer) pairs
    question: str
    chosen: str = ""
    rejected: str = ""
    answer: str = ""
    tag: bool | None = None
    source: str = ""  # where a reviewed draft came from (file, chunk, range), kept as a column

    def text(self) -> bytes:
        """What places it in a split: the same prompt always lands in the same one."""
        return json.dumps([self.system, self.turns, self.question], ensure_ascii=False).encode()


@dataclass
class Export:
    source: str
    read: int = 0  # review items or A/B exchanges examined
    examples: dict[str, list[Example]] = field(default_factory=lambda: {k: [] for k in KINDS})
    skipped: Counter = field(default_factory=Counter)
    identifiers: Counter = field(default_factory=Counter)
    written: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "source": self.source,
            "read": self.read,
            "written": self.written,
            "skipped": dict(self.skipped),
            "identifiers_scrubbed": dict(self.identifiers),
            "files": self.files,
        }


def split_chat(messages: list[dict]) -> tuple[str, list[tuple[str, str]], str]:
    """Chat messages ending with the user's question -> (system, earlier turns, question)."""
    system = ""
    if messages and messages[0].get("role") == "system":
        system, messages = messages[0].get("content") or "", messages[1:]
    pairs = [
        (messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages) - 1, 2)
    ]
    return system, pairs, messages[-1]["content"]


def _scrubbed(example: Example, counts: Counter) -> Example:
    def clean(text: str) -> str:
        return scrub_pii(text, counts)

    return Example(
        clean(example.system), [(clean(q), clean(a)) for q, a in example.turns],
        clean(example.question), clean(example.chosen), clean(example.rejected),
        clean(example.answer), example.tag, example.source,
    )  # fmt: skip


def record(kind: str, fmt: str, example: Example) -> dict:
    """One row of LLaMA-Factory's format for `kind`; the system column is written for every
    row, so it always exists."""
    system = {"system": example.system}
    if kind in ("sft", "kto"):  # a whole dialogue, as the converters write it
        dialogue = Dialogue((*example.turns, (example.question, example.answer)), example.system)
        if kind == "kto":  # ShareGPT only in LLaMA-Factory
            return to_sharegpt(dialogue) | {"kto_tag": example.tag} | system
        row = (to_alpaca if fmt == "alpaca" else to_sharegpt)(dialogue) | system
        return row | {"source": example.source} if example.source else row
    if fmt == "alpaca":
        return {
            "instruction": example.question, "input": "", "chosen": example.chosen,
            "rejected": example.rejected, "history": [list(t) for t in example.turns],
        } | system  # fmt: skip
    # DPO in ShareGPT: the conversation ends on the user's question.
    earlier = to_sharegpt(Dialogue(tuple(example.turns)))["conversations"]
    return {
        "conversations": [*earlier, _message(USER, example.question)],
        "chosen": _message(ASSISTANT, example.chosen),
        "rejected": _message(ASSISTANT, example.rejected),
    } | system


def _message(role_tag: str, text: str) -> dict:
    return {SHAREGPT_TAGS["role_tag"]: role_tag, SHAREGPT_TAGS["content_tag"]: text}


def entry(kind: str, fmt: str, file_name: str) -> dict:
    """The dataset_info.json entry LLaMA-Factory needs for `kind` in `fmt`."""
    base = dataset_entry(fmt, file_name, with_system=True)
    if kind == "sft":
        return base
    columns = dict(base["columns"])
    if kind == "kto":
        columns["kto_tag"] = "kto_tag"
        return {**base, "columns": columns}
    if fmt == "alpaca":
        columns.pop("response", None)
    columns |= {"chosen": "chosen", "rejected": "rejected"}
    return {**base, "ranking": True, "columns": columns}


def write_export(
    export: Export, dataset_dir: Path, name: str, fmt: str = "sharegpt",
    split: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 42, force: bool = False,
) -> dict:  # fmt: skip
    """Scrub, split, write and register every non-empty kind; the summary."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not any(export.examples.values()):
        reasons = ", ".join(f"{n} {r}" for r, n in export.skipped.items()) or "no rows"
        raise ExportError(
            f"{export.source}: nothing to export ({reasons}); nothing was written or registered"
        )
    dataset_dir = Path(dataset_dir)
    files: dict[Path, list[str]] = {}
    entries = {}
    for kind, examples in export.examples.items():
        if not examples:
            continue
        kind_fmt = "sharegpt" if kind == "kto" else fmt  # LLaMA-Factory's rule for KTO
        by_split: dict[str, list[str]] = {s: [] for s in SPLIT_NAMES[: len(split)]}
        for example in examples:
            clean = _scrubbed(example, export.identifiers)
            line = json.dumps(record(kind, kind_fmt, clean), ensure_ascii=False)
            by_split[assign_split(clean.text(), seed, split)].append(line)
        export.written[kind] = {s: len(lines) for s, lines in by_split.items()}
        for split_name, lines in by_split.items():
            if not lines:  # as `data convert`: an empty split is not registered
                continue
            registered = f"{name}_{kind}_{split_name}"
            file_name = f"{registered}.jsonl"
            files[dataset_dir / file_name] = lines
            entries[registered] = entry(kind, kind_fmt, file_name)
    export.files = sorted(str(path) for path in files)

    def move_into_place() -> None:
        for path, lines in files.items():
            temporary = path.with_name(f".{path.name}.tmp")
            temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            temporary.replace(path)

    dataset_dir.mkdir(parents=True, exist_ok=True)
    register(dataset_dir, entries, force=force, before_write=move_into_place)
    return export.summary()
