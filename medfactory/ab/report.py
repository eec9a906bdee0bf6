"""The live A/B report: per arm, read back from the gateway's record.

Per arm: users, conversations, requests, answers, errors (rate with its Wilson
95 % interval), thumbs up and down with the thumbs-up rate and its Wilson
interval, corrections, TTFT and latency p50/p95, tokens. Each arm against the
first (the control): the difference in thumbs-up rate with Newcomb's 95 %
interval and a two-proportion z-test (statsmodels).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from medfactory.ab.recorder import exchanges_since
from medfactory.reporting import pyplot, write_report
from medfactory.stats.intervals import wilson
from medfactory.store.db import Experiment, Store

CLUSTER_NOTE = (
    "Rates count answers, and one user's answers are not independent: with few users "
    "rating many answers each, read the intervals as optimistic."
)


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


def _rate(count: int, total: int) -> dict:
    share, low, high = wilson(count, total)
    return {
        "count": count,
        "n": total,
        "rate": _none(share),
        "low": _none(low),
        "high": _none(high),
    }


def _none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def arm_summary(rows: list[dict]) -> dict:
    answered = [r for r in rows if not r["error"]]
    up = sum(1 for r in rows if r["rating"] == 1)
    down = sum(1 for r in rows if r["rating"] == -1)
    return {
        "users": len({r["user"] for r in rows}),
        "conversations": len({(r["user"], r["conversation"]) for r in rows}),
        "requests": len(rows),
        "answers": len(answered),
        "errors": _rate(len(rows) - len(answered), len(rows)),
        "thumbs_up": up,
        "thumbs_down": down,
        "thumbs_up_rate": _rate(up, up + down),
        "corrections": sum(1 for r in rows if r["correction"]),
        "comments": sum(1 for r in rows if r["comment"]),
        "ttft_s": _quantiles([r["ttft"] for r in answered if r["ttft"] is not None]),
        "latency_s": _quantiles([r["latency"] for r in answered if r["latency"] is not None]),
        "tokens": {
            "prompt": sum(r["prompt_tokens"] or 0 for r in answered),
            "completion": sum(r["completion_tokens"] or 0 for r in answered),
        },
    }


def compare(arm: dict, control: dict) -> dict:
    """Thumbs-up rate of `arm` minus the control's: Newcomb interval, z-test p-value."""
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    a, b = arm["thumbs_up_rate"], control["thumbs_up_rate"]
    if not a["n"] or not b["n"]:
        return {"difference": None, "low": None, "high": None, "p_value": None}
    low, high = confint_proportions_2indep(
        a["count"], a["n"], b["count"], b["n"], method="newcomb", compare="diff"
    )
    counts, totals = [a["count"], b["count"]], [a["n"], b["n"]]
    if a["count"] + b["count"] in (0, a["n"] + b["n"]):
        p_value = 1.0  # every thumb the same way in both arms: no difference to test
    else:
        p_value = float(proportions_ztest(counts, totals)[1])
    return {
        "difference": a["rate"] - b["rate"],
        "low": float(low),
        "high": float(high),
        "p_value": p_value,
    }


def build_ab_report(store: Store, experiment: str, since: float | None = None) -> dict:
    from sqlalchemy import select

    rows = exchanges_since(store, experiment, since)
    with store.session() as session:
        configured = session.scalar(select(Experiment.arms).where(Experiment.name == experiment))
    order = [arm["name"] for arm in configured or []]
    order += sorted({r["arm"] for r in rows} - set(order))  # arms since dropped
    arms = {name: arm_summary([r for r in rows if r["arm"] == name]) for name in order}
    control = order[0] if order else None
    comparisons = [
        {"arm": name, "control": control, **compare(arms[name], arms[control])}
        for name in order[1:]
    ]
    return {
        "experiment": experiment,
        "since": since,
        "generated_at": time.time(),
        "arms": arms,
        "comparisons": comparisons,
        "test": "thumbs-up rate: Wilson 95 % per arm; difference: Newcomb 95 %, "
        "two-proportion z-test",
        "notes": [CLUSTER_NOTE],
    }


def _pct(entry: dict) -> str:
    if entry["rate"] is None:
        return "-"
    return f"{entry['rate']:.1%} [{entry['low']:.1%}, {entry['high']:.1%}]"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def markdown(report: dict, chart: str | None) -> str:
    lines = [f"# Live A/B report: {report['experiment']}", ""]
    header = (
        "| arm | users | conversations | answers | errors | thumbs up / down | thumbs-up rate "
        "[95 %] | corrections | TTFT p50 / p95 ms | latency p50 / p95 ms | tokens in / out |"
    )
    lines += [header, "|" + "---|" * 11]
    for name, arm in report["arms"].items():
        lines.append(
            f"| {name} | {arm['users']} | {arm['conversations']} | {arm['answers']} | "
            f"{arm['errors']['count']} ({_pct(arm['errors'])}) | {arm['thumbs_up']} / "
            f"{arm['thumbs_down']} | {_pct(arm['thumbs_up_rate'])} | {arm['corrections']} | "
            f"{_ms(arm['ttft_s']['p50'])} / {_ms(arm['ttft_s']['p95'])} | "
            f"{_ms(arm['latency_s']['p50'])} / {_ms(arm['latency_s']['p95'])} | "
            f"{arm['tokens']['prompt']} / {arm['tokens']['completion']} |"
        )
    for c in report["comparisons"]:
        lines.append("")
        if c["difference"] is None:
            lines.append(f"{c['arm']} against {c['control']}: no thumbs in one of them yet.")
        else:
            lines.append(
                f"{c['arm']} against {c['control']}: thumbs-up rate {c['difference']:+.1%} "
                f"[{c['low']:+.1%}, {c['high']:+.1%}], p = {c['p_value']:.3g}"
            )
    lines += ["", report["test"] + ".", "", *report["notes"]]
    if chart:
        lines += ["", f"![thumbs-up rate per arm]({chart})"]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> Path:
    plt = pyplot()

    names = list(report["arms"])
    rates = [report["arms"][n]["thumbs_up_rate"] for n in names]
    values = [r["rate"] if r["rate"] is not None else 0.0 for r in rates]
    below = [
        v - r["low"] if r["rate"] is not None else 0.0 for v, r in zip(values, rates, strict=True)
    ]
    above = [
        r["high"] - v if r["rate"] is not None else 0.0 for v, r in zip(values, rates, strict=True)
    ]
    figure, axis = plt.subplots(figsize=(1.6 + 1.4 * len(names), 3.2))
    axis.bar(names, values, yerr=[below, above], capsize=6, color="#4c78a8")
    axis.set_ylim(0, 1)
    axis.set_ylabel("thumbs-up rate (95 % Wilson)")
    axis.set_title(f"A/B {report['experiment']}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_ab_report(store: Store, experiment: str, out: Path, since: float | None = None) -> dict:
    """report.json, report.md and report.png in `out`; returns the report."""
    return write_report(build_ab_report(store, experiment, since), out, markdown, chart)
