"""`medfactory loadtest`: locust against a served model, with LLM serving metrics."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import click

from medfactory.commands import registered_split, server_client, with_example


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h)?", text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: expected seconds, e.g. 60s, 2m or 90")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]


def parse_sweep(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected user counts, e.g. 1,2,4,8") from None
    if not levels or min(levels) < 1:
        raise click.BadParameter(f"{text!r}: expected positive user counts, e.g. 1,2,4,8")
    return levels


@with_example(
    "medfactory loadtest --endpoint http://127.0.0.1:8000 --dataset huatuo_sample_test "
    "--sweep 1,2,4"
)
@click.command()
@server_client
@registered_split
@click.option("--users", default=4, show_default=True, help="Concurrent users (one level).")
@click.option("--spawn-rate", default=100.0, show_default=True, help="Users started per second.")
@click.option("--duration", default="60s", show_default=True, help="Per level: 60s, 2m, ...")
@click.option("--sweep", help="Several levels of users, e.g. 1,2,4,8,16 (overrides --users).")
@click.option("--max-tokens", default=128, show_default=True, help="Output tokens per request.")
@click.option(
    "--natural-stop",
    is_flag=True,
    help="Let answers end early (default: ignore_eos, fixed length).",
)
@click.option("--temperature", default=0.0, show_default=True, help="Sampling temperature.")
@click.option("--slo", help="Goodput targets in ms, e.g. ttft=500,tpot=50.")
@click.option("--web", is_flag=True, help="Open locust's web UI (127.0.0.1:8089) instead.")
@click.option("--out", default="saves/loadtest", show_default=True, type=click.Path(path_type=Path))
def loadtest(
    endpoint, dataset, dataset_dir, api_key, model_name, users, spawn_rate, duration, sweep,
    max_tokens, natural_stop, temperature, slo, web, out,
) -> None:  # fmt: skip
    """Load-test a served model with locust: throughput, TTFT, TPOT, ITL, latency.

    Sends the split's real questions (system prompt and history included) as
    streamed chat completions; every level runs for --duration and then stops
    by itself. Writes OUT/report.json, OUT/report.md, locust's CSVs and a plot,
    with the server's CPU/memory (and GPU) use sampled during the run.
    """
    from deploy.client import Endpoint
    from deploy.loadtest import (
        LoadSpec,
        ResourceSampler,
        parse_slo,
        read_records,
        run_locust,
        server_pid,
        summarize,
    )
    from deploy.loadtest_report import write_report
    from medfactory import paths
    from medfactory.datasets import load_conversations

    seconds = parse_duration(duration)
    levels = parse_sweep(sweep) or [users]
    try:
        slo_ms = parse_slo(slo)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    conversations = load_conversations(dataset_dir, dataset)
    server = Endpoint(endpoint, api_key=api_key, model=model_name)
    model = server.check()  # a wrong address or key fails here, not as 60 s of errors
    locust = paths.train_venv() / "bin" / "locust"
    base = LoadSpec(
        url=server.url, model=model, prompts=[c.messages for c in conversations],
        users=levels[0], spawn_rate=spawn_rate, duration_s=seconds, max_tokens=max_tokens,
        ignore_eos=not natural_stop, temperature=temperature, api_key=api_key,
    )  # fmt: skip
    if web:
        click.echo("locust web UI: http://127.0.0.1:8089 (Ctrl-C ends it)")
        run_locust(base, out, locust, web=True)
        return
    parsed = urlparse(server.url)
    pid = server_pid(parsed.hostname or "", parsed.port or 80)
    summaries = []
    for count in levels:
        spec = LoadSpec(**{**base.__dict__, "users": count})
        click.echo(f"{count} users for {seconds:.0f} s against {server.url} ({model}) ...")
        started = time.monotonic()
        with ResourceSampler(pid) as sampler:
            records = read_records(run_locust(spec, out, locust))
        wall = time.monotonic() - started
        summary = {"users": count, **summarize(records, seconds, slo_ms)}
        summary["resources"] = sampler.summary()
        summary["wall_s"] = wall
        summaries.append(summary)
        click.echo(_headline(summary))
    report = {
        "endpoint": server.url, "model": model, "dataset": dataset, "max_tokens": max_tokens,
        "ignore_eos": not natural_stop, "temperature": temperature, "duration_s": seconds,
        "server_pid": pid, "levels": summaries,
    }  # fmt: skip
    write_report(out, report)
    click.echo(f"report: {out / 'report.md'}  ({out / 'report.json'}, {out / 'loadtest.png'})")
    if all(level["completed"] == 0 for level in summaries):
        failures = {k: v for lv in summaries for k, v in lv["failures_by_type"].items()}
        raise click.ClickException(f"no request succeeded (failures: {failures})")


def _headline(level: dict) -> str:
    ttft, tpot = level.get("ttft_ms") or {}, level.get("tpot_ms") or {}
    text = (
        f"  {level['completed']} ok, {level['failed']} failed; "
        f"{level['request_throughput']:.2f} req/s, {level['output_throughput']:.1f} output tok/s"
    )
    if ttft:
        text += f"; TTFT mean {ttft['mean']:.0f} ms (p99 {ttft['p99']:.0f})"
    if tpot:
        text += f"; TPOT mean {tpot['mean']:.1f} ms"
    return text
