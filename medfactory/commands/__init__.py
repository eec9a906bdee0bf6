"""One module per `medfactory` command group, and the help layout they share."""

from __future__ import annotations

import click


class ExampleGroup(click.Group):
    """A group whose help lists each command with a one-line example."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=70)))
            example = getattr(command, "example", None)
            if example:
                rows.append(("", f"e.g. {example}"))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def with_example(example: str):
    """Attach a one-line example, shown in the parent's list and the command's own help."""

    def decorate(command: click.Command) -> click.Command:
        command.example = example
        if not isinstance(command, click.Group):
            command.epilog = f"Example:\n\n\b\n    {example}"
        return command

    return decorate
