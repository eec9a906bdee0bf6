"""Rubric grading the HealthBench way, by a judge model behind any OpenAI-compatible endpoint.

EvalScope's HealthBench implementation supplies the grader prompt, the reply
schema, the per-item score (points of the criteria met over the positive
points), the per-axis scores and the clipped mean; this module adds what grading
*existing* predictions needs: rubrics matched to predictions, concurrent judge
calls with one retry for a reply that cannot be parsed, a cache keyed by
(item, criterion, judge) so a rerun costs nothing, bootstrap intervals, and the
calibration of the judge against a clinician review study.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from deploy.replies import ParsedReplies, reply_key
from medfactory import paths
from medfactory.evaluation.errors import JudgeError
from medfactory.evaluation.progress import Advance, Progress, no_progress
from medfactory.evaluation.scoring import conversation_of, read_predictions, split_think
from medfactory.reporting import read_jsonl, write_json
from medfactory.stats.bootstrap import bootstrap_interval, paired_bootstrap

DEFAULT_RUBRIC = "medical-default"
RUBRIC_DIR = paths.PROJECT_ROOT / "templates" / "rubrics"
RESAMPLES = 1000
MAX_TOKENS = 512  # HealthBench's reply is a short JSON object
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


@dataclass(frozen=True)
class Criterion:
    criterion: str
    points: float
    tags: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"criterion": self.criterion, "points": self.points, "tags": list(self.tags)}


@dataclass(frozen=True)
class Answer:
    """One answer to grade: where it comes from, the chat it answers, its rubric."""

    where: str
    conversation: tuple  # ((role, content), ...), ending with the user's question
    answer: str
    rubric: tuple[Criterion, ...]

    @property
    def messages(self) -> list[dict]:
        return [{"role": role, "content": content} for role, content in self.conversation]


# --- rubrics ------------------------------------------------------------------------


def _criteria(where: str, raw: object) -> tuple[Criterion, ...]:
    if not isinstance(raw, list) or not raw:
        raise JudgeError(f"{where}: `rubrics` must be a non-empty list of criteria")
    criteria = []
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not str(item.get("criterion") or "").strip():
            raise JudgeError(f"{where}: criterion {number} has no `criterion` text")
        points = item.get("points")
        if isinstance(points, bool) or not isinstance(points, int | float) or points == 0:
            raise JudgeError(f"{where}: criterion {number}: `points` must be a non-zero number")
        tags = item.get("tags") or []
        if not isinstance(tags, list) or len(set(tags)) != len(tags):
            raise JudgeError(f"{where}: criterion {number}: `tags` must be a list without repeats")
        criteria.append(Criterion(" ".join(str(item["criterion"]).split()), points, tuple(tags)))
    if not any(c.points > 0 for c in criteria):
        raise JudgeError(f"{where}: no criterion with positive points, so no score can be given")
    return tuple(criteria)


@dataclass
class Rubrics:
    """Either one rubric for every answer, or HealthBench JSONL: one per prompt."""

    source: str
    default: tuple[Criterion, ...] | None = None
    entries: list[dict] = field(default_factory=list)  # prompt_id, question, rubric, where

    @classmethod
    def load(cls, spec: str) -> Rubrics:
        named = RUBRIC_DIR / f"{spec}.yaml"
        if named.is_file() or spec == DEFAULT_RUBRIC:
            raw = yaml.safe_load(named.read_text(encoding="utf-8"))
            return cls(str(named), default=_criteria(str(named), (raw or {}).get("rubrics")))
        path = Path(spec)
        if not path.is_file():
            known = ", ".join(p.stem for p in sorted(RUBRIC_DIR.glob("*.yaml")))
            raise JudgeError(f"--rubric {spec}: no such file and no rubric of that name ({known})")
        if path.suffix in (".yaml", ".yml"):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls(str(path), default=_criteria(str(path), (raw or {}).get("rubrics")))
        entries = []
        for number, line in read_jsonl(path):
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise JudgeError(f"{where}: not a JSON line ({error})") from None
            if not isinstance(row, dict):
                raise JudgeError(f"{where}: not an object with `prompt` and `rubrics`")
            prompt = row.get("prompt")
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            if not isinstance(prompt, list) or not last_user(prompt):
                raise JudgeError(f"{where}: `prompt` must be chat messages ending with the user's")
            entries.append({
                "prompt_id": row.get("prompt_id"), "question": last_user(prompt),
                "rubric": _criteria(where, row.get("rubrics")), "where": where,
            })  # fmt: skip
        if not entries:
            raise JudgeError(f"{path}: no rubrics in the file")
        return cls(str(path), entries=entries)

    def for_predictions(self, path: Path, rows: list[dict]) -> list[tuple[Criterion, ...]]:
        """Each prediction's rubric: the default, by prompt_id, or line by line."""
        if self.default:
            return [self.default] * len(rows)
        if all(row.get("prompt_id") is not None for row in rows):
            by_id = {e["prompt_id"]: e["rubric"] for e in self.entries}
            missing = [str(row["prompt_id"]) for row in rows if row["prompt_id"] not in by_id]
            if missing:
                raise JudgeError(
                    f"{self.source} has no rubric for prompt_id {', '.join(missing[:3])} "
                    f"(of {path}); give every prediction's prompt a rubric"
                )
            return [by_id[row["prompt_id"]] for row in rows]
        if len(self.entries) != len(rows):
            raise JudgeError(
                f"{self.source} has {len(self.entries)} rubrics and {path} has {len(rows)} "
                "predictions; give one rubric per prediction in the same order, or match them "
                "by a `prompt_id` in both files"
            )
        for number, (entry, row) in enumerate(zip(self.entries, rows, strict=True), 1):
            question = last_user(conversation_of(row))
            if _squash(question) != _squash(entry["question"]):
                raise JudgeError(
                    f"{entry['where']}: its prompt ({entry['question'][:40]!r}) is not the "
                    f"question of {path} line {number} ({question[:40]!r}); keep both files "
                    "in the same order or add a `prompt_id` to both"
                )
        return [entry["rubric"] for entry in self.entries]

    def for_question(self, question: str) -> tuple[Criterion, ...] | None:
        if self.default:
            return self.default
        for entry in self.entries:
            if _squash(entry["question"]) == _squash(question):
                return entry["rubric"]
        return None


