"""One module per `medfactory` command group, and the help layout they share."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

from medfactory import paths


class ExampleGroup(click.Group):
    """A group whose help lists each command with a one-line example."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = [
            (name, command)
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        if not commands:
            return
        column = max(len(name) for name, _ in commands) + 2
        # One line per summary, cut to the width; examples are never wrapped so
        # they stay copy-pasteable.
        limit = max(formatter.width - formatter.current_indent - 2 - column, 30)
        with formatter.section("Commands"):
            for name, command in commands:
                indent = " " * formatter.current_indent
                summary = command.get_short_help_str(limit=limit)
                formatter.write(f"{indent}{name:<{column}}{summary}\n")
                example = getattr(command, "example", None)
                if example:
                    formatter.write(f"{indent}{'':<{column}}e.g. {example}\n")


def with_example(example: str):
    """Attach a one-line example, shown in the parent's list and the command's own help."""

    def decorate(command: click.Command) -> click.Command:
        command.example = example
        if not isinstance(command, click.Group):
            command.epilog = f"Example:\n\n\b\n    {example}"
        return command

    return decorate


class URL(click.ParamType):
    """A server's address, checked whole (scheme, host, port 1-65535) as the option is read:
    a typo is click's one-line "Invalid value for '--endpoint'", never a traceback later."""

    name = "URL"

    def __init__(self, default_scheme: str | None = None):
        self.default_scheme = default_scheme  # for a bare host, e.g. ModelScope's domain

    def convert(self, value, param, ctx) -> str:
        from deploy.urls import URLError, parse_url

        try:
            return parse_url(value, self.default_scheme)
        except URLError as error:
            self.fail(str(error), param, ctx)


def options(*decorators: Callable) -> Callable:
    """Several click options as one decorator; --help lists them in the order given."""

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


# Options shared by several commands.

server_client = options(
    click.option(
        "--endpoint", required=True, type=URL(), help="Base URL of an OpenAI-compatible server."
    ),
    click.option("--api-key", envvar="MEDFACTORY_API_KEY", help="The server's API key."),
    click.option("--model-name", help="Served model name [default: the server's last listed]."),
)  # --endpoint, --api-key, --model-name: how a command reaches a running server


# One rule for every command: the project's dataset_info/ (or $MEDFACTORY_DATASET_DIR),
# whatever the working directory; a relative --dataset-dir is relative to it.
DATASET_DIR = click.option(
    "--dataset-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: paths.dataset_dir(),
    show_default="the project's dataset_info/",
    help="Folder of dataset_info.json and the data files.",
)


RULES = click.option(
    "--rules",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Safety rules YAML [default: templates/safety/rules.yaml].",
)


# --dataset, --dataset-dir: a split registered in DATASET_DIR/dataset_info.json.
registered_split = options(
    click.option("--dataset", required=True, help="A registered split, e.g. huatuo_sample_test."),
    DATASET_DIR,
)


# The feedback store every review and A/B command reads and writes.
DB = click.option(
    "--db",
    help="SQLAlchemy URL of the store: sqlite:///PATH or postgresql://USER@HOST/DB "
    "[default: sqlite:///saves/review/review.db].",
)


def open_db(db: str | None):
    from medfactory.store.db import default_url, open_store

    return open_store(db or default_url(paths.PROJECT_ROOT))


def _split_ratios(_ctx, _param, value: str) -> tuple[float, ...]:
    from converters.split import parse_split

    try:
        return parse_split(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def dataset_format(help: str = "LLaMA-Factory dataset format.") -> Callable:
    """--format sharegpt|alpaca, of what a command writes and registers."""
    return click.option(
        "--format", "fmt", type=click.Choice(["sharegpt", "alpaca"]), default="sharegpt",
        show_default=True, help=help,
    )  # fmt: skip


# How `review export` and `ab export` write and register what they export.
export_options = options(
    click.option("--name", required=True, help="Datasets NAME_dpo|kto|sft_train/_val/_test."),
    DATASET_DIR,
    dataset_format("LLaMA-Factory format (KTO data is always ShareGPT)."),
    click.option(
        "--split",
        default="0.8,0.1,0.1",
        show_default=True,
        callback=_split_ratios,
        help="train,val,test ratios.",
    ),  # fmt: skip
    click.option("--seed", default=42, show_default=True, help="Seed of the split."),
    click.option("--force", is_flag=True, help="Replace datasets of the same names."),
    click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
)


def unwind_on_termination() -> None:
    """SIGTERM and SIGHUP (a closed terminal) unwind like Ctrl-C.

    Commands that start servers or stages in their own process groups stop
    them in `finally`/`except` blocks; the default action of these signals
    would kill the command and leave them running.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _: sys.exit(128 + signum))
    # A background job of a script starts with SIGINT ignored, and Python then never
    # raises KeyboardInterrupt: `kill -INT` would do nothing. Ctrl-C's meaning, always.
    signal.signal(signal.SIGINT, signal.default_int_handler)
