"""`medfactory review`: blind A/B rating of model versions by clinicians."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.access import AS
from medfactory.cli.common import DB, ExampleGroup, export_options, with_example
from medfactory.cli.common import open_db as _store
from medfactory.locales import DEFAULT_LANGUAGE, LANGUAGES


@click.group(cls=ExampleGroup)
def review() -> None:
    """Doctors review model output, two per item, an arbiter for disagreements: blind A/B
    rating of model versions, or accepting, editing and rejecting a model's drafts."""


@with_example(
    "medfactory review create r1 --a saves/eval/base/generated_predictions.jsonl "
    "--b saves/eval/lora-v1/generated_predictions.jsonl --raters rater1,rater2 --arbiter rater3\n"
    "  medfactory review create cardio_drafts --drafts dataset_info/cardio_qa.drafts.jsonl "
    "--raters rater1,rater2 --arbiter rater3"
)
@review.command()
@click.argument("name")
@click.option("--a", "first", type=click.Path(path_type=Path), help="Version A.")
@click.option("--b", "second", type=click.Path(path_type=Path), help="Version B.")
@click.option(
    "--drafts",
    type=click.Path(path_type=Path),
    help="Instead of --a/--b: a model's drafts (`data synthesize`), each accepted, edited "
    "or rejected.",
)
@click.option(
    "--version",
    "more",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A further version (repeatable); pairs are then drawn per item.",
)
@click.option("--raters", required=True, help="Comma-separated rater names.")
@click.option("--arbiter", help="Who settles disagreements.")
@click.option("--overlap", default=2, show_default=True, help="Raters per item.")
@click.option("--items", type=click.IntRange(min=1), help="Items drawn [default: all].")
@click.option("--seed", default=0, show_default=True, help="Seed of every draw.")
@click.option(
    "--axes",
    default="accuracy,safety,completeness,communication",
    show_default=True,
    help="Score axes, 1-5 for each answer.",
)
@AS
@DB
def create(
    name, first, second, drafts, more, raters, arbiter, overlap, items, seed, axes, as_name, db
) -> None:
    """Make a study from prediction files over the same prompts, or from drafts.

    Files come from `eval endpoint`, `predict`, or any LLaMA-Factory
    generated_predictions.jsonl. Each item goes to --overlap raters, each
    with the two answers in an order of their own; model names stay hidden.
    With --drafts each item is one drafted question and answer, shown with the
    passage it was drafted from, to accept, edit or reject.
    """
    from medfactory.access.roles import acting_user
    from medfactory.review.studies import StudySpec, create_study, created_line

    if drafts and (first or second or more):
        raise click.UsageError("--drafts makes a study of drafts; leave out --a, --b, --version")
    if not drafts and not (first and second):
        raise click.UsageError("give --a and --b (prediction files), or --drafts")
    spec = StudySpec(
        name=name, predictions=[] if drafts else [first, second, *more],
        raters=raters.split(","), arbiter=arbiter, overlap=overlap, items=items, seed=seed,
        axes=tuple(a.strip() for a in axes.split(",") if a.strip()), drafts=drafts,
    )  # fmt: skip
    store = _store(db)
    actor = acting_user(store, as_name, "study")
    click.echo(created_line(create_study(store, spec, actor)))


@with_example("medfactory review serve r1 --port 8300")
@review.command()
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8300, show_default=True)
@click.option(
    "--lang", type=click.Choice(list(LANGUAGES)), default=DEFAULT_LANGUAGE, show_default=True,
    help="The page's language: zh (Simplified Chinese) or en.",
)  # fmt: skip
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False, path_type=Path),
    help="Serve HTTPS with this certificate (PEM; with --tls-key).",
)  # fmt: skip
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="Its key (PEM).")
@DB
def serve(name, host, port, lang, tls_cert, tls_key, db) -> None:
    """Serve the rating page; prints one fresh personal link per rater and the arbiter.

    Links printed earlier stop working. Raters who are users of the store
    (`medfactory users`) may sign in by their own links, BASE/signin/TOKEN,
    instead. Ctrl-C stops the server.
    """
    from deploy.process import port_in_use
    from deploy.tls import check_tls, plain_http_warning, scheme
    from medfactory.review.page import serve_page
    from medfactory.review.studies import issue_links

    ssl_options = check_tls(tls_cert, tls_key)
    if port_in_use(host, port):
        raise click.ClickException(f"port {port} on {host} is already in use; pass another --port")
    store = _store(db)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"{scheme(bool(ssl_options))}://{shown}:{port}"
    for rater, link in issue_links(store, name, base).items():
        click.echo(f"{rater:>16}  {link}")
    if warning := plain_http_warning(host, bool(ssl_options)):
        click.echo(warning)
    click.echo("Ctrl-C stops the page")
    serve_page(store, host, port, lang, name, ssl_options)


@with_example("medfactory review status r1")
@review.command()
@click.argument("name")
@DB
def status(name, db) -> None:
    """Done per rater, open disagreements, arbitrated items, items waiting for their raters."""
    from medfactory.review.settled import listed, study_status

    result = study_status(_store(db), name)
    for rater, counts in result["raters"].items():
        click.echo(f"{rater:>16}  {counts['done']} / {counts['assigned']}")
    standing = result["standing"]
    click.echo(
        f"settled {standing['settled']}, waiting for their other raters {standing['waiting']}, "
        f"open disagreements {result['open_disagreements']}, arbitrated {result['arbitrated']}, "
        f"not rated {standing['not rated']}"
    )
    if result["waiting"]:
        click.echo(f"waiting: {listed(result['waiting'])}")


