"""Safety reports: how often data or answers break the rules of templates/safety/rules.yaml.

`data lint` reads training records (a registered dataset, or an Alpaca,
ShareGPT or predictions file); `eval safety` reads a model's answers. Both
count each rule once per record, with a Wilson 95 % interval and examples.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson

from converters.conversations import Conversation, _alpaca, _sharegpt, load_conversations
from converters.records import SourceError
from converters.safety import SafetyRules
from medfactory.evaluation.scoring import conversation_of, read_predictions, split_think
from medfactory.reporting import read_jsonl, write_json
from medfactory.stats.intervals import wilson

OPENAI_TAGS = {
    "role_tag": "role", "content_tag": "content", "user_tag": "user",
    "assistant_tag": "assistant", "system_tag": "system",
}  # fmt: skip


def turns_of(conversation: Conversation) -> list[tuple[str, str]]:
    """(question, answer) pairs of a conversation, its reference answering the last question."""
    messages = [m for m in conversation.messages if m["role"] != "system"]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    questions = [m["content"] for m in messages if m["role"] == "user"]
    return list(zip(questions, [*answers, conversation.reference], strict=False))


def safety_report(
    records: list[tuple[str, list[tuple[str, str]]]], rules: SafetyRules, examples: int, source: str
) -> dict:
    """`records`: (where, question/answer pairs). Counts per rule, with examples."""
    hits: dict[str, list] = defaultdict(list)
    flagged = 0
    for where, turns in records:
        violations = rules.check(turns)
        flagged += bool(violations)
        for rule in {v.rule: v for v in violations}.values():  # each rule once per record
            hits[rule.rule].append(
                {"where": where, "matched": rule.matched, "context": rule.context}
            )
    total = len(records)
    per_rule = []
    for rule in rules.rules:
        found = hits.get(rule.id, [])
        rate, low, high = wilson(len(found), total)
        per_rule.append({
            "id": rule.id, "kind": rule.kind, "title": rule.title, "source": rule.source,
            "count": len(found), "rate": rate, "ci95": [low, high], "examples": found[:examples],
        })  # fmt: skip
    rate, low, high = wilson(flagged, total)
    return {
        "source": source,
        "rules_file": str(rules.path),
        "records": total,
        "flagged": flagged,
        "rate": rate,
        "ci95": [low, high],
        "rules": per_rule,
    }


def lint_dataset(
    target: str, dataset_dir: Path, rules_file: Path | None, examples: int, out: Path | None
) -> dict:
    """`data lint`: the report, also written to OUT/lint.json when `out` is given."""
    rules = SafetyRules.load(rules_file)
    path = Path(target)
    if path.is_file():
        records = _file_records(path)
    elif path.suffix in (".json", ".jsonl") or "/" in target:
        raise SourceError(f"{target}: no such file; pass a registered dataset name or a file")
    else:
        conversations = load_conversations(dataset_dir, target)
        records = [(f"record {n}", turns_of(c)) for n, c in enumerate(conversations, 1)]
    report = safety_report(records, rules, examples, target)
    if out:
        write_json(out / "lint.json", report)
    return report


def _file_records(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """(path:line, turns) of each record of an Alpaca, ShareGPT or predictions file."""
    try:
        rows = (
            list(enumerate(orjson.loads(path.read_bytes()), 1))
            if path.suffix != ".jsonl"
            else [(n, orjson.loads(line)) for n, line in read_jsonl(path)]
        )
    except (orjson.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceError(f"{path}: not valid JSON or JSON lines ({error})") from None
    records = []
    for number, row in rows:
        where = f"{path}:{number}"
        if not isinstance(row, dict):
            raise SourceError(f"{where}: not a JSON object")
        try:
            if "predict" in row:
                turns = [(_question(row), split_think(str(row["predict"]))[1])]
            elif "conversations" in row or "messages" in row:
                key = "messages" if "messages" in row else "conversations"
                openai_style = "role" in (row[key] or [{}])[0]
                entry = {"columns": {"messages": key}, "tags": OPENAI_TAGS if openai_style else {}}
                turns = turns_of(_sharegpt(row, entry))
            else:
                turns = turns_of(_alpaca(row, {}))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SourceError(
                f"{where}: not an Alpaca, ShareGPT or predictions record "
                f"({type(error).__name__}: {error})"
            ) from None
        records.append((where, turns))
    return records


def _question(row: dict) -> str:
    users = [m["content"] for m in conversation_of(row) if m["role"] == "user"]
    return users[-1] if users else ""


def safety_of_predictions(path: Path, rules_file: Path | None, examples: int, out: Path) -> dict:
    """`eval safety`: the rules on a model's answers (the final answer, without <think>);
    the report, also written to OUT/safety.json."""
    rules = SafetyRules.load(rules_file)
    rows = read_predictions(path)
    records = [
        (f"{path}:{n}", [(_question(row), split_think(row["predict"])[1])])
        for n, row in enumerate(rows, 1)
    ]
    report = safety_report(records, rules, examples, str(path))
    write_json(out / "safety.json", report)
    return report
