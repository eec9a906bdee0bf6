"""Terminal tables for the summaries the commands print.

A cell never ends in "…": paths are what a user copies next, so a long one is
folded onto the next lines of its cell (`overflow="fold"`), whatever the width.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


def facts_table(title: str) -> Table:
    """A two-column table of name and value, the value folded, never cut."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def _percentile_text(values: dict) -> str:
    return "  ".join(f"{k} {v:,}" for k, v in values.items()) or "-"


def print_convert_summary(summary) -> None:
    data = summary.as_dict()
    table = facts_table(f"converted {data['name']}")
    table.add_row("read", f"{data['read']:,}")
    for split, count in data["written"].items():
        table.add_row(f"written {split}", f"{count:,}")
    for kind, count in data["duplicates"].items():
        table.add_row(f"duplicates ({kind})", f"{count:,}")
    for reason, count in data["rejected"].items():
        table.add_row(f"rejected: {reason}", f"{count:,}")
    table.add_row("dropped trailing questions", f"{data['dropped_trailing_questions']:,}")
    if data.get("blank"):
        table.add_row("blank rows (skipped)", f"{data['blank']:,}")
    table.add_row("de-identification", data["deid"])
    for kind, count in data["pii_replaced"].items():
        table.add_row(f"PII replaced: {kind}", f"{count:,}")
    table.add_row("safety lint", data["lint"])
    for rule, count in data["flagged"].items():
        table.add_row(f"flagged: {rule}", f"{count:,}")
    table.add_row("turns per record", _percentile_text(data["turns"]))
    table.add_row("characters per record", _percentile_text(data["chars"]))
    for kind, path in data["files"].items():
        table.add_row(f"file {kind}", path)
    console.print(table)


def print_stats(stats: dict) -> None:
    table = facts_table(f"{stats['name']} ({stats['file']})")
    table.add_row("records", f"{stats['records']:,}")
    table.add_row("format", stats["formatting"])
    table.add_row("turns", "  ".join(f"{k}: {v:,}" for k, v in stats["turns"].items()))
    table.add_row("characters", _percentile_text(stats["chars"]))
    if "tokens" in stats:
        table.add_row("tokens", _percentile_text(stats["tokens"]))
    console.print(table)


def print_export_summary(data: dict) -> None:
    table = facts_table(f"exported {data['source']}")
    table.add_row("read", f"{data['read']:,}")
    for kind, splits in data["written"].items():
        table.add_row(f"written {kind}", "  ".join(f"{s} {n:,}" for s, n in splits.items()))
    for reason, count in data["skipped"].items():
        table.add_row(f"skipped: {reason}", f"{count:,}")
    for kind, count in data["identifiers_scrubbed"].items():
        table.add_row(f"PII replaced: {kind}", f"{count:,}")
    for path in data["files"]:
        table.add_row("file", path)
    console.print(table)


def print_safety_report(report: dict) -> None:
    """Per rule: records breaking it, the rate with its 95 % interval, and examples."""
    title = (
        f"{report['source']}: {report['flagged']:,} of {report['records']:,} records break "
        f"a safety rule ({_share(report['rate'])})"
    )
    table = Table(title=title, title_justify="left")
    for column in ("rule", "kind", "records", "rate [95% CI]", "example"):
        justify = "right" if column == "records" else "left"
        table.add_column(column, justify=justify, overflow="fold")
    for rule in report["rules"]:
        low, high = rule["ci95"]
        example = rule["examples"][0] if rule["examples"] else None
        table.add_row(
            rule["id"],
            rule["kind"].replace("_", " "),
            f"{rule['count']:,}",
            f"{_share(rule['rate'])} [{_share(low)}, {_share(high)}]",
            f"{example['where']}: {example['context']}" if example else "",
        )
    console.print(table)
    console.print(f"rules: {report['rules_file']}")


def _share(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"  # NaN: no records


def print_synthesis_summary(data: dict) -> None:
    what = "exam questions" if data.get("kind") == "exam" else "drafts"
    table = facts_table(f"{what} {data['name']}")
    table.add_row("documents / chunks", f"{data['documents']} / {data['chunks']}")
    table.add_row("requests this run", f"{data['requests']:,}")
    table.add_row("chunks answered in earlier runs", f"{data['chunks_from_earlier_runs']:,}")
    table.add_row("chunks without a usable reply", f"{data['unparseable_chunks']:,}")
    if data["unusable_waiting"]:
        table.add_row(
            "unusable replies waiting",
            f"{data['unusable_waiting']:,} (kept with the reply; ask again with --retry-unusable)",
        )
    table.add_row(what, f"{data['drafts']:,}")
    table.add_row("kept for review", f"{data['kept']:,}")
    for reason, count in data["dropped"].items():
        table.add_row(f"dropped: {reason}", f"{count:,}")
    for kind, path in data["files"].items():
        table.add_row(f"file {kind}", path)
    console.print(table)
