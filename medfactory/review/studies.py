"""A review study: doctors rate model output, two per item, an arbiter for disagreements.

A blind A/B study lines prediction files up (same prompts, same order), draws
the items and, with more than two versions, a pair per item; each rater sees
the two answers in an order of their own. A single-answer study takes a
model's question-answer drafts, or its multiple-choice exam questions
(`data synthesize --kind exam`, shown with their options and key): each draft
is accepted, edited or rejected. Either way each item goes to `overlap` raters, always the
least loaded. Everything drawn follows from `seed`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from medfactory.access.audit import os_user, record
from medfactory.evaluation.compare import run_names
from medfactory.evaluation.exam import exam_question
from medfactory.evaluation.scoring import conversation_of, read_predictions
from medfactory.review.errors import StudyError
from medfactory.store.db import Assignment, Item, Rater, Store, Study, Version
from medfactory.synthesis.exam import is_exam_draft, options_text

DEFAULT_AXES = ("accuracy", "safety", "completeness", "communication")  # HealthBench's
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class StudySpec:
    name: str
    predictions: list[Path]
    raters: list[str]
    arbiter: str | None = None
    overlap: int = 2
    items: int | None = None
    seed: int = 0
    axes: tuple[str, ...] = DEFAULT_AXES
    drafts: Path | None = None  # a single-answer study of these drafts, not of predictions


def line_up(paths: list[Path]) -> list[list[dict]]:
    """Each file's rows; StudyError naming the first line where two files differ."""
    if len(paths) < 2:
        raise StudyError("a study needs at least two prediction files (--a and --b)")
    runs = [read_predictions(path) for path in paths]
    first, rows = paths[0], runs[0]
    for path, other in zip(paths[1:], runs[1:], strict=True):
        for number, (a, b) in enumerate(zip(rows, other, strict=False), 1):
            for key in ("prompt", "label"):
                if a.get(key) != b.get(key):
                    raise StudyError(
                        f"{path}:{number}: its {key} differs from {first}:{number} "
                        f"({str(b.get(key))[:40]!r} vs {str(a.get(key))[:40]!r}); the files "
                        "must answer the same prompts in the same order (the same split and "
                        "--max-samples)"
                    )
        if len(other) != len(rows):
            raise StudyError(
                f"{path} has {len(other)} predictions and {first} has {len(rows)}; "
                f"they differ from line {min(len(other), len(rows)) + 1} on"
            )
    return runs


def create_study(store: Store, spec: StudySpec, actor: str = "") -> dict:
    """Make the study; returns what was made: versions, items drawn (and how many the
    files hold, for an --items beyond them) and each rater's share."""
    if not NAME_RULE.fullmatch(spec.name):
        raise StudyError(f"study name {spec.name!r}: use letters, digits, '_' and '-'")
    raters = [r.strip() for r in spec.raters if r.strip()]
    if len(set(raters)) != len(raters) or not raters:
        raise StudyError(f"--raters {','.join(spec.raters)!r}: give distinct rater names")
    if spec.arbiter in raters:
        raise StudyError(f"--arbiter {spec.arbiter!r} is also a rater; arbitrate with someone else")
    if not 1 <= spec.overlap <= len(raters):
        raise StudyError(f"--overlap {spec.overlap}: between 1 and the {len(raters)} raters")
    runs = [read_drafts(spec.drafts)] if spec.drafts else line_up(spec.predictions)
    rng = random.Random(spec.seed)
    lines = list(range(len(runs[0])))
    available = len(lines)
    if spec.items is not None and spec.items < len(lines):
        lines = sorted(rng.sample(lines, spec.items))
    with store.session() as session:
        if session.scalar(select(Study).where(Study.name == spec.name)):
            raise StudyError(f"a study named {spec.name!r} exists in this store; choose another")
        kind = "single" if spec.drafts else "pair"
        axes = [] if spec.drafts else list(spec.axes)
        study = Study(name=spec.name, seed=spec.seed, overlap=spec.overlap, axes=axes, kind=kind)
        session.add(study)
        session.flush()
        paths = [spec.drafts] if spec.drafts else spec.predictions
        names = ["drafts"] if spec.drafts else run_names(spec.predictions)
        versions = [
            Version(study_id=study.id, name=name, path=str(path))
            for name, path in zip(names, paths, strict=True)
        ]
        session.add_all(versions)
        people = [Rater(study_id=study.id, name=n, role="rater") for n in raters]
        if spec.arbiter:
            people.append(Rater(study_id=study.id, name=spec.arbiter, role="arbiter"))
        session.add_all(people)
        session.flush()
        load = dict.fromkeys(range(len(raters)), 0)
        for position, line in enumerate(lines, 1):
            if spec.drafts:
                item = _draft_item(study.id, position, line, runs[0][line], versions[0].id)
            else:
                left, right = (
                    (0, 1) if len(versions) == 2 else sorted(rng.sample(range(len(versions)), 2))
                )
                item = Item(
                    study_id=study.id,
                    position=position,
                    line=line + 1,
                    conversation=conversation_of(runs[0][line]),
                    left_id=versions[left].id,
                    right_id=versions[right].id,
                    left_answer=runs[left][line]["predict"],
                    right_answer=runs[right][line]["predict"],
                )
            session.add(item)
            session.flush()
            order = sorted(load, key=lambda r: (load[r], rng.random()))[: spec.overlap]
            for r in order:
                load[r] += 1
                session.add(
                    Assignment(
                        item_id=item.id, rater_id=people[r].id, left_first=rng.random() < 0.5
                    )
                )
    details = {"raters": raters, "arbiter": spec.arbiter}
    record(store, actor or os_user(), "study-created", spec.name, details)
    return {
        "study": spec.name,
        "kind": kind,
        "versions": [v.name for v in versions],
        "items": len(lines),
        "asked": spec.items,
        "available": available,
        "overlap": spec.overlap,
        "raters": {name: load[n] for n, name in enumerate(raters)},
        "arbiter": spec.arbiter,
    }