def last_user(messages: list) -> str:
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users else ""


def _squash(text: str) -> str:
    return " ".join(text.split())


def answers_of(path: Path, rubrics: Rubrics) -> list[Answer]:
    """The final answers of a predictions file (without <think>), each with its rubric."""
    rows = read_predictions(path)
    matched = rubrics.for_predictions(path, rows)
    return [
        Answer(
            f"{path}:{number}",
            tuple((m["role"], m["content"]) for m in conversation_of(row)),
            split_think(row["predict"])[1],
            rubric,
        )
        for number, (row, rubric) in enumerate(zip(rows, matched, strict=True), 1)
    ]


# --- the judge ----------------------------------------------------------------------


def parse_grade(text: str) -> dict | None:
    """The judge's {"criteria_met": bool, "explanation": str}, or None if it is not one."""
    from evalscope.benchmarks.healthbench.healthbench_adapter import RubricGrade
    from pydantic import ValidationError

    found = _JSON_OBJECT.search(text or "")
    if not found:
        return None
    try:
        grade = RubricGrade.model_validate_json(found.group(0), strict=True)
    except ValidationError:
        return None
    return {"criteria_met": grade.criteria_met, "explanation": grade.explanation}


class Judge:
    def __init__(self, replies: ParsedReplies, concurrency: int = 8, max_tokens: int = MAX_TOKENS):
        """`replies`: the judge's endpoint, with its cache of judgments."""
        self.replies, self.concurrency, self.max_tokens = replies, concurrency, max_tokens

    @property
    def endpoint(self):
        return self.replies.endpoint

    @property
    def asked(self) -> int:
        """Requests sent this run (a cached judgment sends none)."""
        return self.replies.asked

    @property
    def name(self) -> str:
        return f"{self.endpoint.model}@{self.endpoint.url}"

    def prompt(self, answer: Answer, criterion: Criterion) -> str:
        from evalscope.benchmarks.healthbench.healthbench_adapter import GRADER_TEMPLATE
        from evalscope.benchmarks.healthbench.utils import RubricItem

        chat = [*answer.messages, {"role": "assistant", "content": answer.answer}]
        conversation = "\n\n".join(f"{m['role']}: {m['content']}" for m in chat)
        item = RubricItem(criterion.criterion, criterion.points, list(criterion.tags))
        return GRADER_TEMPLATE.replace("<<conversation>>", conversation).replace(
            "<<rubric_item>>", str(item)
        )

    def grade(self, answer: Answer, criterion: Criterion) -> dict | None:
        """Whether the answer meets the criterion; asked again once if the reply does not
        parse; None (invalid, and asked again next run) after that. Cached by (answer,
        criterion, judge model)."""
        key = reply_key(
            answer.conversation, answer.answer, criterion.as_dict(), self.endpoint.model
        )
        grade, _cached = self.replies.ask(
            key, self.prompt(answer, criterion), parse_grade, keep_failures=False,
            temperature=0.0, max_tokens=self.max_tokens,
        )  # fmt: skip
        return grade

    def grade_all(
        self, answers: list[Answer], on_progress: Callable[[int], None] | None = None
    ) -> list[list[dict | None]]:
        """Per answer, per criterion: the grade or None."""
        jobs = [(i, j) for i, a in enumerate(answers) for j in range(len(a.rubric))]
        grades: list[list] = [[None] * len(a.rubric) for a in answers]

        def run(job: tuple[int, int]) -> None:
            i, j = job
            grades[i][j] = self.grade(answers[i], answers[i].rubric[j])
            if on_progress:
                on_progress(1)

        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(run, jobs))
        return grades


