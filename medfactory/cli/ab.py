"""`medfactory gateway|chat|ab|monitor`: live A/B of served versions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from deploy.gateway import PROBE_INTERVAL
from medfactory.cli.access import AS
from medfactory.cli.common import DB, URL, ExampleGroup, export_options, open_db, with_example
from medfactory.locales import DEFAULT_LANGUAGE, LANGUAGES

EXPERIMENT = click.option(
    "--experiment", default="ab", show_default=True,
    help="The experiment: its name in the store and what the gateway's /v1/models lists.",
)  # fmt: skip


def _old_name(_ctx, _param, value: str | None) -> str | None:
    if value is not None:
        click.echo(
            f"warning: --name {value} is deprecated here; say --experiment {value} "
            "(--name always names what is written, e.g. the datasets of `ab export`)",
            err=True,
        )
    return value


OLD_NAME = click.option("--name", "old_name", hidden=True, callback=_old_name)


def _rate(_ctx, _param, value: str | None):
    from deploy.limits import LimitError, parse_rate

    try:
        return parse_rate(value) if value else None
    except LimitError as error:
        raise click.BadParameter(str(error)) from None


def tls_options(function):
    """--tls-cert, --tls-key: uvicorn's own TLS for a server of ours."""
    for option in (
        click.option(
            "--tls-key",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Its private key (PEM).",
        ),  # fmt: skip
        click.option(
            "--tls-cert",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Serve HTTPS with this certificate (PEM; with --tls-key).",
        ),  # fmt: skip
    ):
        function = option(function)
    return function


def experiment_of(experiment: str, old_name: str | None) -> str:
    """--experiment, or the deprecated --name where it meant the experiment."""
    if old_name is not None and experiment != "ab" and old_name != experiment:
        raise click.UsageError(f"--name {old_name} and --experiment {experiment}: give one")
    return old_name if old_name is not None else experiment


