"""`medfactory reward`: the reward server PPO training posts its answers to."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.common import URL, ExampleGroup, options, with_example

VERIFIERS = ("choice", "match", "judge", "model", "safety")


@click.group(cls=ExampleGroup)
def reward() -> None:
    """Score answers for reinforcement (LLaMA-Factory's PPO, reward_model_type: api)."""


# The verifier and what it needs: `reward serve` and `data sample` score alike.
verifier_options = options(
    click.option(
        "--verifier",
        type=click.Choice(VERIFIERS),
        required=True,
        help="choice: the letter against the key; match: the final answer against "
        "the reference; judge: a judge model's rubric score, in [-1, 1]; model: a "
        "trained reward model; safety: the safety lint alone.",
    ),
    click.option(
        "--answers",
        type=click.Path(dir_okay=False, path_type=Path),
        help="The answer key: an exam file (choice), question/answer rows (match).",
    ),
    click.option(
        "--safety-penalty",
        type=float,
        default=0.0,
        show_default=True,
        help="Subtracted from the score of an answer the safety lint flags.",
    ),
    click.option(
        "--format-penalty",
        type=float,
        default=-1.0,
        show_default=True,
        help="The score of an answer no letter or final answer is read from.",
    ),
    click.option(
        "--reward-model",
        type=click.Path(file_okay=False, path_type=Path),
        help="model: the output_dir of a `--stage rm` run.",
    ),
    click.option("--base", help="model: the LoRA reward model's base, if not the one named."),
    click.option(
        "--template",
        default="qwen",
        show_default=True,
        help="model: the reward model recipe's template; each answer is scored closed as "
        "a finished turn of it, as the model was trained.",
    ),
    click.option(
        "--judge-endpoint",
        type=URL(),
        help="An OpenAI-compatible judge: judge grades on the rubric; match asks it "
        "whether an answer that does not match exactly is equivalent to the reference.",
    ),
    click.option("--judge-model", help="The judge model [default: the server's last listed]."),
    click.option("--judge-api-key", envvar="MEDFACTORY_JUDGE_API_KEY", help="The judge's key."),
    click.option(
        "--rubric",
        default="medical-default",
        show_default=True,
        help="judge: a rubric name (templates/rubrics/), a YAML rubric, or HealthBench "
        "JSONL (one rubric per prompt, found by its prompt in the text).",
    ),
    click.option(
        "--judge-cache",
        type=click.Path(dir_okay=False, path_type=Path),
        help="judge: the file of earlier judgments [default: .cache/rewards/judgments.jsonl].",
    ),
)


def build_from_options(
    verifier, answers, safety_penalty, format_penalty, reward_model, base, template,
    judge_endpoint, judge_model, judge_api_key, rubric, judge_cache,
):  # fmt: skip
    """The verifier `verifier_options` describe."""
    from medfactory.rewards.judging import JudgeSpec
    from medfactory.rewards.verifiers import build_verifier

    judge = None
    if judge_endpoint:
        judge = JudgeSpec(judge_endpoint, judge_model, rubric, judge_api_key, judge_cache)
    return build_verifier(verifier, answers, safety_penalty, format_penalty, reward_model,
                          base, judge=judge, template=template)  # fmt: skip


@with_example("medfactory reward serve --port 8300 --verifier choice --answers exam.csv")
@reward.command()
@click.option("--port", default=8300, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@verifier_options
def serve(port, host, verifier, **options) -> None:
    """Answer POST /score {"model", "messages": [texts]} with {"scores": [...]}.

    Put http://HOST:PORT/score in the PPO recipe: `medfactory recipe render --stage ppo
    --reward http://127.0.0.1:8300/score`.
    """
    from medfactory.rewards.server import PATH, serve

    scorer = build_from_options(verifier, **options)
    click.echo(f"reward server ({verifier}) on http://{host}:{port}{PATH}; GET /stats for counts")
    serve(scorer, host, port)