# --- scores -------------------------------------------------------------------------


def item_score(rubric: tuple[Criterion, ...], grades: list[dict | None]) -> dict | None:
    """HealthBench's score of one answer over its validly judged criteria, and per axis;
    None when no judged criterion has positive points."""
    from evalscope.benchmarks.healthbench.utils import (
        RubricItem,
        calculate_rubric_tag_scores,
        calculate_score,
    )

    judged = [(c, g) for c, g in zip(rubric, grades, strict=True) if g is not None]
    items = [RubricItem(c.criterion, c.points, list(c.tags)) for c, _ in judged]
    responses = [g for _, g in judged]
    overall = calculate_score(items, responses) if items else None
    if overall is None:
        return None
    _tags, axes = calculate_rubric_tag_scores(items, responses)
    return {"overall": overall, "axes": dict(axes)}


def clipped_mean(values: list[float]) -> float:
    """HealthBench's aggregate: the mean, clipped to [0, 1] (EvalScope's clipped_mean)."""
    from evalscope.metrics.aggregators.aggregators import ClippedMean

    return float(ClippedMean().agg_func(values))


def summarize(answers: list[Answer], grades: list[list[dict | None]]) -> dict:
    """Per item, per axis and overall scores with intervals, and the invalid judgments."""
    per_item, overall, axes = [], [], {}
    for answer, graded in zip(answers, grades, strict=True):
        score = item_score(answer.rubric, graded)
        per_item.append({
            "where": answer.where,
            "score": score["overall"] if score else None,
            "axes": score["axes"] if score else {},
            "criteria": [
                {**c.as_dict(), "met": g["criteria_met"] if g else None,
                 "explanation": g["explanation"] if g else None}
                for c, g in zip(answer.rubric, graded, strict=True)
            ],
        })  # fmt: skip
        if score:
            overall.append(score["overall"])
            for axis, value in score["axes"].items():
                axes.setdefault(axis, []).append(value)
    judgments = sum(len(g) for g in grades)
    invalid = sum(g is None for graded in grades for g in graded)
    return {
        "items": len(answers),
        "scored_items": len(overall),
        "judgments": judgments,
        "invalid_judgments": invalid,
        "overall": _aggregate(overall),
        "axes": {axis: _aggregate(values) for axis, values in sorted(axes.items())},
        "per_item": per_item,
    }


