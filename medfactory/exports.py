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

Each registered file gets a manifest (converters/registry.py) naming the study or
experiment it came from and the people whose judgments built it, and a provenance
sidecar, NAME.provenance.jsonl: one line per record, in the data file's
order, with the record's hash and where it came from (study and item, or
experiment and exchange; raters, arbiter or chat user; verdict; time). The
training file keeps LLaMA-Factory's columns; provenance lives beside it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from converters.clean import scrub_pii
from converters.formats import SHAREGPT_TAGS, dataset_entry, to_alpaca, to_sharegpt
from converters.records import Dialogue
from converters.registry import PROVENANCE_SUFFIX, register
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
    # Whose judgment made it: study/item or experiment/exchange, raters/arbiter or user,
    # verdict, time. Written to the provenance sidecar, never into the training row.
    provenance: dict = field(default_factory=dict)

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
    options: dict = field(default_factory=dict)  # how it was written (format, split, seed)

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
        clean(example.answer), example.tag, example.source, example.provenance,
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
    export.options = {"format": fmt, "split": list(split), "seed": seed}
    files: dict[Path, list[str]] = {}
    origins: dict[str, list[dict]] = {}  # registered name -> each line's provenance
    entries = {}
    for kind, examples in export.examples.items():
        if not examples:
            continue
        kind_fmt = "sharegpt" if kind == "kto" else fmt  # LLaMA-Factory's rule for KTO
        by_split: dict[str, list[str]] = {s: [] for s in SPLIT_NAMES[: len(split)]}
        provenance: dict[str, list[dict]] = {s: [] for s in by_split}
        for example in examples:
            clean = _scrubbed(example, export.identifiers)
            line = json.dumps(record(kind, kind_fmt, clean), ensure_ascii=False)
            placed = assign_split(clean.text(), seed, split)
            by_split[placed].append(line)
            provenance[placed].append(example.provenance)
        export.written[kind] = {s: len(lines) for s, lines in by_split.items()}
        for split_name, lines in by_split.items():
            if not lines:  # as `data convert`: an empty split is not registered
                continue
            registered = f"{name}_{kind}_{split_name}"
            file_name = f"{registered}.jsonl"
            files[dataset_dir / file_name] = lines
            entries[registered] = entry(kind, kind_fmt, file_name)
            origins[registered] = provenance[split_name]
            sidecar = dataset_dir / f"{registered}{PROVENANCE_SUFFIX}"
            files[sidecar] = provenance_lines(lines, provenance[split_name])
    export.files = sorted(str(path) for path in files if path not in sidecars(files))

    def move_into_place() -> None:
        for path, lines in files.items():
            temporary = path.with_name(f".{path.name}.tmp")
            temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            temporary.replace(path)

    def describe(name: str) -> dict:
        return manifest_fields(export, name, origins[name])

    dataset_dir.mkdir(parents=True, exist_ok=True)
    register(dataset_dir, entries, force=force, before_write=move_into_place, describe=describe)
    return export.summary()


def sidecars(files: dict[Path, list[str]]) -> set[Path]:
    return {path for path in files if path.name.endswith(PROVENANCE_SUFFIX)}


def provenance_lines(lines: list[str], origins: list[dict]) -> list[str]:
    """The sidecar: per data line, its number, its SHA-256 and where it came from."""
    return [
        json.dumps(
            {"line": number, "sha256": hashlib.sha256(line.encode()).hexdigest(), **origin},
            ensure_ascii=False,
        )
        for number, (line, origin) in enumerate(zip(lines, origins, strict=True), start=1)
    ]


# Provenance keys naming people, and how a manifest lists them.
PEOPLE = {"raters": "raters", "arbiter": "arbiters", "user": "chat_users"}


def manifest_fields(export: Export, name: str, origins: list[dict]) -> dict:
    """What a registered file's manifest says of its origin: the study or experiment, the
    export's counts and options, the people and verdicts behind its records."""
    kind, _, origin = export.source.partition(" ")
    people: dict[str, set[str]] = {label: set() for label in PEOPLE.values()}
    for provenance in origins:
        for key, label in PEOPLE.items():
            value = provenance.get(key)
            people[label].update(value if isinstance(value, list) else [value] if value else [])
    verdicts = Counter(str(p["verdict"]) for p in origins if p.get("verdict") is not None)
    return {
        "converter": f"{kind} export",
        "origin": {"review": {"study": origin}, "ab": {"experiment": origin}}.get(
            kind, {"source": export.source}
        ),
        "options": export.options,
        "read": export.read,
        "written": export.written,
        "rejected": dict(export.skipped),
        "deid": {"identifiers_scrubbed": dict(export.identifiers)},
        "people": {label: sorted(names) for label, names in people.items() if names},
        "verdicts": dict(verdicts),
        "provenance": f"{name}{PROVENANCE_SUFFIX}",
        "with_provenance": sum(1 for p in origins if p),
    }