def created_line(made: dict) -> str:
    """What `review create` prints: the study, its raters' shares, what to run next."""
    what = "drafts" if made["kind"] == "single" else f"{len(made['versions'])} versions"
    shares = ", ".join(f"{r} {n}" for r, n in made["raters"].items())
    line = (
        f"study {made['study']}: {what}, {made['items']} items, "
        f"{made['overlap']} raters an item "
        f"({shares}); personal links: medfactory review serve {made['study']}"
    )
    if made["asked"] is not None and made["asked"] > made["available"]:
        line += (
            f"\n--items {made['asked']}: the files hold {made['available']} items, "
            f"so all {made['available']} were taken"
        )
    return line


def read_drafts(path: Path) -> list[dict]:
    """The drafts of `data synthesize` (question, answer, and their source), checked; or
    its exam questions (question, options, answer letter), checked as `eval exam` does."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(
            f"{path}: no such drafts file; write one with `medfactory data synthesize`"
        )
    drafts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            draft = json.loads(line)
        except json.JSONDecodeError as error:
            raise StudyError(f"{path}:{number}: not a JSON line ({error})") from None
        if not (
            isinstance(draft, dict)
            and isinstance(draft.get("question"), str)
            and isinstance(draft.get("answer"), str)
            and draft["question"].strip()
            and draft["answer"].strip()
        ):
            raise StudyError(f"{path}:{number}: a draft needs a non-empty question and answer")
        if is_exam_draft(draft):
            exam_question(path, number, draft)  # its options and key, as `eval exam` reads them
        drafts.append(draft)
    if len({is_exam_draft(draft) for draft in drafts}) > 1:
        raise StudyError(
            f"{path}: exam questions and question-answer drafts in one file; review them "
            "in two studies"
        )
    if not drafts:
        raise StudyError(f"{path}: no drafts in the file; nothing to review")
    return drafts


def _draft_item(study_id: int, position: int, line: int, draft: dict, version_id: int) -> Item:
    source = {
        "id": draft.get("id"),
        **(draft.get("source") if isinstance(draft.get("source"), dict) else {}),
        "chunk_text": draft.get("chunk_text") or "",
    }
    stem, answer = draft["question"].strip(), draft["answer"].strip()
    if is_exam_draft(draft):  # the options and the key are what a doctor checks and edits
        source["exam"] = {"subject": draft.get("subject"), "id": draft.get("id")}
        answer = options_text(draft["options"], answer.upper(), stem)
    return Item(
        study_id=study_id, position=position, line=line + 1,
        conversation=[{"role": "user", "content": stem}],
        left_id=version_id, right_id=version_id, left_answer=answer,
        right_answer="", source=source,
    )  # fmt: skip


def find_study(session, name: str) -> Study:
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        known = ", ".join(session.scalars(select(Study.name).order_by(Study.name))) or "none"
        raise StudyError(f"no study {name!r} in this store (studies: {known}); check --db")
    return study


def find_rater(session, study: Study, name: str) -> Rater:
    rater = session.scalar(select(Rater).where(Rater.study_id == study.id, Rater.name == name))
    if rater is None:
        known = ", ".join(session.scalars(select(Rater.name).where(Rater.study_id == study.id)))
        raise StudyError(f"{study.name} has no rater {name!r} (raters: {known})")
    return rater


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_links(store: Store, name: str, base_url: str) -> dict[str, str]:
    """A fresh personal link per rater and arbiter (older links stop working)."""
    links = {}
    with store.session() as session:
        study = find_study(session, name)
        for rater in session.scalars(
            select(Rater).where(Rater.study_id == study.id).order_by(Rater.id)
        ):
            token = secrets.token_urlsafe(24)
            rater.token_hash = token_hash(token)
            links[rater.name] = f"{base_url.rstrip('/')}/r/{token}"
    return links
