"""A review study's verdicts and corrections as LLaMA-Factory training data: DPO pairs from
each item's final verdict, SFT records from the raters' corrections; from a drafts study,
the accepted and the corrected drafts as SFT records."""

from __future__ import annotations

import time
from pathlib import Path

from medfactory.access.audit import export_details, record
from medfactory.exports import Example, Export, split_chat, write_export
from medfactory.review.settled import Reviewed
from medfactory.review.studies import find_study
from medfactory.store.db import Rater, Store


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
