"""A review study's verdicts and corrections as LLaMA-Factory training data: DPO pairs from
each item's final verdict, SFT records from the raters' corrections; from a drafts study,
the accepted and the corrected drafts as SFT records. A study of exam questions is never
training data: its accepted questions are written as an `eval exam` file instead."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from medfactory.access.audit import export_details, record
from medfactory.exports import Example, Export, split_chat, write_export
from medfactory.reporting import write_jsonl
from medfactory.review.settled import Reviewed
from medfactory.review.studies import find_study
from medfactory.store.db import Rater, Store
from medfactory.store.errors import ExportError
from medfactory.synthesis.exam import read_options_text


def _when(seconds: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds)) if seconds else None


def review_export(store: Store, study_name: str) -> Export:
    """DPO pairs from final verdicts and SFT records from corrections of one study; from a
    single-answer study, the accepted and the corrected drafts as SFT records."""
    export = Export(source=f"review {study_name}")
    with store.session() as session:
        study = find_study(session, study_name)
        state = Reviewed.of(session, study)
        names = {r.id: r.name for r in session.query(Rater).filter(Rater.study_id == study.id)}
    rows: dict[int, list] = {}  # item id -> its current ratings with their raters' names
    for row in state.rows:
        rows.setdefault(row.item_id, []).append(row)
    raters = {item_id: [row.rater for row in rated] for item_id, rated in rows.items()}
    if study.kind == "single":
        if any(_is_exam(item) for item in state.items):
            raise ExportError(
                f"study {study_name} holds exam questions, which stay out of training data; "
                f"write the accepted ones as an exam: medfactory review export-exam "
                f"{study_name} --out FILE.jsonl"
            )
        return _draft_export(state, export, study_name, raters, names)
    export.read = len(state.items)
    for item in state.items:
        system, turns, question = split_chat(item.conversation)
        ratings = state.rated.get(item.id, [])
        for row in rows.get(item.id, []):
            rating = row.Rating
            if rating.correction.strip():
                export.examples["sft"].append(Example(
                    system, turns, question, answer=rating.correction.strip(),
                    provenance={"study": study_name, "item": item.position, "raters": [row.rater],
                                "verdict": rating.verdict, "time": _when(rating.created_at)},
                ))  # fmt: skip
        verdict = state.final_verdict(item)
        if verdict in ("left", "right"):
            chosen, rejected = (item.left_answer, item.right_answer)
            if verdict == "right":
                chosen, rejected = rejected, chosen
            export.examples["dpo"].append(Example(
                system, turns, question, chosen=chosen, rejected=rejected,
                provenance=_provenance(study_name, item, state, raters, names, verdict, ratings),
            ))  # fmt: skip
        else:
            export.skipped[verdict] += 1
    return export


def export_study(
    store: Store, study_name: str, dataset_dir: Path, name: str, fmt: str,
    split: tuple[float, ...], seed: int, force: bool, actor: str = "",
) -> dict:  # fmt: skip
    """`review export`: the study's training data written and registered; the summary."""
    summary = write_export(
        review_export(store, study_name), dataset_dir, name, fmt, split, seed, force
    )
    record(store, actor, "review-export", study_name, export_details(summary, name))
    return summary


def _provenance(study_name, item, state, raters, names, verdict, ratings) -> dict:
    """Who settled an item's verdict and when: its raters, the arbiter if one ruled."""
    arbitration = state.arbitrations.get(item.id)
    times = [r.created_at for r in ratings] + ([arbitration.created_at] if arbitration else [])
    return {
        "study": study_name, "item": item.position, "raters": sorted(raters.get(item.id, [])),
        "arbiter": names.get(arbitration.rater_id) if arbitration else None,
        "verdict": verdict, "time": _when(max(times, default=None)),
    }  # fmt: skip


def _draft_export(state: Reviewed, export: Export, study_name: str, raters: dict,
                  names: dict) -> Export:  # fmt: skip
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
                    source=_draft_source(item.source or {}),
                    provenance=_provenance(study_name, item, state, raters, names, verdict,
                                           state.rated.get(item.id, [])))
        )  # fmt: skip
    return export


def _draft_source(source: dict) -> str:
    where = source.get("file", "")
    if "chunk" in source:
        where += f"#chunk{source['chunk']}"
    if "end" in source:
        where += f"[{source['start']}:{source['end']}]"
    return where or str(source.get("id") or "")


def _is_exam(item) -> bool:
    return isinstance(item.source, dict) and "exam" in item.source


def exam_of_study(store: Store, study_name: str) -> tuple[list[dict], dict]:
    """The settled questions of an exam study in the `eval exam` format (accepted as
    drafted, or with the options and key as edited), and what was left out: rejected,
    unsettled, and edits that cannot be read as options and a key (by item, with why)."""
    with store.session() as session:
        study = find_study(session, study_name)
        state = Reviewed.of(session, study)
    if not state.items or not all(_is_exam(item) for item in state.items):
        raise ExportError(
            f"study {study_name} is not a study of exam questions (`review create --drafts "
            "NAME.exam.jsonl`, from `data synthesize --kind exam`); use `review export`"
        )
    questions, skipped, unreadable = [], Counter(), []
    for item in state.items:
        verdict = state.final_verdict(item)
        if verdict not in ("accept", "edit"):
            skipped["rejected" if verdict == "reject" else verdict] += 1
            continue
        text = item.left_answer
        if verdict == "edit":
            arbitration = state.arbitrations.get(item.id)
            text = arbitration.correction if arbitration else state.rated[item.id][0].correction
        try:
            options, key = read_options_text(text)
        except ValueError as error:
            unreadable.append({"item": item.position, "why": str(error)})
            continue
        exam = item.source["exam"]
        source = {k: v for k, v in item.source.items() if k not in ("exam", "chunk_text", "id")}
        questions.append({
            "id": exam.get("id") or str(item.position), "subject": exam.get("subject") or "",
            "question": item.conversation[-1]["content"], "options": options, "answer": key,
            "reviewed": verdict, "source": source, "study": study_name,
        })  # fmt: skip
    if unreadable:
        skipped["unreadable_edit"] = len(unreadable)
    return questions, {"skipped": dict(skipped), "unreadable": unreadable}


def export_exam(store: Store, study_name: str, out: Path, actor: str = "") -> dict:
    """`review export-exam`: the study's settled questions written to OUT (whole or not
    at all), an exam for `eval exam --benchmark OUT`; the summary."""
    questions, left_out = exam_of_study(store, study_name)
    write_jsonl(out, questions)
    summary = {
        "study": study_name, "file": str(out), "questions": len(questions),
        "edited": sum(q["reviewed"] == "edit" for q in questions), **left_out,
    }  # fmt: skip
    record(store, actor, "review-export-exam", study_name,
           {"file": str(out), "questions": len(questions)})  # fmt: skip
    return summary
