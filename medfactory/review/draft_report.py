"""The report of a single-answer study (doctors reviewing a model's drafts).

Per verdict (accept, edit, reject): how many ratings gave it, and how many
items ended with it (the arbiter's verdict, or every assigned rater's, the same;
as the export counts them: settled.py's rule), with Wilson 95 % intervals; the items
waiting for their other raters and those still disputed. Agreement: Cohen's kappa on
verdicts per rater pair and Krippendorff's alpha over all raters (nominal), as in the
A/B report; how often raters who both edited wrote the same answer.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from medfactory.reporting import number, pyplot
from medfactory.review.rating import edited_alike
from medfactory.review.settled import DISPUTED, NOT_RATED, SETTLED, WAITING, Reviewed, listed
from medfactory.review.studies import find_study
from medfactory.stats import agreement
from medfactory.stats.intervals import wilson
from medfactory.store.db import SINGLE_VERDICTS, Store


def _shares(counts: Counter, total: int) -> dict:
    return {
        verdict: dict(zip(("share", "low", "high"), wilson(counts[verdict], total), strict=True))
        | {"count": counts[verdict]}
        for verdict in SINGLE_VERDICTS
    }


def build_draft_report(store: Store, name: str) -> dict:
    with store.session() as session:
        state = Reviewed.of(session, find_study(session, name), chats=False)
    rows = state.rows
    by_item: dict[int, list] = defaultdict(list)
    for row in rows:
        by_item[row.item_id].append(row)
    before = Counter(row.Rating.verdict for row in rows)
    final = Counter(v for item in state.items if (v := state.verdict(item)))
    placed = state.positions()
    same_edit, both_edit = 0, 0
    for rated in by_item.values():
        ratings = [row.Rating for row in rated]
        if len(ratings) > 1 and all(r.verdict == "edit" for r in ratings):
            both_edit += 1
            same_edit += edited_alike(ratings)
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
        "items": len(state.items),
        "ratings": len(rows),
        "rated_items": len(by_item),
        "settled": len(placed[SETTLED]),
        "arbitrated": len(state.arbitrations),
        "unsettled": len(placed[WAITING]) + len(placed[DISPUTED]),
        "waiting": len(placed[WAITING]),
        "waiting_items": placed[WAITING],
        "disputed": len(placed[DISPUTED]),
        "not_rated": len(placed[NOT_RATED]),
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
        f"{report['items']} drafts, {report['ratings']} ratings. Settled {report['settled']} "
        f"({report['arbitrated']} by the arbiter), waiting for their other raters "
        f"{report['waiting']}, still disputed {report['disputed']}, not rated "
        f"{report['not_rated']}.",
        "",
    ]
    if report["waiting_items"]:
        lines += [f"Waiting: {listed(report['waiting_items'])}.", ""]
    lines += [
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
