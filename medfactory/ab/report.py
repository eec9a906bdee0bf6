"""The live A/B report: per arm, read back from the gateway's record.

Per arm: users, conversations, requests, answers, errors, thumbs up and down,
corrections, TTFT and latency p50/p95, tokens. The error rate and the
thumbs-up rate, and each arm's difference from the first (the control), are
given twice:

- per answer: Wilson 95 % intervals, Newcomb's interval of the difference and a
  two-proportion z-test (statsmodels), as if every answer were independent;
- per clinician (clustered): a cluster bootstrap over users for the intervals
  and the difference, and a GEE p-value (medfactory.stats.clustered). One
  clinician's answers are alike, so these are the figures to decide on.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from medfactory.ab.recorder import exchanges_since
from medfactory.reporting import pyplot, write_report
from medfactory.stats.clustered import RESAMPLES, SEED, Clusters, clustered_rates
from medfactory.stats.intervals import wilson
from medfactory.store.db import Experiment, Store

RATES = ("thumbs_up_rate", "errors")  # each an outcome per answer, clustered by user
PER_ANSWER = (
    "per answer: Wilson 95 % per arm; difference: Newcomb 95 %, two-proportion z-test "
    "(every answer taken as independent)"
)
PER_CLINICIAN = (
    f"per clinician (clustered): 95 % cluster bootstrap over users ({RESAMPLES} resamples, "
    f"seed {SEED}) per arm and for the difference; p-value: GEE, binomial, exchangeable "
    "correlation within a user (a permutation of users between arms where GEE cannot fit)"
)
READ_ME = (
    "One clinician's answers are not independent: read the per-clinician figures; the "
    "per-answer ones are too narrow when a few clinicians give most answers."
)

ALL_ALIKE = (
    "Where every answer of an arm went the same way (a rate of 0 % or 100 %), resampling "
    "cannot widen the per-clinician interval: read the per-answer (Wilson) one there."
)


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


def _none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _per_answer(count: int, total: int) -> dict:
    share, low, high = wilson(count, total)
    return {"rate": _none(share), "low": _none(low), "high": _none(high)}


def outcomes(rows: list[dict]) -> dict[str, list[tuple[str, int]]]:
    """Per rate, its (user, outcome) pairs: a thumb up among thumbs, an error among requests."""
    return {
        "thumbs_up_rate": [
            (r["user"], int(r["rating"] == 1)) for r in rows if r["rating"] in (1, -1)
        ],
        "errors": [(r["user"], int(bool(r["error"]))) for r in rows],
    }


def arm_summary(rows: list[dict]) -> dict:
    answered = [r for r in rows if not r["error"]]
    counted = outcomes(rows)
    return {
        "users": len({r["user"] for r in rows}),
        "conversations": len({(r["user"], r["conversation"]) for r in rows}),
        "requests": len(rows),
        "answers": len(answered),
        "thumbs_up": sum(1 for r in rows if r["rating"] == 1),
        "thumbs_down": sum(1 for r in rows if r["rating"] == -1),
        **{
            rate: {
                "count": sum(o for _, o in pairs),
                "n": len(pairs),
                "per_answer": _per_answer(sum(o for _, o in pairs), len(pairs)),
            }
            for rate, pairs in counted.items()
        },
        "corrections": sum(1 for r in rows if r["correction"]),
        "comments": sum(1 for r in rows if r["comment"]),
        "ttft_s": _quantiles([r["ttft"] for r in answered if r["ttft"] is not None]),
        "latency_s": _quantiles([r["latency"] for r in answered if r["latency"] is not None]),
        "tokens": {
            "prompt": sum(r["prompt_tokens"] or 0 for r in answered),
            "completion": sum(r["completion_tokens"] or 0 for r in answered),
        },
    }


def per_answer_difference(arm: dict, control: dict) -> dict:
    """`arm`'s rate minus the control's: Newcomb interval, two-proportion z-test p-value."""
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    (k1, n1), (k2, n2) = (arm["count"], arm["n"]), (control["count"], control["n"])
    if not n1 or not n2:
        return {"difference": None, "low": None, "high": None, "p_value": None}
    low, high = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    p_value = 1.0  # every answer the same way in both arms: no difference to test
    if 0 < k1 + k2 < n1 + n2:
        p_value = float(proportions_ztest([k1, k2], [n1, n2])[1])
    return {"difference": k1 / n1 - k2 / n2, "low": float(low), "high": float(high),
            "p_value": p_value}  # fmt: skip


def _clustered(rows: list[dict], order: list[str]) -> dict[str, dict]:
    """Per rate, the cluster bootstrap's per-arm intervals and differences from the first."""
    by_arm = {name: outcomes([r for r in rows if r["arm"] == name]) for name in order}
    return {
        rate: clustered_rates({name: Clusters.of(by_arm[name][rate]) for name in order})
        for rate in RATES
    }


