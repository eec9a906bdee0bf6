"""The report of a single-answer study (doctors reviewing a model's drafts).

Per verdict (accept, edit, reject): how many ratings gave it, and how many
items ended with it (the arbiter's verdict, or every assigned rater's, the same;
as the export counts them), with Wilson 95 % intervals; the items still
unsettled. Agreement: Cohen's kappa on verdicts per rater pair and
Krippendorff's alpha over all raters (nominal), as in the A/B report; how often
raters who both edited wrote the same answer.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from medfactory.reporting import number, pyplot
from medfactory.review.rating import arbitrated_verdicts, current_ratings, edited_alike
from medfactory.review.settled import final_verdict
from medfactory.review.studies import find_study
from medfactory.stats import agreement
from medfactory.stats.intervals import wilson
from medfactory.store.db import SINGLE_VERDICTS, Assignment, Item, Store


def _shares(counts: Counter, total: int) -> dict:
    return {
        verdict: dict(zip(("share", "low", "high"), wilson(counts[verdict], total), strict=True))
        | {"count": counts[verdict]}
        for verdict in SINGLE_VERDICTS
    }


def build_draft_report(store: Store, name: str) -> dict:
    with store.session() as session:
        study = find_study(session, name)
        rows = current_ratings(session, study.id)
        items = session.scalar(
            select(func.count()).select_from(Item).where(Item.study_id == study.id)
        )
        arbitrated = arbitrated_verdicts(session, study.id)
        assigned = Counter(
            session.scalars(select(Assignment.item_id).join(Item).where(Item.study_id == study.id))
        )
    by_item: dict[int, list] = defaultdict(list)
    for row in rows:
        by_item[row.item_id].append(row)
    before = Counter(row.Rating.verdict for row in rows)
    final, unsettled, same_edit, both_edit = Counter(), 0, 0, 0
    for item_id, rated in by_item.items():
        ratings = [row.Rating for row in rated]
        if len(ratings) > 1 and all(r.verdict == "edit" for r in ratings):
            both_edit += 1
            same_edit += edited_alike(ratings)
        verdict = final_verdict(arbitrated.get(item_id), ratings, assigned[item_id])
        if verdict in SINGLE_VERDICTS:  # as the export settles it
            final[verdict] += 1
        else:
            unsettled += 1
    given = {(row.rater, row.item_id): row.Rating.verdict for row in rows}
    raters = sorted({row.rater for row in rows})
    pairs = {}
    for a, b in itertools.combinations(raters, 2):
        shared = [i for i in by_item if (a, i) in given and (b, i) in given]
        x, y = [given[a, i] for i in shared], [given[b, i] for i in shared]
        pairs[f"{a}|{b}"] = {
            "items": len(shared),
            "kappa": agreement.kappa(x, y),
            "agreement": float(np.mean([p == q for p, q in zip(x, y, strict=True)]))
            if shared
            else None,
        }
    codes = {verdict: n for n, verdict in enumerate(SINGLE_VERDICTS)}
    alpha = agreement.alpha(
        [[codes[given[r, i]] if (r, i) in given else np.nan for i in by_item] for r in raters],
        "nominal",
    )
    return {
        "study": name,
        "kind": "single",
        "items": items,
        "ratings": len(rows),
        "rated_items": len(by_item),
        "arbitrated": len(arbitrated),
        "unsettled": unsettled,
        "before_arbitration": _shares(before, len(rows)),
        "after_arbitration": _shares(final, sum(final.values())),
        "edits": {"both_edited": both_edit, "same_text": same_edit},
        "agreement": {"pairs": pairs, "overall": {"verdict_alpha_nominal": alpha}},
    }


def draft_markdown(report: dict, chart: str | None) -> str:
    def cell(entry: dict) -> str:
        if not entry["count"]:
            return "0"
        share, low, high = (100 * entry[k] for k in ("share", "low", "high"))
        return f"{entry['count']} ({share:.0f} % [{low:.0f}, {high:.0f}])"

    lines = [
        f"# Draft review: {report['study']}",
        "",
        f"{report['items']} drafts, {report['ratings']} ratings, {report['arbitrated']} "
        f"arbitrated, {report['unsettled']} still unsettled.",
        "",
        "| verdict | ratings | final |",
        "|---|---|---|",
    ]
    for verdict in SINGLE_VERDICTS:
        lines.append(
            f"| {verdict} | {cell(report['before_arbitration'][verdict])} | "
            f"{cell(report['after_arbitration'][verdict])} |"
        )
    lines += ["", "| raters | items | Cohen's kappa | agreement |", "|---|---|---|---|"]
    for pair, entry in report["agreement"]["pairs"].items():
        lines.append(
            f"| {pair.replace('|', ' & ')} | {entry['items']} | {number(entry['kappa'])} | "
            f"{number(entry['agreement'])} |"
        )
    alpha = report["agreement"]["overall"]["verdict_alpha_nominal"]
    edits = report["edits"]
    lines += [
        "",
        f"Krippendorff's alpha (nominal) over all raters: {number(alpha)}. "
        f"Both raters edited {edits['both_edited']} drafts, {edits['same_text']} the same way.",
    ]
    if chart:
        lines += ["", f"![verdicts]({chart})"]
    return "\n".join(lines) + "\n"


def draft_chart(report: dict, path: Path) -> Path:
    plt = pyplot()

    figure, ax = plt.subplots(figsize=(7, 2.2))
    colours = {"accept": "#2e7d32", "edit": "#f9a825", "reject": "#c62828"}
    stages = ["before_arbitration", "after_arbitration"]
    left = np.zeros(len(stages))
    for verdict in SINGLE_VERDICTS:
        shares = np.array([np.nan_to_num(report[s][verdict]["share"]) for s in stages])
        ax.barh(["ratings", "final"], shares, left=left, color=colours[verdict], label=verdict)
        left += shares
    ax.set(xlim=(0, 1), xlabel="share")
    ax.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
