"""A review study's verdicts and corrections as LLaMA-Factory training data: DPO pairs from
each item's final verdict, SFT records from the raters' corrections; from a drafts study,
the accepted and the corrected drafts as SFT records."""

from __future__ import annotations

from pathlib import Path

from medfactory.exports import Example, Export, split_chat, write_export
from medfactory.review.settled import Reviewed
from medfactory.review.studies import find_study
from medfactory.store.db import Store


def review_export(store: Store, study_name: str) -> Export:
    """DPO pairs from final verdicts and SFT records from corrections of one study; from a
    single-answer study, the accepted and the corrected drafts as SFT records."""
    export = Export(source=f"review {study_name}")
    with store.session() as session:
        study = find_study(session, study_name)
        state = Reviewed.of(session, study)
    if study.kind == "single":
        return _draft_export(state, export)
    export.read = len(state.items)
    for item in state.items:
        system, turns, question = split_chat(item.conversation)
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


def export_study(store: Store, study_name: str, dataset_dir: Path, name: str, fmt: str,
                 split: tuple[float, ...], seed: int, force: bool) -> dict:  # fmt: skip
    """`review export`: the study's training data written and registered; the summary."""
    return write_export(
        review_export(store, study_name), dataset_dir, name, fmt, split, seed, force
    )


def _draft_export(state: Reviewed, export: Export) -> Export:
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
