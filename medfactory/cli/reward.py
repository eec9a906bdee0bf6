"""`medfactory reward`: the reward server PPO training posts its answers to."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.common import ExampleGroup, with_example

VERIFIERS = ("choice", "match", "model", "safety")


@click.group(cls=ExampleGroup)
def reward() -> None:
    """Score answers for reinforcement (LLaMA-Factory's PPO, reward_model_type: api)."""


@with_example("medfactory reward serve --port 8300 --verifier choice --answers exam.csv")
@reward.command()
@click.option("--port", default=8300, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--verifier",
    type=click.Choice(VERIFIERS),
    required=True,
    help="choice: the letter against the key; match: the final answer against "
    "the reference; model: a trained reward model; safety: the safety lint alone.",
)
@click.option(
    "--answers",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The answer key: an exam file (choice), question/answer rows (match).",
)
@click.option(
    "--safety-penalty",
    type=float,
    default=0.0,
    show_default=True,
    help="Subtracted from the score of an answer the safety lint flags.",
)
@click.option(
    "--format-penalty",
    type=float,
    default=-1.0,
    show_default=True,
    help="The score of an answer no letter or final answer is read from.",
)
@click.option(
    "--reward-model",
    type=click.Path(file_okay=False, path_type=Path),
    help="model: the output_dir of a `--stage rm` run.",
)
@click.option("--base", help="model: the LoRA reward model's base, if not the one it names.")
def serve(
    port, host, verifier, answers, safety_penalty, format_penalty, reward_model, base
) -> None:
    """Answer POST /score {"model", "messages": [texts]} with {"scores": [...]}.

    Put http://HOST:PORT/score in the PPO recipe: `medfactory recipe render --stage ppo
    --reward http://127.0.0.1:8300/score`.
    """
    from medfactory.rewards.errors import RewardError
    from medfactory.rewards.server import PATH, serve
    from medfactory.rewards.verifiers import build_verifier

    try:
        scorer = build_verifier(
            verifier, answers, safety_penalty, format_penalty, reward_model, base
        )
    except RewardError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"reward server ({verifier}) on http://{host}:{port}{PATH}; GET /stats for counts")
    serve(scorer, host, port)
