"""`rag eval`: how often the passage that answers a question is among the top k.

A question file is JSON lines, each `{"question", "answer_contains"}` (a phrase
the answering passage contains; case, spaces and line breaks do not matter)
or `{"question", "source"}` (the document, optionally `FILE#heading`); a line
with both needs a passage that satisfies both. Recall@k is the share of
questions answered within the first k passages, MRR the mean of 1 / the rank
of the first answering passage (0 when none is within --top).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from medfactory.rag.errors import RagError
from medfactory.rag.search import Passage, Retriever, check_top
from medfactory.reporting import number, read_jsonl, write_report

KEYS = ("question", "answer_contains", "source")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Question:
    line: int
    question: str
    answer_contains: str | None
    source: str | None

    def expected(self) -> str:
        parts = [f"contains {self.answer_contains!r}" if self.answer_contains else "",
                 f"from {self.source}" if self.source else ""]  # fmt: skip
        return ", ".join(part for part in parts if part)

    def answered_by(self, passage: Passage | dict) -> bool:
        get = passage.get if isinstance(passage, dict) else lambda key: getattr(passage, key)
        if self.answer_contains and _fold(self.answer_contains) not in _fold(get("text")):
            return False
        if self.source:
            file, _, heading = self.source.partition("#")
            named = get("file")
            if not (named == file or named.endswith("/" + file)):
                return False
            if heading and get("heading").strip() != heading.strip():
                return False
        return True


def _fold(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def read_questions(path: Path) -> list[Question]:
    """The question file, every mistake named by its line."""
    path = Path(path)
    if not path.is_file():
        raise RagError(f"--questions {path}: no such file")
    questions = []
    for line, text in read_jsonl(path):
        where = f"{path}:{line}"
        try:
            row = json.loads(text)
        except ValueError as error:
            raise RagError(f"{where}: not JSON ({error})") from None
        if not isinstance(row, dict):
            raise RagError(f"{where}: expected an object with {', '.join(KEYS)}")
        unknown = sorted(set(row) - set(KEYS))
        if unknown:
            raise RagError(f"{where}: unknown key {unknown[0]!r}; keys are {', '.join(KEYS)}")
        values = {key: row.get(key) for key in KEYS}
        for key, value in values.items():
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise RagError(f"{where}: {key!r} must be non-empty text")
        if not values["question"]:
            raise RagError(f"{where}: no 'question'")
        if not values["answer_contains"] and not values["source"]:
            raise RagError(f"{where}: give 'answer_contains' (a phrase of the answering "
                           "passage) or 'source' (FILE or FILE#heading)")  # fmt: skip
        questions.append(Question(line, **values))
    if not questions:
        raise RagError(f"--questions {path}: no questions in the file")
    return questions


def evaluate(retriever: Retriever, questions: list[Question], top: int = 3) -> dict:
    """Recall@1..top and MRR of `questions` over the retriever's index."""
    check_top(top)
    documents = retriever.manifest["files"]
    rows, first_hits = [], []
    for question in questions:
        if question.source:
            file = question.source.partition("#")[0]
            if not any(name == file or name.endswith("/" + file) for name in documents):
                raise RagError(
                    f"line {question.line}: source {file!r} is not a document of index "
                    f"{retriever.name!r} (its documents: {', '.join(sorted(documents))})"
                )
        passages = retriever.search(question.question, top)
        hit = next((p.rank for p in passages if question.answered_by(p)), None)
        first_hits.append(hit)
        rows.append({
            "line": question.line, "question": question.question,
            "expected": question.expected(), "rank": hit,
            "answerable": any(question.answered_by(chunk) for chunk in retriever.chunks),
            "retrieved": [f"{p.file}#{p.heading}" if p.heading else p.file for p in passages],
        })  # fmt: skip
    count = len(questions)
    return {
        "index": retriever.name,
        "mode": retriever.mode,
        "top": top,
        "questions": count,
        "recall": {
            str(k): sum(h is not None and h <= k for h in first_hits) / count
            for k in range(1, top + 1)
        },  # fmt: skip
        "mrr": sum(1 / h for h in first_hits if h) / count,
        "not_in_index": [row["line"] for row in rows if not row["answerable"]],
        "rows": rows,
    }


def evaluate_file(name: str, questions: Path, top: int, out: Path | None,
                  index_dir: Path | None = None, **options) -> dict:  # fmt: skip
    """`rag eval`: read, evaluate, write report.json and report.md into `out`
    [default: INDEX_DIR/NAME/eval/MODE]."""
    from medfactory.rag.store import index_folder

    check_top(top)
    asked = read_questions(questions)
    retriever = Retriever.open(name, index_dir, **options)
    report = {**evaluate(retriever, asked, top), "questions_file": str(questions)}
    out = Path(out) if out else index_folder(name, index_dir) / "eval" / retriever.mode
    write_report(report, out, to_markdown)
    report["out"] = str(out)
    return report


def to_markdown(report: dict, _chart: str | None = None) -> str:
    top = report["top"]
    lines = [
        f"# Retrieval: index `{report['index']}` ({report['mode']})",
        "",
        f"{report['questions']} questions from `{report['questions_file']}`; a question counts "
        f"as found at k when a passage among the first k answers it.",
        "",
        "| " + " | ".join(f"recall@{k}" for k in range(1, top + 1)) + f" | MRR@{top} |",
        "|" + "---:|" * (top + 1),
        "| "
        + " | ".join(number(report["recall"][str(k)]) for k in range(1, top + 1))
        + f" | {number(report['mrr'])} |",
        "",
    ]
    if report["not_in_index"]:
        lines += [f"No passage of the index answers the questions of lines "
                  f"{', '.join(map(str, report['not_in_index']))}: no retrieval can find them.",
                  ""]  # fmt: skip
    missed = [row for row in report["rows"] if row["rank"] is None]
    if missed:
        lines += [f"## Not within the top {top}", "", "| line | question | expected | retrieved |",
                  "|---:|---|---|---|"]  # fmt: skip
        for row in missed:
            cells = [str(row["line"]), row["question"], row["expected"],
                     "; ".join(row["retrieved"]) or "-"]  # fmt: skip
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
