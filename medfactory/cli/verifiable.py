"""`medfactory data convert medical-o1-verifiable|exam FILE`: prompt sets for PPO and
`data sample` whose answers only the reward server holds; and how `data sample` and
these converters join the `data` group."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.common import DATASET_DIR, dataset_format, with_example
from medfactory.reporting import dumps


def _prompt_set_command(kind: str, example: str, about: str) -> click.Command:
    @with_example(example)
    @click.command(kind, help=about)
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option(
        "--name", required=True, help="Registers NAME_train and NAME_test (the held-out part)."
    )
    @DATASET_DIR
    @click.option(
        "--held-out",
        default=0.1,
        show_default=True,
        help="The share of questions kept out of training, for evaluation after it.",
    )
    @click.option("--seed", default=42, show_default=True, help="Seed of the held-out split.")
    @dataset_format()
    @click.option("--system", default="", help="System prompt stored with every prompt.")
    @click.option("--force", is_flag=True, help="Replace registered entries of the same name.")
    @click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
    def command(file, name, dataset_dir, held_out, seed, fmt, system, force, as_json) -> None:
        from medfactory.rewards.prompt_sets import PromptSetOptions, convert_prompt_set

        options = PromptSetOptions(name, dataset_dir, held_out, seed, fmt, system, force)
        summary = convert_prompt_set(kind, file, options)
        if as_json:
            click.echo(dumps(summary))
        else:
            _print_summary(summary)

    return command


def _print_summary(summary: dict) -> None:
    written = summary["written"]
    rejected = ", ".join(f"{r} {n}" for r, n in summary["rejected"].items()) or "none"
    click.echo(
        f"{summary['name']} ({summary['source']}): {summary['read']} read, "
        f"{written['train']} train prompts, {written['test']} held out, "
        f"{summary['duplicates']} duplicates, rejected: {rejected}"
    )
    for what, path in summary["files"].items():
        click.echo(f"  {what:<8}{path}")
    if "answers" in summary["files"]:
        click.echo(f"next: medfactory reward serve --answers {summary['files']['answers']} ...")


medical_o1_verifiable = _prompt_set_command(
    "medical-o1-verifiable",
    "medfactory data convert medical-o1-verifiable medical_o1_verifiable_problem.json "
    "--name verifiable",
    """medical-o1's verifiable problems as a PPO prompt set (reward serve --verifier match).

    FILE is a JSON array of {"Open-ended Verifiable Question", "Ground-True Answer"}.
    The questions become prompts without an answer (NAME_train, and NAME_test held out);
    the answers go only to DATASET_DIR/NAME.answers.jsonl (the train prompts' key) and
    NAME.heldout.jsonl (the held-out questions with theirs). Every record is written,
    counted as a duplicate question, or rejected to NAME.rejects.jsonl with its line and
    reason.
    """,
)
exam = _prompt_set_command(
    "exam",
    "medfactory data convert exam our_exam.csv --name exam",
    """An `eval exam` file as a PPO prompt set (reward serve --verifier choice).

    FILE is a CSV or JSONL exam: question, A, B, ... (or options), answer, and optionally
    id and subject. Each question is asked as `eval exam` asks it, with its options and no
    answer (NAME_train, and NAME_test held out); the key goes to
    DATASET_DIR/NAME.answers.jsonl, the held-out questions to NAME.heldout.jsonl, an exam
    file for `eval exam --benchmark` after training. Every row is written, counted as a duplicate
    question, or rejected to NAME.rejects.jsonl with its line and reason.
    """,
)
PROMPT_SETS = {command.name: command for command in (medical_o1_verifiable, exam)}


class WithPromptSets(click.Command):
    """`data convert` as it is (its `sql` source included), whose sources `exam` and
    `medical-o1-verifiable` are this module's commands: they write prompt sets and keys,
    not training dialogues."""

    def __init__(self, convert: click.Command):
        names = "|".join(PROMPT_SETS)
        # The help `data convert --help` shows is the wrapped command's own.
        convert.epilog = (
            f"{convert.epilog or ''}\n\nPrompt sets for PPO: medfactory data convert "
            f"{names} FILE --help"
        )
        self.__dict__.update(convert.__dict__)
        self.convert = convert

    def make_context(self, info_name, args, parent=None, **extra):
        if args and args[0] in PROMPT_SETS:
            command = PROMPT_SETS[args[0]]
            return command.make_context(f"{info_name} {args[0]}", args[1:], parent=parent, **extra)
        return self.convert.make_context(info_name, args, parent=parent, **extra)


def attach(data: click.Group) -> None:
    """`data sample`, and the prompt sets' sources of `data convert`."""
    from medfactory.cli.sample import sample

    data.add_command(sample)
    data.add_command(WithPromptSets(data.commands["convert"]))
