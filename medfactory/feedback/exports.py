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

from sqlalchemy import select

from converters.clean import scrub_pii
from converters.formats import SHAREGPT_TAGS, dataset_entry, to_alpaca, to_sharegpt
from converters.records import Dialogue
from converters.registry import register
from converters.split import SPLIT_NAMES, assign_split
from medfactory.feedback.errors import ExportError
from medfactory.feedback.exchanges import exchanges_since
from medfactory.feedback.rating import current_arbitrations, current_ratings, edited_alike
from medfactory.feedback.store import Arbitration, Assignment, Item, Store
from medfactory.feedback.studies import find_study

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


def _split_chat(messages: list[dict]) -> tuple[str, list[tuple[str, str]], str]:
    """Chat messages ending with the user's question -> (system, earlier turns, question)."""
    system = ""
    if messages and messages[0].get("role") == "system":
        system, messages = messages[0].get("content") or "", messages[1:]
    pairs = [
        (messages[i]["content"], messages[i + 1]["content"]) for i in range(0, len(messages) - 1, 2)
    ]
    return system, pairs, messages[-1]["content"]


def review_export(store: Store, study_name: str) -> Export:
    """DPO pairs from final verdicts and SFT records from corrections of one study; from a
    single-answer study, the accepted and the corrected drafts as SFT records."""
    export = Export(source=f"review {study_name}")
    with store.session() as session:
        study = find_study(session, study_name)
        state = _Reviewed.of(session, study)
    if study.kind == "single":
        return _draft_export(state, export)
    export.read = len(state.items)
    for item in state.items:
        system, turns, question = _split_chat(item.conversation)
        ratings = state.rated.get(item.id, [])
        for rating in ratings:
            if rating.correction.strip():
                export.examples["sft"].append(
                    Example(system, turns, question, answer=rating.correction.strip())
                )
        verdict = state.final_verdict(item)
        if verdict in ("left", "right"):
            chosen, rejected = (item.left_answer, item.right_answer)
            if verdict == "right":
                chosen, rejected = rejected, chosen
            export.examples["dpo"].append(
                Example(system, turns, question, chosen=chosen, rejected=rejected)
            )
        else:
            export.skipped[verdict] += 1
    return export


def settled_items(store: Store, study_name: str) -> list[dict]:
    """The items of a study whose final verdict is settled (arbitrated, or every rater
    agreeing), with their chat, both answers and the verdict (left, right, tie, both_bad)."""
    with store.session() as session:
        state = _Reviewed.of(session, find_study(session, study_name))
    shown = {"tie": "tie", "both unacceptable": "both_bad", "left": "left", "right": "right"}
    return [
        {"position": item.position, "conversation": item.conversation,
         "left_answer": item.left_answer, "right_answer": item.right_answer,
         "verdict": shown[verdict]}
        for item in state.items
        if (verdict := state.final_verdict(item)) in shown
    ]  # fmt: skip


@dataclass
class _Reviewed:
    """What a study's items need for their final verdict, read in one session."""

    items: list[Item]  # in position order
    assigned: Counter  # item id -> raters assigned
    rated: dict[int, list]  # item id -> current ratings
    arbitrations: dict[int, Arbitration]  # item id -> the arbiter's current one

    @classmethod
    def of(cls, session, study) -> _Reviewed:
        items = session.scalars(
            select(Item).where(Item.study_id == study.id).order_by(Item.position)
        ).all()
        assigned = Counter(
            session.scalars(select(Assignment.item_id).join(Item).where(Item.study_id == study.id))
        )
        rated: dict[int, list] = {}
        for row in current_ratings(session, study.id):
            rated.setdefault(row.item_id, []).append(row.Rating)
        return cls(items, assigned, rated, current_arbitrations(session, study.id))

    def final_verdict(self, item: Item) -> str:
        arbitration = self.arbitrations.get(item.id)
        return final_verdict(
            arbitration.verdict if arbitration else None,
            self.rated.get(item.id, []),
            self.assigned[item.id],
        )


def _draft_export(state: _Reviewed, export: Export) -> Export:
    export.read = len(state.items)
    for item in state.items:
        verdict = state.final_verdict(item)
        if verdict not in ("accept", "edit"):
            export.skipped["rejected" if verdict == "reject" else verdict] += 1
            continue
        arbitration = state.arbitrations.get(item.id)
        if verdict == "accept":
            answer = item.left_answer
        elif arbitration:
            answer = arbitration.correction
        else:  # the raters' edits, the same but for spacing
            answer = state.rated[item.id][0].correction.strip()
        export.examples["sft"].append(
            Example("", [], item.conversation[-1]["content"], answer=answer,
                    source=_draft_source(item.source or {}))
        )  # fmt: skip
    return export


def _draft_source(source: dict) -> str:
    where = source.get("file", "")
    if "chunk" in source:
        where += f"#chunk{source['chunk']}"
    if "end" in source:
        where += f"[{source['start']}:{source['end']}]"
    return where or str(source.get("id") or "")


def final_verdict(arbitrated: str | None, ratings: list, assigned: int) -> str:
    """The item's settled verdict, or why there is none yet."""
    verdict = arbitrated
    if verdict is None:
        if not ratings:
            return "not rated"
        if len(ratings) < assigned:
            return "waiting for its other raters"
        if len({r.verdict for r in ratings}) > 1 or not edited_alike(ratings):
            return "raters disagree, not arbitrated"
        verdict = ratings[0].verdict
    return {"tie": "tie", "both_bad": "both unacceptable"}.get(verdict, verdict)


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
        system, turns, question = _split_chat(messages)
        if row["correction"]:
            export.examples["sft"].append(
                Example(system, turns, question, answer=row["correction"])
            )
            if row["correction"].strip() != row["answer"].strip():
                export.examples["dpo"].append(
                    Example(system, turns, question, row["correction"], row["answer"])
                )
        if row["rating"] in (1, -1):
            export.examples["kto"].append(
                Example(system, turns, question, answer=row["answer"], tag=row["rating"] == 1)
            )
        elif not row["correction"]:
            export.skipped["no feedback"] += 1
    return export


def _alternates(messages: list[dict]) -> bool:
    chat = messages[1:] if messages[0].get("role") == "system" else messages
    roles = [m.get("role") for m in chat]
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
    return roles == expected and all(isinstance(m.get("content"), str) for m in chat)


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