@with_example(
    "medfactory gateway --arm base=http://127.0.0.1:8000,model=tiny "
    "--arm lora=http://127.0.0.1:8000,model=lora --port 8100"
)
@click.command()
@click.option(
    "--arm", "arms", multiple=True, required=True,
    metavar="NAME=ENDPOINT[+ENDPOINT...][,model=M][,weight=W][,rag=INDEX][,top=K]",
    help="A version: its server (replicas joined by +), served model name, share of users, "
    "and the index it retrieves from, if any (repeatable).",
)  # fmt: skip
@EXPERIMENT
@OLD_NAME
@click.option("--port", default=8100, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--api-key", envvar="MEDFACTORY_GATEWAY_API_KEY", help="Require this key of clients.")
@click.option("--backend-api-key", envvar="MEDFACTORY_API_KEY", help="The arms' servers' API key.")
@click.option(
    "--auth", type=click.Choice(["none", "users", "proxy"]), default="none", show_default=True,
    help="Who calls: none (the body's user; --api-key if given), users (each user's own "
    "token from `medfactory users`), proxy (X-Forwarded-User from --trusted-proxy).",
)  # fmt: skip
@click.option(
    "--trusted-proxy", "trusted_proxies", multiple=True, metavar="CIDR",
    help="With --auth proxy: the sign-on proxy's address or network (repeatable).",
)  # fmt: skip
@click.option(
    "--rate-limit", callback=_rate, metavar="N/min",
    help="Requests per user: N/s, N/min or N/h; over it, 429 with Retry-After.",
)  # fmt: skip
@click.option(
    "--max-concurrent-per-user", type=click.IntRange(min=1),
    help="Answers in flight at once per user; over it, 429.",
)  # fmt: skip
@click.option(
    "--store-scrubbed", is_flag=True,
    help="Store prompts and answers after the identifier scrub (clients get them as is).",
)  # fmt: skip
@tls_options
@click.option(
    "--index-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the indexes of rag= arms [default: the project's saves/rag/].",
)  # fmt: skip
@click.option(
    "--probe-interval", type=click.FloatRange(min=0.5), default=PROBE_INTERVAL, show_default=True,
    help="Seconds: the longest a failed replica that answers again waits to be put back.",
)  # fmt: skip
@click.option(
    "--tracking-uri", help="MLflow store of model=models:/... arms [default: as train's]."
)
@DB
def gateway(
    arms, experiment, old_name, port, host, api_key, backend_api_key, auth, trusted_proxies,
    rate_limit, max_concurrent_per_user, store_scrubbed, tls_cert, tls_key, index_dir,
    probe_interval, tracking_uri, db,
) -> None:  # fmt: skip
    """An OpenAI-compatible gateway that splits users between versions and records it all.

    Each request's `user` field picks the user's arm (a stable, weighted hash;
    theirs for the life of the experiment). Every exchange and every
    thumbs-up, thumbs-down or correction (POST /v1/feedback) goes into the
    store; /metrics has per-arm and per-replica Prometheus series. Ctrl-C stops it.

    An arm with several replicas keeps each conversation on one of them (its
    prefix cache) and sends new ones to the least busy; a replica that fails is
    taken out, probed on /health and put back when it answers, and a request
    it failed before answering is tried once on another. An arm with
    rag=INDEX puts the passages retrieved from INDEX (`medfactory rag index`)
    before each question and records their sources, e.g.

    \b
      --arm tuned=http://gpu1:8000+http://gpu2:8000,model=lora
      --arm rag=http://gpu3:8000,model=tiny,rag=guidelines,top=3
      --arm prod=http://gpu4:8000,model=models:/huatuo-qwen7b@production

    model=models:/NAME@ALIAS (or models:/NAME/VERSION) names a recorded version
    (`medfactory models list`): the arm sends the name `serve --model models:/...`
    serves it under, and the experiment keeps the version itself, not the alias.

    With --auth users each client sends its own token (Authorization: Bearer)
    and is that user, whatever the body says; the chat page sends its service
    token and names the signed-in clinician in X-Medfactory-User.
    """
    from deploy.gateway import parse_arm
    from medfactory.ab.serve import Access, serve_gateway

    parsed = [parse_arm(arm) for arm in arms]
    experiment = experiment_of(experiment, old_name)
    access = Access(
        auth, api_key, tuple(trusted_proxies), rate_limit, max_concurrent_per_user,
        store_scrubbed,
    )  # fmt: skip
    serve_gateway(
        parsed, experiment, open_db(db), host, port, api_key, backend_api_key, click.echo,
        index_dir, probe_interval, access, tls_cert, tls_key, tracking_uri,
    )  # fmt: skip


@with_example("medfactory chat --gateway http://127.0.0.1:8100 --port 7870")
@click.command()
@click.option("--gateway", "gateway_url", required=True, type=URL(), help="The A/B gateway's URL.")
@click.option("--port", default=7870, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--gateway-api-key", "--api-key", "api_key", envvar="MEDFACTORY_GATEWAY_API_KEY",
    help="The gateway's --api-key, or the page's service key (`medfactory users add chatpage "
    "--role service`): clinicians then sign in by their personal links.",
)  # fmt: skip
@click.option("--access-code", envvar="MEDFACTORY_ACCESS_CODE", help="Shared code to log in.")
@click.option("--max-tokens", default=512, show_default=True, help="Longest answer.")
@click.option(
    "--lang", type=click.Choice(list(LANGUAGES)), default=DEFAULT_LANGUAGE, show_default=True,
    help="The page's language: zh (Simplified Chinese) or en.",
)  # fmt: skip
@tls_options
@DB
def chat(
    gateway_url, port, host, api_key, access_code, max_tokens, lang, tls_cert, tls_key, db
) -> None:  # fmt: skip
    """A chat page for clinicians: streamed answers, thumbs, better answers; no version shown.

    Each clinician logs in with a name (and --access-code when given), which
    is the user the gateway assigns to a version. Given a service key of the
    store's users (--gateway-api-key, the gateway's --auth users), clinicians
    sign in by their personal links BASE/signin/TOKEN instead. Ctrl-C stops it.
    """
    from deploy.process import port_in_use
    from medfactory.ab.chat import serve_chat_page

    if port_in_use(host, port):
        raise click.ClickException(f"port {port} on {host} is already in use; pass another --port")
    serve_chat_page(
        gateway_url, host, port, api_key, access_code, max_tokens, click.echo, lang, db,
        tls_cert, tls_key,
    )  # fmt: skip


@click.group(cls=ExampleGroup)
def ab() -> None:
    """The live A/B experiment's record: per-version report."""


@with_example("medfactory ab report --since 7d --json")
@ab.command()
@EXPERIMENT
@OLD_NAME
@click.option("--since", help="Only exchanges from then: 2026-12-01, 2026-12-01T09:30, 2h, 7d.")
@click.option("--out", type=click.Path(path_type=Path), help="[default: saves/ab/EXPERIMENT]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@AS
@DB
def report(experiment, old_name, since, out, as_json, as_name, db) -> None:
    """Per arm: users, answers, thumbs-up and error rates with their intervals per answer and
    per clinician (clustered), the differences and their tests, corrections, TTFT and
    latency; report.md/json/png."""
    from medfactory import paths
    from medfactory.ab.recorder import parse_since
    from medfactory.ab.report import markdown, write_ab_report
    from medfactory.access.roles import acting_user

    experiment = experiment_of(experiment, old_name)
    out = out or paths.PROJECT_ROOT / "saves" / "ab" / experiment
    store = open_db(db)
    acting_user(store, as_name, "report", "ab-report", experiment)
    result = write_ab_report(store, experiment, out, parse_since(since))
    if as_json:
        click.echo(json.dumps(result, indent=1, ensure_ascii=False))
        return
    click.echo(markdown(result, None))
    click.echo(f"report: {out / 'report.md'} ({out / 'report.json'}, {out / 'report.png'})")


@with_example(
    "medfactory monitor --endpoint http://127.0.0.1:8000 --gateway http://127.0.0.1:8100 "
    "--max-error-rate 0.05 --max-p95-latency 10 --csv monitor.csv"
)
@click.command()
@click.option("--endpoint", type=URL(), help="The vLLM server's URL.")
@click.option("--gateway", "gateway_url", type=URL(), help="The A/B gateway's URL.")
@click.option("--api-key", envvar="MEDFACTORY_API_KEY", help="The vLLM server's API key.")
@click.option("--gateway-api-key", envvar="MEDFACTORY_GATEWAY_API_KEY")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between refreshes.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Append every refresh's figures to this CSV.")  # fmt: skip
@click.option("--max-error-rate", type=float, help="Red above this share of failed requests.")
@click.option("--max-p95-latency", type=float, help="Red above this p95 latency (seconds).")
@click.option("--iterations", type=click.IntRange(min=1), help="Stop after N refreshes.")
def monitor(
    endpoint, gateway_url, api_key, gateway_api_key, interval, csv_path, max_error_rate,
    max_p95_latency, iterations,
) -> None:  # fmt: skip
    """A live view of vLLM's metrics and the gateway's per-arm metrics.

    Every figure is over the last interval: requests and errors per second,
    running and waiting requests, KV-cache use, TTFT and latency p50/p95,
    thumbs. Ctrl-C stops it.
    """
    from rich.console import Console
    from rich.live import Live

    from deploy.monitor import Monitor, table

    watch = Monitor(endpoint, gateway_url, api_key, gateway_api_key, csv_path)
    console = Console()
    with Live(console=console, auto_refresh=False, transient=not console.is_terminal) as live:
        rows = watch.run(
            interval, iterations,
            lambda rows: live.update(table(rows, max_error_rate, max_p95_latency, interval),
                                     refresh=True),
        )  # fmt: skip
    if not console.is_terminal and rows:
        console.print(table(rows, max_error_rate, max_p95_latency, interval))


@with_example("medfactory ab export --name ab_feedback --since 7d")
@ab.command()
@EXPERIMENT
@click.option("--since", help="Only exchanges from then: 2026-12-01, 2026-12-01T09:30, 2h, 7d.")
@export_options
@AS
@DB
def export(
    experiment, since, name, dataset_dir, fmt, split, seed, force, as_json, as_name, db
) -> None:
    """Thumbs as KTO data, corrections as SFT data and DPO pairs, registered for training.

    Failed exchanges and answers without feedback are skipped and counted.
    Every text is scrubbed of identifiers.
    """
    from medfactory.ab.export import export_experiment
    from medfactory.ab.recorder import parse_since
    from medfactory.access.roles import acting_user
    from medfactory.cli.tables import print_export_summary

    store = open_db(db)
    actor = acting_user(store, as_name, "export")
    summary = export_experiment(store, experiment, parse_since(since), name, dataset_dir, fmt,
                                split, seed, force, actor)  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary, indent=1, ensure_ascii=False))
    else:
        print_export_summary(summary)


@with_example("medfactory ab purge --older-than 90d --as dr.admin")
@ab.command()
@EXPERIMENT
@click.option("--before", help="Purge conversations before this date: 2026-09-01.")
@click.option("--older-than", help="Purge conversations older than this age: 90d.")
@AS
@DB
def purge(experiment, before, older_than, as_name, db) -> None:
    """Delete the texts of old conversations (messages, answers, corrections, comments) and
    keep what `ab report` counts (arm, user, thumbs, errors, tokens, latencies)."""
    from medfactory.ab.purge import purge_conversations
    from medfactory.ab.recorder import parse_since
    from medfactory.access.roles import acting_user

    if bool(before) == bool(older_than):
        raise click.UsageError("give one of --before DATE or --older-than AGE (e.g. 90d)")
    store = open_db(db)
    actor = acting_user(store, as_name, "purge")
    done = purge_conversations(store, experiment, parse_since(before or older_than), actor)
    click.echo(
        f"{experiment}: purged the texts of {done['exchanges']} exchanges and "
        f"{done['feedback_texts']} feedback texts; counts, thumbs and latencies kept"
    )
