"""`medfactory data convert sql`: a database table or query as a source."""

from __future__ import annotations

import contextlib
import json
import time
from functools import partial
from pathlib import Path

import click

from medfactory.cli.common import DATASET_DIR, RULES, dataset_format, with_example


@with_example(
    'medfactory data convert sql "mysql+pymysql://reader@his/qa" --password-env HIS_PASSWORD '
    '--query "SELECT 问题, 回答, 更新时间 FROM consult" --column question=问题 '
    "--column answer=回答 --since-column 更新时间 --name cardio"
)
@click.command("sql")
@click.argument("url")
@click.option("--query", help="The SQL whose result rows are converted.")
@click.option("--table", "table_name", help="A table (or SCHEMA.TABLE) converted whole.")
@click.option(
    "--password-env",
    metavar="VAR",
    help="The environment variable holding the password (never put it in the URL, where "
    "ps shows it) [default: the driver's own, e.g. PGPASSWORD or ~/.pgpass].",
)
@click.option(
    "--since-column",
    help="Keep this column's largest value as the dataset's high-water mark; the next run "
    "reads only rows at or past it and adds them to the same splits.",
)
@click.option("--full", is_flag=True, help="Ignore the high-water mark: convert everything again.")
@click.option(
    "--chunk-rows",
    default=2000,
    show_default=True,
    help="Rows fetched from the server-side cursor, and converted, at a time.",
)
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Which result column holds what (question, answer, system, history; or "
    "instruction, input, output; or conversation, turn, role, content). Repeatable.",
)
@click.option(
    "--map",
    "map_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A YAML column map (columns:, roles:); --column wins.",
)
@dataset_format()
@click.option(
    "--name", required=True, help="Dataset name; splits register as NAME_train/_val/_test."
)
@DATASET_DIR
@click.option("--split", "split_text", default="0.7,0.2,0.1", show_default=True)
@click.option("--seed", default=42, show_default=True, help="Seed of the split assignment.")
@click.option("--system", default="", help="System prompt stored with every record.")
@click.option("--max-chars", default=16384, show_default=True, help="0: no limit.")
@click.option("--no-dedup", is_flag=True, help="Keep exact and near duplicates.")
@click.option(
    "--deid",
    type=click.Choice(["off", "basic", "strict"]),
    default="strict",
    show_default=True,
    help="De-identification, as for `data convert table`.",
)
@click.option("--pseudonymize", is_flag=True, help="strict: surrogates kept within a record.")
@click.option("--ner-config", type=click.Path(dir_okay=False), help="strict: a Presidio NER YAML.")
@click.option(
    "--lint", type=click.Choice(["off", "flag", "reject"]), default="flag", show_default=True
)
@RULES
@click.option("--force", is_flag=True, help="Replace a different registered entry of the name.")
@click.option("--workers", type=int, help="Converting processes [default: all cores].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sql(
    url, query, table_name, password_env, since_column, full, chunk_rows, columns, map_file,
    fmt, name, dataset_dir, split_text, seed, system, max_chars, no_dedup, deid, pseudonymize,
    ner_config, lint, rules, force, workers, as_json,
) -> None:  # fmt: skip
    """Convert the rows of a database table or query into LLaMA-Factory splits.

    URL is any SQLAlchemy URL whose driver is installed (postgresql://, mysql+pymysql://,
    mssql+pyodbc://, oracle+oracledb://, hive://, sqlite:///FILE), without a password.
    Rows are read through a server-side cursor --chunk-rows at a time, and go through the
    same column map, de-identification, safety lint, rejects file and accounting as
    `data convert table`. Nothing is registered unless every row was read.
    """
    from converters.column_map import build_column_map
    from converters.convert import ConvertOptions
    from converters.deid.engine import DeidOptions
    from converters.split import parse_split
    from converters.sql.convert import convert_sql
    from converters.sql.database import SqlSource

    try:
        ratios = parse_split(split_text)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--split") from None
    if not columns and not map_file:
        raise click.UsageError("say which column holds what: --column question=COL ...")
    if (pseudonymize or ner_config) and deid != "strict":
        raise click.UsageError("--pseudonymize and --ner-config work with --deid strict")
    source = SqlSource(
        url=url, query=query, table=table_name, password_env=password_env,
        since_column=since_column, chunk_rows=chunk_rows,
    )  # fmt: skip
    options = ConvertOptions(
        fmt=fmt, name=name, dataset_dir=dataset_dir, split=ratios, seed=seed, system=system,
        max_chars=max_chars or None, dedup=not no_dedup, deid=deid,
        deid_options=DeidOptions(pseudonymize=pseudonymize, ner_config=ner_config), lint=lint,
        lint_rules=rules, force=force, table=build_column_map(columns, map_file),
        **({"workers": workers} if workers else {}),
    )  # fmt: skip
    run = convert_sql(source, options, full=full, progress=partial(_rows_progress, not as_json))
    if as_json:
        click.echo(json.dumps(run.as_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        _print_summary(run)


@contextlib.contextmanager
def _rows_progress(enabled: bool):
    """A live count of rows read and records converted (a query's size is not known)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from medfactory.cli.progress import RecordsPerSecond

    progress = Progress(
        SpinnerColumn(),
        TextColumn("reading the database: {task.completed:,.0f} rows"),
        RecordsPerSecond(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
    task = progress.add_task("rows", total=None, records=0)
    last = 0.0

    def update(rows: int, records: int) -> None:
        nonlocal last
        if time.monotonic() - last > 0.1:  # redraw at most ten times a second
            progress.update(task, completed=rows, records=records)
            last = time.monotonic()

    with progress:
        yield update


def _print_summary(run) -> None:
    from rich.table import Table

    from medfactory.cli.tables import console, print_convert_summary

    print_convert_summary(run.summary)
    data = run.as_dict()["database"]
    table = Table(title=f"from {data['source']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("read", f"{data['read_from']} ({data['mode']})")
    table.add_row("new", f"{data['new']:,}")
    table.add_row("already present", f"{data['already_present']:,}")
    table.add_row("rejected", f"{data['rejected']:,}")
    if data["since_column"]:
        mark = data["high_water_mark"]
        shown = [m["value"] if m else "-" for m in (mark["before"], mark["after"])]
        table.add_row(f"high-water mark ({data['since_column']})", " -> ".join(map(str, shown)))
    table.add_row("records now", "  ".join(f"{s} {n:,}" for s, n in data["total"].items()))
    console.print(table)


class WithSqlSource(click.Command):
    """`data convert` as it is, whose source `sql` is this module's command: the file
    sources take paths, a database takes a URL and a query, so the two parse apart."""

    def __init__(self, files: click.Command):
        self.__dict__.update(files.__dict__)
        self.epilog = (
            f"{files.epilog or ''}\n\nFrom a database: medfactory data convert sql URL --help"
        )

    def make_context(self, info_name, args, parent=None, **extra):
        if args and args[0] == "sql":
            return sql.make_context(f"{info_name} sql", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)
