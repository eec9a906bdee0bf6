"""Verifiable data: prompt sets whose answers only the reward server holds.

`data convert medical-o1-verifiable FILE`: medical-o1's verifiable problems (a JSON array
of `{"Open-ended Verifiable Question", "Ground-True Answer"}`), each question a prompt
for PPO or `data sample`, scored by `reward serve --verifier match`.
`data convert exam FILE`: an `eval exam` file (CSV or JSONL: question, A, B, ..., answer),
each question asked as `eval exam` asks it (EvalScope's general_mcq prompt), scored by
`reward serve --verifier choice`.

Written to DATASET_DIR, every record accounted for (a prompt, a duplicate, or a reject
with its line and reason in NAME.rejects.jsonl):
- NAME_train.jsonl, NAME_test.jsonl: the prompts, registered, with an empty answer
  (what LLaMA-Factory's PPO reads); test is the held-out part;
- NAME.answers.jsonl: the key of the train prompts (`reward serve --answers`);
- NAME.heldout.jsonl: the held-out questions with their answers: an exam file for
  `eval exam` (exam), a `match` key (medical-o1-verifiable).
A record's split follows its question alone (the converters' keyed hash), so adding
records never moves a question between training and held-out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from converters.formats import FORMATS, dataset_entry
from converters.records import Dialogue, SourceError
from converters.registry import (
    check_conflicts,
    file_sha256,
    plain,
    read_registry,
    register,
    source_files,
)
from converters.split import assign_split
from medfactory.reporting import write_jsonl

KINDS = ("medical-o1-verifiable", "exam")
QUESTION, ANSWER = "Open-ended Verifiable Question", "Ground-True Answer"


@dataclass(frozen=True)
class PromptSetOptions:
    name: str
    dataset_dir: Path
    held_out: float = 0.1  # the share kept for evaluation after training
    seed: int = 42
    fmt: str = "sharegpt"
    system: str = ""
    force: bool = False


@dataclass(frozen=True)
class Problem:
    line: int
    question: str  # what places it in a split and finds its key entry
    prompt: str  # what the policy is asked
    key: dict  # the answer key's row
    raw: object


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# --- readers: (line, raw record) -> Problem, or Rejected ------------------------------


def _o1_records(path: Path) -> Iterator[tuple[int, object]]:
    from converters.medical_o1 import iter_json_array

    yield from iter_json_array(path)


def _o1_problem(path: Path, line: int, record: object) -> Problem:
    if not isinstance(record, dict):
        raise Rejected("not_an_object", f"expected a JSON object, got {type(record).__name__}")
    missing = [field for field in (QUESTION, ANSWER) if field not in record]
    if missing:
        raise Rejected("missing_field", f"missing {', '.join(missing)}")
    for field in (QUESTION, ANSWER):
        if not isinstance(record[field], str):
            raise Rejected("field_not_string", f"{field} is {type(record[field]).__name__}")
        if not record[field].strip():
            raise Rejected("empty_field", f"{field} is empty")
    question, answer = record[QUESTION].strip(), record[ANSWER].strip()
    key = {"id": f"{path.stem}:{line}", "question": question, "answer": answer}
    return Problem(line, question, question, key, record)


def _exam_records(path: Path) -> Iterator[tuple[int, object]]:
    from medfactory.evaluation.errors import ExamError
    from medfactory.evaluation.exam import read_exam_rows

    try:
        yield from read_exam_rows(path)
    except ExamError as error:
        raise SourceError(str(error)) from None


def _exam_problem(path: Path, line: int, row: object) -> Problem:
    from evalscope.utils.multi_choices import MultipleChoiceTemplate, prompt

    from medfactory.evaluation.errors import ExamError
    from medfactory.evaluation.exam import LETTERS, exam_question

    try:
        question = exam_question(path, line, row)
    except ExamError as error:  # "FILE:LINE: what is wrong": the line is in the reject
        raise Rejected("invalid_question", str(error).split(": ", 1)[-1]) from None
    template = MultipleChoiceTemplate.CHINESE_SINGLE_ANSWER_TEMPLATE  # general_mcq's
    asked = prompt(question["question"], question["options"], template)
    key = {"id": question["id"], "subject": question["subject"], "question": question["question"]}
    key |= dict(zip(LETTERS, question["options"], strict=False)) | {"answer": question["answer"]}
    return Problem(line, question["question"], asked, key, row)


READERS: dict[str, tuple[Callable, Callable]] = {
    "medical-o1-verifiable": (_o1_records, _o1_problem),
    "exam": (_exam_records, _exam_problem),
}


# --- the conversion -------------------------------------------------------------------


def convert_prompt_set(kind: str, path: Path, options: PromptSetOptions) -> dict:
    """Read, check, split, write and register; the summary, which accounts for every
    record: read == written + duplicates + rejected."""
    from converters.convert import check_name

    if kind not in READERS:
        raise SourceError(f"unknown prompt set {kind!r}; known: {', '.join(KINDS)}")
    if not 0.0 <= options.held_out < 1.0:
        raise SourceError(f"--held-out {options.held_out}: give a share from 0 up to (not) 1")
    if options.fmt not in FORMATS:
        raise SourceError(f"unknown format {options.fmt!r}; known: {', '.join(FORMATS)}")
    check_name(options.name)
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file; pass the {kind} file")
    dataset_dir = Path(options.dataset_dir)
    entries = {
        f"{options.name}_{split}": dataset_entry(
            options.fmt, f"{options.name}_{split}.jsonl", bool(options.system)
        )
        for split in ("train", "test")
    }
    if not options.force:  # before the work, not after it
        check_conflicts(dataset_dir, read_registry(dataset_dir), entries)

    records, to_problem = READERS[kind]
    kept: dict[str, list[Problem]] = {"train": [], "test": []}
    rejects, seen = [], {}
    summary = {"name": options.name, "source": kind, "read": 0, "duplicates": 0}
    ratios = (1.0 - options.held_out, 0.0, options.held_out)
    for line, raw in records(path):
        summary["read"] += 1
        try:
            problem = to_problem(path, line, raw)
        except Rejected as error:
            rejects.append({"source": str(path), "line": line, "reason": error.reason,
                            "detail": error.detail, "record": raw})  # fmt: skip
            continue
        folded = " ".join(problem.question.split())
        if folded in seen:  # one key entry per question: the first one stays
            summary["duplicates"] += 1
            continue
        seen[folded] = line
        kept[assign_split(folded.encode(), options.seed, ratios)].append(problem)
    summary["written"] = {split: len(problems) for split, problems in kept.items()}
    summary["rejected"] = dict(sorted(Counter(r["reason"] for r in rejects).items()))
    rejects_path = dataset_dir / f"{options.name}.rejects.jsonl"
    if not kept["train"]:
        if rejects:
            write_jsonl(rejects_path, rejects)
        reasons = ", ".join(f"{r} {n}" for r, n in summary["rejected"].items()) or "no records"
        raise SourceError(
            f"{path}: no training prompt could be made ({summary['read']} read: {reasons}); "
            f"nothing was registered"
            + (f"; each reject and its reason: {rejects_path}" if rejects else "")  # fmt: skip
        )
    return _publish(kind, path, options, kept, rejects, summary, entries)


def _publish(
    kind: str, path: Path, options: PromptSetOptions, kept: dict, rejects: list,
    summary: dict, entries: dict,
) -> dict:  # fmt: skip
    dataset_dir = Path(options.dataset_dir)
    to_record = FORMATS[options.fmt]
    files = {
        "train": dataset_dir / f"{options.name}_train.jsonl",
        "test": dataset_dir / f"{options.name}_test.jsonl",
        "answers": dataset_dir / f"{options.name}.answers.jsonl",
        "heldout": dataset_dir / f"{options.name}.heldout.jsonl",
        "rejects": dataset_dir / f"{options.name}.rejects.jsonl",
    }
    rows = {
        split: [to_record(Dialogue(((p.prompt, ""),), options.system)) for p in problems]
        for split, problems in kept.items()
    }  # the answer is empty: the policy writes it, the reward server scores it
    rows["answers"] = [p.key for p in kept["train"]]
    rows["heldout"] = [p.key for p in kept["test"]]
    rows["rejects"] = rejects
    registered = {name: e for name, e in entries.items() if rows[name.rsplit("_", 1)[1]]}
    stale = tuple(name for name in entries if name not in registered)

    def move_files() -> None:
        for what, target in files.items():
            if rows[what]:
                write_jsonl(target, rows[what])
            else:
                target.unlink(missing_ok=True)

    def describe(_name: str) -> dict:
        return {
            "converter": f"{kind} prompt set",
            "sources": source_files([path]),
            "options": plain(options),
            "read": summary["read"],
            "written": summary["written"],
            "duplicates": summary["duplicates"],
            "rejected": summary["rejected"],
            "answers": {"file": files["answers"].name, "sha256": file_sha256(files["answers"])},
            "heldout": files["heldout"].name if rows["heldout"] else None,
        }

    register(dataset_dir, registered, force=options.force, remove=stale,
             before_write=move_files, describe=describe)  # fmt: skip
    summary["files"] = {what: str(target) for what, target in files.items() if rows[what]}
    return summary
