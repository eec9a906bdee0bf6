"""`medfactory loadtest`: locust against a served model, with LLM serving metrics."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.common import registered_split, server_client, with_example


def _parsed(parse, text: str, option: str):
    try:
        return parse(text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


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
    from converters.conversations import load_conversations
    from deploy.client import Endpoint
    from deploy.loadtest import (
        LoadSpec,
        headline,
        parse_duration,
        parse_slo,
        parse_sweep,
        run_locust,
        run_sweep,
    )  # fmt: skip
    from medfactory import paths

    seconds = _parsed(parse_duration, duration, "--duration")
    levels = _parsed(parse_sweep, sweep, "--sweep") if sweep else [users]
    slo_ms = _parsed(parse_slo, slo, "--slo")
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

    def on_level(count: int, summary: dict | None) -> None:
        if summary is None:
            click.echo(f"{count} users for {seconds:.0f} s against {server.url} ({model}) ...")
        else:
            click.echo(headline(summary))

    report = run_sweep(base, levels, out, locust, slo_ms, dataset, on_level)
    click.echo(f"report: {out / 'report.md'}  ({out / 'report.json'}, {out / 'loadtest.png'})")
    if all(level["completed"] == 0 for level in report["levels"]):
        failures = {k: v for lv in report["levels"] for k, v in lv["failures_by_type"].items()}
        raise click.ClickException(f"no request succeeded (failures: {failures})")
