"""The load-test report: report.json, report.md and plots against concurrency."""

from __future__ import annotations

import json
from pathlib import Path

LATENCIES = ("ttft", "tpot", "itl", "e2el")  # the measured latencies, in ms

DEFINITIONS = (
    "Metric definitions follow `vllm bench serve`: TTFT is the time to the first "
    "non-empty content chunk; ITL the gaps between later chunks; TPOT = (E2EL - TTFT) / "
    "(output tokens - 1); E2EL the whole streamed request; throughputs are per second of "
    "the run; token counts are the server's own `usage`."
)


def write_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    plots = plot(out, report["levels"])
    (out / "report.md").write_text(markdown(report, plots))


def markdown(report: dict, plots: list[Path]) -> str:
    lines = [
        "# Load test",
        "",
        f"Endpoint `{report['endpoint']}`, model `{report['model']}`, prompts from "
        f"`{report['dataset']}`, up to {report['max_tokens']} output tokens per request"
        f"{' (ignore_eos)' if report['ignore_eos'] else ''}, {report['duration_s']:.0f} s per "
        "concurrency level.",
        "",
        DEFINITIONS,
        "",
        "| users | completed | failed | req/s | output tok/s | TTFT mean / p90 / p99 ms | "
        "TPOT mean / p90 ms | ITL p50 ms | E2EL mean / p99 ms | server CPU % | server RSS MiB |",
        "|---" * 11 + "|",
    ]
    for level in report["levels"]:
        ttft, tpot, itl, e2el = (level.get(f"{k}_ms") or {} for k in LATENCIES)
        resources = level.get("resources", {})
        lines.append(
            f"| {level['users']} | {level['completed']} | {level['failed']} | "
            f"{level['request_throughput']:.2f} | {level['output_throughput']:.1f} | "
            f"{_ms(ttft, 'mean')} / {_ms(ttft, 'p90')} / {_ms(ttft, 'p99')} | "
            f"{_ms(tpot, 'mean')} / {_ms(tpot, 'p90')} | {_ms(itl, 'median')} | "
            f"{_ms(e2el, 'mean')} / {_ms(e2el, 'p99')} | "
            f"{_usage(resources, 'cpu_percent')} | {_usage(resources, 'rss_mib')} |"
        )
    failures = {k: v for level in report["levels"] for k, v in level["failures_by_type"].items()}
    if failures:
        lines += ["", "Failures by type: " + ", ".join(f"{k}: {v}" for k, v in failures.items())]
    if any("goodput" in level for level in report["levels"]):
        slo = report["levels"][0].get("slo_ms", {})
        lines += ["", f"Goodput (SLO {slo} ms): "]
        lines += [f"- {lv['users']} users: {lv['goodput']:.2f} req/s" for lv in report["levels"]]
    lines += [""] + [f"![{p.stem}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


def _ms(stats: dict, key: str) -> str:
    return f"{stats[key]:.1f}" if key in stats else "-"


def _usage(resources: dict, key: str) -> str:
    return (
        f"{resources[key]['mean']:.0f} (max {resources[key]['max']:.0f})"
        if key in resources
        else "-"
    )


def plot(out: Path, levels: list[dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [level["users"] for level in levels]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for metric, style in (("ttft", "o-"), ("tpot", "s-"), ("e2el", "^-")):
        for percentile, alpha in (("median", 1.0), ("p90", 0.6), ("p99", 0.35)):
            values = [(level.get(f"{metric}_ms") or {}).get(percentile) for level in levels]
            if any(v is not None for v in values):
                axes[0].plot(
                    users, values, style, alpha=alpha, label=f"{metric.upper()} {percentile}"
                )
    axes[0].set(xlabel="concurrent users", ylabel="ms", title="latency percentiles", yscale="log")
    axes[0].legend(fontsize=7, ncol=3)
    axes[1].plot(users, [lv["output_throughput"] for lv in levels], "o-", label="output tok/s")
    twin = axes[1].twinx()
    twin.plot(users, [lv["request_throughput"] for lv in levels], "s--", color="C1", label="req/s")
    axes[1].set(xlabel="concurrent users", ylabel="output tokens / s", title="throughput")
    twin.set_ylabel("requests / s")
    axes[1].legend(loc="upper left", fontsize=8)
    twin.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path = out / "loadtest.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [path]
