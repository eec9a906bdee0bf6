"""`medfactory users` and `medfactory audit`: who may use the store, and what they did."""

from __future__ import annotations

import json
from pathlib import Path

import click

from medfactory.cli.common import DB, ExampleGroup, open_db, with_example

AS = click.option(
    "--as", "as_name", help="Who runs this (a user of the store); needed once it has users."
)
BASE = click.option(
    "--url", "base", default="http://127.0.0.1:7870", show_default=True,
    help="Base URL of the page the link signs in to.",
)  # fmt: skip


@click.group(cls=ExampleGroup)
def users() -> None:
    """The store's users: a role each and a personal sign-in link (token kept only hashed)."""


@with_example("medfactory users add dr.li --role clinician --email li@example.org")
@users.command()
@click.argument("name")
@click.option("--role", required=True,
              type=click.Choice(["clinician", "rater", "lead", "admin", "service"]))  # fmt: skip
@click.option("--email")
@BASE
@click.option("--json", "as_json", is_flag=True, help='Print {"name","role","link","token"}.')
@AS
@DB
def add(name, role, email, base, as_json, as_name, db) -> None:
    """Add a user; prints their sign-in link and token once (only a hash is kept)."""
    from medfactory.access.commands import add as add_user

    made = add_user(open_db(db), as_name, name, role, email, base)
    if as_json:
        click.echo(json.dumps(made, ensure_ascii=False))
        return
    click.echo(f"{made['name']} ({made['role']}): {made['link']}")
    click.echo(f"token (shown once): {made['token']}")


@with_example("medfactory users list --json")
@users.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@AS
@DB
def list_(as_json, as_name, db) -> None:
    """Every user: name, role, email, disabled."""
    from dataclasses import asdict

    from medfactory.access.commands import listing

    found = listing(open_db(db), as_name)
    if as_json:
        click.echo(json.dumps([asdict(u) for u in found], ensure_ascii=False))
        return
    for user in found:
        state = "disabled" if user.disabled else "active"
        click.echo(f"{user.name:>20}  {user.role:<9}  {state:<8}  {user.email or ''}")


@with_example("medfactory users disable dr.li")
@users.command()
@click.argument("name")
@AS
@DB
def disable(name, as_name, db) -> None:
    """Disable a user: their link and token stop working at once."""
    from medfactory.access.commands import disable as disable_user

    click.echo(f"{disable_user(open_db(db), as_name, name).name}: disabled")


@with_example("medfactory users link dr.li --url https://chat.hospital.example")
@users.command()
@click.argument("name")
@BASE
@AS
@DB
def link(name, base, as_name, db) -> None:
    """A new personal sign-in link for NAME; the old one stops working."""
    from medfactory.access.commands import link as new_link

    click.echo(new_link(open_db(db), as_name, name, base))


@click.group(cls=ExampleGroup)
def audit() -> None:
    """The audit log: who added users, exported, imported, arbitrated, promoted, purged."""


@with_example("medfactory audit list --since 7d --actor dr.wang")
@audit.command(name="list")
@click.option("--since", help="From then on: 2026-12-01, 2026-12-01T09:30, 2h, 7d.")
@click.option("--actor", help="Only this user's entries.")
@click.option("--json", "as_json", is_flag=True)
@AS
@DB
def audit_list(since, actor, as_json, as_name, db) -> None:
    """Entries, oldest first: id, time (UTC), actor, action, target, details."""
    from medfactory.ab.recorder import parse_since
    from medfactory.access.commands import audit_entries

    found = audit_entries(open_db(db), as_name, parse_since(since), actor)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False))
        return
    for e in found:
        details = json.dumps(e["details"], ensure_ascii=False) if e["details"] else ""
        click.echo(
            f"{e['id']:>6}  {e['at']}  {e['actor']}  {e['action']}  {e['target']}  {details}"
        )


@with_example("medfactory audit verify --anchor /mnt/worm/audit-anchor.json")
@audit.command()
@click.option(
    "--anchor", "anchor_file", type=click.Path(dir_okay=False, path_type=Path),
    help="An anchor written earlier by `audit anchor`: the entries it counted must still be "
    "there, unchanged (catches the newest entries deleted, or the chain rewritten).",
)  # fmt: skip
@AS
@DB
def verify(anchor_file, as_name, db) -> None:
    """Check the hash chain: exit 0 when intact, 1 naming the first entry that is not."""
    from medfactory.access.audit import when
    from medfactory.access.commands import audit_verify

    verdict = audit_verify(open_db(db), as_name, anchor_file)
    if verdict.intact:
        against = f", and holds the anchor's entries ({anchor_file})" if anchor_file else ""
        click.echo(f"{verdict.count} entries, chain intact{against}; head {verdict.head[:16]}")
        return
    e = verdict.broken
    if e is None:
        raise click.ClickException(f"audit log: {verdict.reason}")
    raise click.ClickException(
        f"audit chain broken at entry {e.id} ({when(e.at)}, {e.action}): {verdict.reason}; "
        f"{verdict.count} entries before it are intact"
    )


@with_example("medfactory audit anchor --out /mnt/worm/audit-anchor.json")
@audit.command(name="anchor")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the anchor there (JSON) as well as printing it.")  # fmt: skip
@AS
@DB
def anchor_(out, as_name, db) -> None:
    """Print the chain's head (entries, last hash, time) to keep outside the database.

    A chain checks entry by entry, but one whose newest entries were deleted, or
    that was rewritten with fresh hashes, still does: keep anchors where the
    database's admins cannot change them (a write-once bucket, a log server, a
    mail), from cron, and check with `audit verify --anchor FILE`.
    """
    from medfactory.access.commands import audit_anchor

    click.echo(json.dumps(audit_anchor(open_db(db), as_name, out)))