def _aggregate(values: list[float]) -> dict:
    """The clipped mean and its interval; None when no answer could be scored."""
    if not values:
        return {"score": None, "ci95": [None, None], "items": 0}
    return {
        "score": clipped_mean(values),
        "ci95": bootstrap_interval(values, RESAMPLES, clip=(0.0, 1.0)),
        "items": len(values),
    }


def compare_runs(runs: list[dict]) -> dict:
    """Each run after the first against the first, answer by answer (the same prompts in
    the same order): the mean score difference with a 95 % paired-bootstrap interval."""

    first = runs[0]
    result = {}
    for run in runs[1:]:
        if len(run["per_item"]) != len(first["per_item"]):
            continue  # not the same prompts: nothing to pair
        pairs = [
            (a["score"], b["score"])
            for a, b in zip(first["per_item"], run["per_item"], strict=True)
            if a["score"] is not None and b["score"] is not None
        ]
        if not pairs:
            continue
        base, candidate = (np.array(side, dtype=float) for side in zip(*pairs, strict=True))
        low, high = paired_bootstrap(base, candidate)
        result[run["file"]] = {
            "baseline": first["file"], "answers": len(pairs),
            "delta": float((candidate - base).mean()), "ci95": [low, high],
            "significant": low > 0 or high < 0,
        }  # fmt: skip
    return result


# --- a grading run ------------------------------------------------------------------

JUDGE_FILE = "judge.json"
JUDGMENTS_FILE = "judgments.jsonl"  # the cache of judgments: a rerun asks only what is new


@dataclass(frozen=True)
class Calibration:
    """A clinician review study to calibrate the judge on. `run(judge, rubrics,
    on_progress)` returns the agreement; it lives with the studies (review builds on
    evaluation, never the reverse)."""

    study: str
    run: Callable[[Judge, Rubrics, Advance], dict]


def judge_predictions(
    predictions: list[Path],
    rubric: str,
    endpoint,
    out: Path,
    concurrency: int = 8,
    calibration: Calibration | None = None,
    progress: Progress = no_progress,
    max_tokens: int = MAX_TOKENS,
) -> dict:
    """`eval judge`: grade each predictions file, compare them with the first, calibrate
    on a study; the report, also written to OUT/judge.json. `endpoint` is the judge's
    deploy.client Endpoint; every file and rubric is checked before it is asked."""
    rubrics = Rubrics.load(rubric)
    graded = [(path, answers_of(path, rubrics)) for path in predictions]
    endpoint.check()
    grader = Judge(ParsedReplies(endpoint, Path(out) / JUDGMENTS_FILE), concurrency, max_tokens)
    report = {"judge": grader.name, "rubric": rubrics.source, "runs": []}
    for path, answers in graded:
        total = sum(len(a.rubric) for a in answers)
        with progress(f"judging {path}", total) as advance:
            grades = grader.grade_all(answers, advance)
        report["runs"].append({"file": str(path), **summarize(answers, grades)})
    if len(report["runs"]) > 1:
        report["comparison"] = compare_runs(report["runs"])
    if calibration:
        with progress(f"judging study {calibration.study}", None) as advance:
            report["calibration"] = calibration.run(grader, rubrics, advance)
    report["requests"] = grader.asked
    write_json(Path(out) / JUDGE_FILE, report)
    return report