@with_example("medfactory review report r1")
@review.command()
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path), help="[default: saves/review/NAME]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@AS
@DB
def report(name, out, as_json, as_name, db) -> None:
    """Win rates with intervals, scores, agreement, position bias; report.md/json/png."""
    from medfactory import paths
    from medfactory.access.roles import acting_user
    from medfactory.reporting import dumps
    from medfactory.review.report import report_markdown, write_report

    out = out or paths.PROJECT_ROOT / "saves" / "review" / name
    store = _store(db)
    acting_user(store, as_name, "report", "review-report", name)
    result = write_report(store, name, out)
    if as_json:
        click.echo(dumps(result))
        return
    click.echo(report_markdown(result))
    click.echo(f"report: {out / 'report.md'} ({out / 'report.json'}, {out / 'report.png'})")


@with_example("medfactory review sheet r1 --rater rater2 --out rater2.xlsx")
@review.command()
@click.argument("name")
@click.option("--rater", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help=".xlsx or .csv")  # fmt: skip
@AS
@DB
def sheet(name, rater, out, as_name, db) -> None:
    """Write a rater's blind sheet (their earlier ratings filled in).

    A .csv sheet's first row is a legend of the allowed values; the import skips it.
    """
    import shlex

    from medfactory.access.roles import acting_user
    from medfactory.review.sheets import write_sheet

    store = _store(db)
    rows = write_sheet(store, name, rater, out, acting_user(store, as_name, "study"))
    again = ["medfactory", "review", "import", name, str(out), "--rater", rater]
    again += ["--as", as_name] if as_name else []
    again += ["--db", db] if db else []
    click.echo(f"wrote {out}: {rows} items for {rater}; once filled in, import it with:")
    click.echo(f"  {shlex.join(again)}")


@with_example("medfactory review import r1 rater2.xlsx --rater rater2")
@review.command(name="import")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rater", required=True)
@AS
@DB
def import_(name, file, rater, as_name, db) -> None:
    """Read a filled sheet back: every row checked (its answers in this rater's own order),
    then stored as that rater's ratings; a sheet of another rater's is refused whole."""
    from medfactory.access.roles import acting_user
    from medfactory.review.sheets import import_sheet

    store = _store(db)
    result = import_sheet(store, name, file, rater, acting_user(store, as_name, "study"))
    click.echo(f"{file}: {result['rated']} rated rows stored for {rater}")


@with_example("medfactory review export r1 --name r1_verdicts")
@review.command()
@click.argument("study")
@export_options
@AS
@DB
def export(study, name, dataset_dir, fmt, split, seed, force, as_json, as_name, db) -> None:
    """Final verdicts as DPO pairs, corrected answers as SFT data, registered for training.

    Chosen is the answer the final verdict (the arbiter's, or every rater's)
    preferred; ties, both-unacceptable and unsettled items are skipped and
    counted. From a study of drafts: the accepted drafts and the edited ones (as
    edited) as SFT data, each with its source in a `source` column; rejected and
    unsettled drafts are skipped and counted. Every text is scrubbed of identifiers.
    """
    from medfactory.access.roles import acting_user
    from medfactory.cli.tables import print_export_summary
    from medfactory.reporting import dumps
    from medfactory.review.exports import export_study

    store = _store(db)
    actor = acting_user(store, as_name, "export")
    summary = export_study(store, study, dataset_dir, name, fmt, split, seed, force, actor)
    if as_json:
        click.echo(dumps(summary))
    else:
        print_export_summary(summary)


@with_example("medfactory review export-exam cardio_exam --out saves/exams/cardio.jsonl")
@review.command("export-exam")
@click.argument("study")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The exam file to write (JSONL, for `eval exam --benchmark`).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@AS
@DB
def export_exam(study, out, as_json, as_name, db) -> None:
    """The accepted and edited questions of an exam study, as an exam file.

    A study of `data synthesize --kind exam` questions is never training data
    (`review export` refuses it). Its settled questions, with the options and key
    as the doctors left them, go to OUT in the format `eval exam --benchmark OUT`
    reads; rejected and unsettled ones are counted, and an edit that cannot be
    read as options A, B, ... and an answer line is named with its item.
    """
    from medfactory.access.roles import acting_user
    from medfactory.reporting import dumps
    from medfactory.review.exports import export_exam as write_exam

    store = _store(db)
    actor = acting_user(store, as_name, "export")
    summary = write_exam(store, study, out, actor)
    if as_json:
        click.echo(dumps(summary))
        return
    skipped = ", ".join(f"{n} {why}" for why, n in summary["skipped"].items()) or "none"
    click.echo(
        f"{out}: {summary['questions']} questions ({summary['edited']} as edited); "
        f"left out: {skipped}"
    )
    for item in summary["unreadable"]:
        click.echo(f"  item {item['item']}: the edit is not readable: {item['why']}")
