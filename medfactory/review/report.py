"""The study report, every number read back from the store.

Per version: wins, ties, losses and both-unacceptable with Wilson 95 %
intervals, counted over every rating (before arbitration) and over each
item's settled verdict (after: the arbiter's where there is one, else the one
every assigned rater gave; items waiting for their other raters and items whose
raters disagree are left out and counted). Per axis: each version's mean score,
and the paired difference of two versions rated side by side with its 95 % t
interval. Agreement: Cohen's kappa on verdicts and quadratic-weighted kappa on scores per rater pair
(scikit-learn), Krippendorff's alpha over all raters (nominal for verdicts,
ordinal for scores). Position bias: how often the answer shown first wins a
decisive rating. Bradley-Terry ratings on the Elo scale (Chatbot Arena's
logistic-regression fit) with bootstrap intervals, plain and with style control
(length and Markdown differences as covariates).

Which items are settled, waiting or disputed is the settled rule's (settled.py), the
same as the export's.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sqlalchemy import select

from medfactory.reporting import number, pyplot
from medfactory.reporting import write_report as save
from medfactory.review.draft_report import build_draft_report, draft_chart, draft_markdown
from medfactory.review.errors import StudyError
from medfactory.review.settled import DISPUTED, NOT_RATED, WAITING, Reviewed, listed
from medfactory.review.studies import find_study
from medfactory.stats.agreement import alpha, kappa, paired_difference
from medfactory.stats.intervals import wilson
from medfactory.stats.ratings import bradley_terry, style_controlled
from medfactory.store.db import Store, Version

OUTCOMES = ("win", "tie", "loss", "both_bad")


def outcomes(verdicts: list[tuple[int, int, str]], version_ids: list[int]) -> dict:
    """Per version: outcome counts and shares over (left id, right id, verdict) triples."""
    counts = {v: Counter() for v in version_ids}
    for left, right, verdict in verdicts:
        if verdict in ("tie", "both_bad"):
            counts[left][verdict] += 1
            counts[right][verdict] += 1
        else:
            winner, loser = (left, right) if verdict == "left" else (right, left)
            counts[winner]["win"] += 1
            counts[loser]["loss"] += 1
    result = {}
    for version, counter in counts.items():
        total = sum(counter.values())
        result[version] = {"n": total} | {
            o: dict(
                zip(
                    ("count", "share", "low", "high"),
                    (counter[o], *wilson(counter[o], total)),
                    strict=True,
                )
            )
            for o in OUTCOMES
        }
    return result


def build_report(store: Store, name: str) -> dict:
    with store.session() as session:
        study = find_study(session, name)
        versions = session.scalars(
            select(Version).where(Version.study_id == study.id).order_by(Version.id)
        ).all()
        state = Reviewed.of(session, study, chats=False)
        axes = list(study.axes)
    rows = state.rows
    if not rows:
        raise StudyError(
            f"study {name!r} has no ratings yet; send the raters their links "
            f"(`medfactory review serve {name}`) or sheets (`medfactory review sheet`)"
        )
    names = {v.id: v.name for v in versions}
    ids = [v.id for v in versions]
    by_item: dict[int, list] = defaultdict(list)
    for row in rows:
        by_item[row.item_id].append(row)

    before = [(row.left_id, row.right_id, row.Rating.verdict) for row in rows]
    settled = [(item, verdict) for item in state.items if (verdict := state.verdict(item))]
    final = [(item.left_id, item.right_id, verdict) for item, verdict in settled]
    placed = state.positions()

    # Scores: per version, and paired per pair of versions rated side by side.
    per_version = {v: {a: [] for a in axes} for v in ids}
    paired = defaultdict(lambda: {a: ([], []) for a in axes})
    for row in rows:
        for axis in axes:
            left, right = row.Rating.scores[axis]
            per_version[row.left_id][axis].append(left)
            per_version[row.right_id][axis].append(right)
            x, y = paired[(row.left_id, row.right_id)][axis]
            x.append(left)
            y.append(right)
    axis_means = {
        names[v]: {a: (float(np.mean(s)) if s else None) for a, s in scores.items()}
        for v, scores in per_version.items()
    }
    differences = {
        f"{names[right]} - {names[left]}": {a: paired_difference(*pair[a]) for a in axes}
        for (left, right), pair in paired.items()
    }

    # Agreement: per rater pair on the items both rated, and over everyone.
    raters = sorted({row.rater for row in rows})
    given = {(row.rater, row.item_id): row.Rating for row in rows}
    pairs = {}
    for a, b in itertools.combinations(raters, 2):
        shared = sorted(i for (r, i) in given if r == a and (b, i) in given)
        if not shared:
            continue
        entry = {
            "items": len(shared),
            "verdict_kappa": kappa(
                [given[a, i].verdict for i in shared], [given[b, i].verdict for i in shared]
            ),
        }
        for axis in axes:
            xs = [s for i in shared for s in given[a, i].scores[axis]]
            ys = [s for i in shared for s in given[b, i].scores[axis]]
            entry[f"{axis}_weighted_kappa"] = kappa(xs, ys, weights="quadratic")
        pairs[f"{a} ~ {b}"] = entry
    units = sorted(by_item)
    code = {v: n for n, v in enumerate(("left", "right", "tie", "both_bad"))}
    overall = {
        "verdict_alpha_nominal": alpha(
            [[code[given[r, i].verdict] if (r, i) in given else np.nan for i in units]
             for r in raters],
            "nominal",
        )
    }  # fmt: skip
    for axis in axes:
        overall[f"{axis}_alpha_ordinal"] = alpha(
            [[given[r, i].scores[axis][side] if (r, i) in given else np.nan
              for i in units for side in (0, 1)] for r in raters],
            "ordinal",
        )  # fmt: skip

    decisive = [(row.left_first, row.Rating.verdict) for row in rows
                if row.Rating.verdict in ("left", "right")]  # fmt: skip
    first_wins = sum((verdict == "left") == left_first for left_first, verdict in decisive)
    share, low, high = wilson(first_wins, len(decisive))
    report = {
        "study": name,
        "versions": [{"name": v.name, "path": v.path} for v in versions],
        "axes": axes,
        "items": len(state.items),
        "ratings": len(rows),
        "rated_items": len(by_item),
        "settled": len(settled),
        "arbitrated": len(state.arbitrations),
        "waiting": len(placed[WAITING]),
        "waiting_items": placed[WAITING],
        "unresolved": len(placed[DISPUTED]),
        "not_rated": len(placed[NOT_RATED]),
        "before_arbitration": {names[v]: o for v, o in outcomes(before, ids).items()},
        "after_arbitration": {names[v]: o for v, o in outcomes(final, ids).items()},
        "axis_means": axis_means,
        "paired_differences": differences,
        "agreement": {"pairs": pairs, "overall": overall},
        "position_bias": {
            "decisive": len(decisive),
            "first_shown_wins": first_wins,
            "share": share,
            "low": low,
            "high": high,
        },
        "median_seconds": median_seconds(rows),
        "rated_from_sheets": rated_from_sheets(rows),
    }
    report.update(ratings_of_versions(settled, names, study.seed))
    return report


def median_seconds(rows: list) -> dict[str, float | None]:
    """Per rater, the median seconds of their timed ratings; None where none is timed."""
    seconds = {row.rater: [] for row in rows}
    for row in rows:
        if row.Rating.seconds is not None:
            seconds[row.rater].append(row.Rating.seconds)
    return {r: float(np.median(s)) if s else None for r, s in sorted(seconds.items())}


def rated_from_sheets(rows: list) -> list[str]:
    """The raters whose every rating came from a sheet, which carries no timing."""
    sources = defaultdict(set)
    for row in rows:
        sources[row.rater].add(row.Rating.source)
    return sorted(r for r, s in sources.items() if s == {"sheet"})


def ratings_of_versions(settled: list[tuple], names: dict[int, str], seed: int) -> dict:
    """Bradley-Terry ratings over the settled decisive verdicts, plain and with style
    control (answer length and Markdown as covariates); nothing without a decisive one."""
    games = [
        (item.left_id, item.right_id, item.left_answer, item.right_answer)
        if verdict == "left"
        else (item.right_id, item.left_id, item.right_answer, item.left_answer)
        for item, verdict in settled
        if verdict in ("left", "right")
    ]
    if len(names) < 2 or not games:
        return {}
    ids = list(names)
    plain = bradley_terry([(winner, loser) for winner, loser, _, _ in games], ids, seed)
    styled = style_controlled(games, ids, seed)
    return {
        "bradley_terry": {names[v]: r for v, r in plain.items()},
        "style_controlled": {
            "ratings": {names[v]: r for v, r in styled["ratings"].items()},
            "style": styled["style"],
        },
    }


def _cell(entry: dict) -> str:
    if entry["count"] == 0 and math.isnan(entry["share"]):
        return "-"
    share, low, high = (100 * entry[k] for k in ("share", "low", "high"))
    return f"{entry['count']} ({share:.0f} % [{low:.0f}, {high:.0f}])"


def markdown(report: dict, chart: str | None) -> str:
    lines = [
        f"# Clinician review: {report['study']}",
        "",
        f"{report['items']} items, {report['ratings']} ratings. Settled {report['settled']} "
        f"({report['arbitrated']} by the arbiter), waiting for their other raters "
        f"{report['waiting']}, still disputed {report['unresolved']}, not rated "
        f"{report['not_rated']}. After arbitration counts the settled items only. Shares "
        "with Wilson 95 % intervals.",
        "",
    ]
    if report["waiting_items"]:
        lines += [f"Waiting: {listed(report['waiting_items'])}.", ""]
    for stage in ("before_arbitration", "after_arbitration"):
        lines += [
            f"## {stage.replace('_', ' ').capitalize()}",
            "",
            "| version | n | win | tie | loss | both unacceptable |",
            "|---|---|---|---|---|---|",
        ]
        for version, o in report[stage].items():
            lines.append(
                f"| {version} | {o['n']} | " + " | ".join(_cell(o[k]) for k in OUTCOMES) + " |"
            )
        lines.append("")
    lines += [
        "## Scores (1-5)",
        "",
        "| version | " + " | ".join(report["axes"]) + " |",
        "|---" * (len(report["axes"]) + 1) + "|",
    ]
    for version, means in report["axis_means"].items():
        lines.append(
            f"| {version} | " + " | ".join(number(means[a]) for a in report["axes"]) + " |"
        )
    for label, axes in report["paired_differences"].items():
        lines += [
            "",
            f"Paired difference {label} (95 % t interval): "
            + "; ".join(
                f"{a} {number(d['mean'])} [{number(d['low'])}, {number(d['high'])}]"
                for a, d in axes.items()
            ),
        ]
    lines += [
        "",
        "## Agreement",
        "",
        "| raters | items | verdict kappa | "
        + " | ".join(f"{a} weighted kappa" for a in report["axes"])
        + " |",
        "|---" * (len(report["axes"]) + 3) + "|",
    ]
    for pair, entry in report["agreement"]["pairs"].items():
        lines.append(
            f"| {pair} | {entry['items']} | {number(entry['verdict_kappa'])} | "
            + " | ".join(number(entry[f"{a}_weighted_kappa"]) for a in report["axes"])
            + " |"
        )
    lines += [
        "",
        "Krippendorff's alpha over all raters: "
        + ", ".join(f"{k} {number(v)}" for k, v in report["agreement"]["overall"].items()),
    ]
    bias = report["position_bias"]
    lines += [
        "",
        f"Position bias: the answer shown first won {bias['first_shown_wins']} of "
        f"{bias['decisive']} decisive ratings "
        f"({number(100 * bias['share'] if bias['decisive'] else None, 0)} %).",
        "",
        "Median seconds per item: "
        + ", ".join(_timing(r, s, report) for r, s in report["median_seconds"].items()),
    ]
    if "bradley_terry" in report:
        lines += ["", *bradley_terry_markdown(report)]
    if chart:
        lines += ["", f"![outcomes]({chart})"]
    return "\n".join(lines) + "\n"


def _timing(rater: str, seconds: float | None, report: dict) -> str:
    if seconds is not None:
        return f"{rater} {seconds:.0f} s"
    if rater in report.get("rated_from_sheets", ()):
        return f"{rater} from sheets: no timing"
    return f"{rater} -"


def bradley_terry_markdown(report: dict) -> list[str]:
    plain, styled = report["bradley_terry"], report["style_controlled"]
    lines = [
        "## Bradley-Terry (Elo scale, settled decisive verdicts)",
        "",
        "| version | rating | 95 % interval | style-controlled | 95 % interval |",
        "|---|---|---|---|---|",
    ]
    for version, r in sorted(plain.items(), key=lambda kv: -kv[1]["rating"]):
        s = styled["ratings"][version]
        lines.append(
            f"| {version} | {r['rating']:.0f} | [{r['low']:.0f}, {r['high']:.0f}] | "
            f"{s['rating']:.0f} | [{s['low']:.0f}, {s['high']:.0f}] |"
        )
    terms = [
        f"{term} {number(c['value'])} [{number(c['low'])}, {number(c['high'])}]"
        if c
        else f"{term} - (never differs)"
        for term, c in styled["style"].items()
    ]
    return lines + [
        "",
        "Style control fits each answer's length and Markdown (headers, bold, list items) "
        "beside the versions; a positive coefficient (logits per standard deviation) means "
        "the longer or more formatted answer tends to win: " + "; ".join(terms) + ".",
    ]


def chart(report: dict, path: Path) -> Path:
    plt = pyplot()

    versions = list(report["after_arbitration"])
    figure, axes = plt.subplots(1, 2, figsize=(10, 1.2 + 0.6 * len(versions)), sharey=True)
    colours = {"win": "#2e7d32", "tie": "#9e9e9e", "loss": "#c62828", "both_bad": "#6a1b9a"}
    for ax, stage in zip(axes, ("before_arbitration", "after_arbitration"), strict=True):
        left = np.zeros(len(versions))
        for outcome in OUTCOMES:
            shares = np.array([np.nan_to_num(report[stage][v][outcome]["share"]) for v in versions])
            ax.barh(versions, shares, left=left, color=colours[outcome], label=outcome)
            left += shares
        ax.set(xlim=(0, 1), title=stage.replace("_", " "), xlabel="share of comparisons")
    axes[1].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(store: Store, name: str, out: Path) -> dict:
    """report.json, report.md and report.png in `out`; returns the report."""
    with store.session() as session:
        kind = find_study(session, name).kind
    if kind == "single":
        return save(build_draft_report(store, name), out, draft_markdown, draft_chart)
    return save(build_report(store, name), out, markdown, chart)


def report_markdown(report: dict) -> str:
    """The report as Markdown, whichever kind of study it is of."""
    if report.get("kind") == "single":
        return draft_markdown(report, None)
    return markdown(report, None)