def served_versions(rows: list[dict], configured: list[dict] | None) -> dict[str, dict]:
    """Per arm named by a recorded version (model=models:/...), each version (NAME@VERSION)
    and the requests it took: an alias moved between two starts shows as two versions; the
    version an arm serves now is listed even before its first request."""
    versions: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.get("model_version"):
            taken = versions.setdefault(row["arm"], {})
            taken[row["model_version"]] = taken.get(row["model_version"], 0) + 1
    for arm in configured or []:
        if arm.get("version"):
            versions.setdefault(arm["name"], {}).setdefault(arm["version"], 0)
    return versions


def build_ab_report(store: Store, experiment: str, since: float | None = None) -> dict:
    from sqlalchemy import select

    rows = exchanges_since(store, experiment, since)
    with store.session() as session:
        configured = session.scalar(select(Experiment.arms).where(Experiment.name == experiment))
    order = [arm["name"] for arm in configured or []]
    order += sorted({r["arm"] for r in rows} - set(order))  # arms since dropped
    arms = {name: arm_summary([r for r in rows if r["arm"] == name]) for name in order}
    clustered = _clustered(rows, order) if order else {}
    for rate, result in clustered.items():
        for name, figures in result["rates"].items():
            arms[name][rate]["per_clinician"] = figures
    control = order[0] if order else None
    comparisons = [
        {
            "arm": name,
            "control": control,
            **{
                rate: {
                    "per_answer": per_answer_difference(arms[name][rate], arms[control][rate]),
                    "per_clinician": clustered[rate]["differences"][name],
                }
                for rate in RATES
            },
        }
        for name in order[1:]
    ]
    notes = [READ_ME]
    if any(arm[rate]["n"] and arm[rate]["count"] in (0, arm[rate]["n"]) for arm in arms.values()
           for rate in RATES):  # fmt: skip
        notes.append(ALL_ALIKE)
    return {
        "experiment": experiment,
        "since": since,
        "generated_at": time.time(),
        "arms": arms,
        "versions": served_versions(rows, configured),
        "comparisons": comparisons,
        "methods": {"per_answer": PER_ANSWER, "per_clinician": PER_CLINICIAN},
        "notes": notes,
    }


def _pct(entry: dict, sign: str = "") -> str:
    if entry.get("rate", entry.get("difference")) is None or entry["low"] is None:
        return "-"
    value = entry.get("rate", entry.get("difference"))
    return f"{value:{sign}.1%} [{entry['low']:{sign}.1%}, {entry['high']:{sign}.1%}]"


def _p(entry: dict) -> str:
    if entry["p_value"] is None:
        return "-"
    method = f" ({entry['method']})" if "method" in entry else ""
    return f"p = {entry['p_value']:.3g}{method}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


LABELS = {"thumbs_up_rate": "thumbs-up rate", "errors": "error rate"}


