"""`medfactory models`: the versions a team has trained, where they came from, and their cards."""

from __future__ import annotations

import json

import click

from medfactory.cli.common import DB, ExampleGroup, open_db, with_example
from medfactory.tracking.errors import TrackingError

# The errors a user can fix that these commands raise; shown without a traceback.
ERRORS: tuple[type[Exception], ...] = (TrackingError,)

REF_HELP = "NAME@VERSION, NAME@ALIAS, models:/NAME@ALIAS, models:/NAME/VERSION or an output folder"


def tracking_uri_option(function):
    return click.option(
        "--tracking-uri",
        help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite under saves/mlflow/].",
    )(function)


def _client(tracking_uri: str | None):
    from medfactory.tracking.client import open_client
    from medfactory.tracking.settings import tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    return open_client(uri), uri


def _print_json(value) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


@click.group(cls=ExampleGroup)
def models() -> None:
    """Model versions: list, show, lineage, card, promote, ui.

    Every `medfactory train` and `export` registers a version on MLflow; a version
    is named NAME@VERSION, NAME@ALIAS, models:/NAME@ALIAS or by its output folder.
    `medfactory models ui` shows the same store in MLflow's own UI.
    """


@with_example("medfactory models list --json")
@models.command(name="list")
@tracking_uri_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(tracking_uri, as_json) -> None:
    """Every version: name, version, aliases, parent, created, key scores."""
    from medfactory.tracking.versions import list_versions, render_list

    client, _ = _client(tracking_uri)
    rows = list_versions(client)
    _print_json(rows) if as_json else click.echo(render_list(rows))


@with_example("medfactory models show tiny-lora@2")
@models.command()
@click.argument("ref", metavar="REF")
@tracking_uri_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(ref, tracking_uri, as_json) -> None:
    """One version: base, parent, recipe, data, run, scores beside the parent's.

    REF is NAME@VERSION, NAME@ALIAS, models:/NAME@ALIAS, models:/NAME/VERSION or an
    output folder.
    """
    from medfactory.tracking.versions import render_show, show_version

    client, uri = _client(tracking_uri)
    shown = show_version(client, ref, uri)
    _print_json(shown) if as_json else click.echo(render_show(shown))


@with_example("medfactory models lineage saves/tiny/lora/dpo --json")
@models.command()
@click.argument("ref", metavar="REF")
@tracking_uri_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lineage(ref, tracking_uri, as_json) -> None:
    """Where a version came from: run, recipe, datasets, source files, studies, people.

    Each recorded file hash is compared with the file now ("now differs").
    REF is NAME@VERSION, NAME@ALIAS, models:/..., or an output folder.
    """
    from medfactory.tracking.lineage import lineage as build
    from medfactory.tracking.lineage import render

    client, uri = _client(tracking_uri)
    tree = build(client, ref, uri)
    _print_json(tree) if as_json else click.echo(render(tree))


@with_example("medfactory models card tiny-lora@2 --lang zh")
@models.command()
@click.argument("ref", metavar="REF")
@tracking_uri_option
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--license", "license_id", default="other", show_default=True,
              help="The card's license id (the base model's terms apply).")  # fmt: skip
def card(ref, tracking_uri, lang, license_id) -> None:
    """Write the version's model card (README.md in its folder, Hugging Face format)."""
    from medfactory.tracking.card import write_card

    client, uri = _client(tracking_uri)
    click.echo(f"wrote {write_card(client, ref, uri, lang, license_id)}")


@with_example("medfactory models promote tiny-lora@2 --alias production --by dr.li")
@models.command()
@click.argument("ref", metavar="REF")
@click.option("--alias", required=True, help="The alias to set, e.g. production.")
@click.option("--by", help="Who promotes [default: the OS user].")
@tracking_uri_option
@DB
def promote(ref, alias, by, tracking_uri, db) -> None:
    """Point an alias at a version, recording who and when (also in the store's audit log)."""
    from medfactory.tracking.promote import promote as set_alias

    client, uri = _client(tracking_uri)
    done = set_alias(client, ref, uri, alias, by, audit_store=open_db(db))
    moved = f" (was version {done['previous']})" if done["previous"] else ""
    click.echo(f"{done['version']} is now {alias}{moved}; by {done['by']} at {done['at']}")


@with_example("medfactory models ui --port 5000")
@models.command()
@tracking_uri_option
@click.option("--port", default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(tracking_uri, port, host) -> None:
    """MLflow's own UI on the same store: runs, registered models, versions, their tags.

    Runs `mlflow server` from the project's environment in the foreground; Ctrl-C
    stops it. A store that is an MLflow server (http://...) already has its UI.
    """
    from medfactory.cli.common import unwind_on_termination
    from medfactory.tracking.settings import tracking_uri as resolve_uri
    from medfactory.tracking.ui import run_ui

    unwind_on_termination()  # the server it starts is stopped, not orphaned
    run_ui(resolve_uri(tracking_uri), host, port, say=click.echo)