def markdown(report: dict, chart: str | None) -> str:
    lines = [f"# Live A/B report: {report['experiment']}", ""]
    if report.get("versions"):
        served = "; ".join(
            f"{arm}: " + ", ".join(f"{version} ({n} requests)" for version, n in taken.items())
            for arm, taken in report["versions"].items()
        )
        lines += [f"Recorded versions serving the arms: {served}.", ""]
    header = (
        "| arm | users | conversations | answers | errors | thumbs up / down | corrections "
        "| TTFT p50 / p95 ms | latency p50 / p95 ms | tokens in / out |"
    )
    lines += [header, "|" + "---|" * 10]
    for name, arm in report["arms"].items():
        lines.append(
            f"| {name} | {arm['users']} | {arm['conversations']} | {arm['answers']} | "
            f"{arm['errors']['count']} | {arm['thumbs_up']} / {arm['thumbs_down']} | "
            f"{arm['corrections']} | "
            f"{_ms(arm['ttft_s']['p50'])} / {_ms(arm['ttft_s']['p95'])} | "
            f"{_ms(arm['latency_s']['p50'])} / {_ms(arm['latency_s']['p95'])} | "
            f"{arm['tokens']['prompt']} / {arm['tokens']['completion']} |"
        )
    lines += ["", "| arm | rate | per answer [95 %] | per clinician (clustered) [95 %] |",
              "|---|---|---|---|"]  # fmt: skip
    for name, arm in report["arms"].items():
        for rate, label in LABELS.items():
            figures = arm[rate]
            clustered = figures.get("per_clinician", {"rate": None, "low": None})
            lines.append(
                f"| {name} | {label} ({figures['count']}/{figures['n']}) | "
                f"{_pct(figures['per_answer'])} | {_pct(clustered)} |"
            )
    for c in report["comparisons"]:
        lines += ["", f"{c['arm']} against {c['control']}:", "",
                  "| rate | per answer [95 %] | per clinician (clustered) [95 %] |",
                  "|---|---|---|"]  # fmt: skip
        for rate, label in LABELS.items():
            answer, clinician = c[rate]["per_answer"], c[rate]["per_clinician"]
            if answer["difference"] is None:
                lines.append(f"| {label} | none in one arm yet | - |")
                continue
            lines.append(
                f"| {label} | {_pct(answer, '+')}, {_p(answer)} | "
                f"{_pct(clinician, '+')}, {_p(clinician)} |"
            )
    methods = report["methods"]
    lines += ["", f"- {methods['per_answer']}.", f"- {methods['per_clinician']}.", "",
              *report["notes"]]  # fmt: skip
    if chart:
        lines += ["", f"![thumbs-up rate per arm]({chart})"]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> Path:
    """The thumbs-up rate per arm, with its per-answer and its per-clinician interval."""
    plt = pyplot()

    names = list(report["arms"])
    figure, axis = plt.subplots(figsize=(1.6 + 1.6 * len(names), 3.2))
    for offset, kind, color, label in (
        (-0.1, "per_answer", "#9ecae9", "per answer (Wilson)"),
        (0.1, "per_clinician", "#4c78a8", "per clinician (cluster bootstrap)"),
    ):  # fmt: skip
        for x, name in enumerate(names):
            entry = report["arms"][name]["thumbs_up_rate"].get(kind, {})
            if entry.get("rate") is None or entry.get("low") is None:
                continue
            axis.errorbar(
                x + offset, entry["rate"], capsize=6, fmt="o", color=color,
                yerr=[[entry["rate"] - entry["low"]], [entry["high"] - entry["rate"]]],
                label=label if x == 0 else None,
            )  # fmt: skip
    axis.set_xticks(range(len(names)), names)
    axis.set_xlim(-0.6, len(names) - 0.4)
    axis.set_ylim(0, 1)
    axis.set_ylabel("thumbs-up rate, 95 %")
    axis.set_title(f"A/B {report['experiment']}")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_ab_report(store: Store, experiment: str, out: Path, since: float | None = None) -> dict:
    """report.json, report.md and report.png in `out`; returns the report."""
    return write_report(build_ab_report(store, experiment, since), out, markdown, chart)
