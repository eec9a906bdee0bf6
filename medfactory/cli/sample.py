"""`medfactory data sample`: rejection sampling (RFT) from a served model, scored by the
reward server's verifiers."""

from __future__ import annotations

from functools import partial

import click

from medfactory.cli.common import URL, dataset_format, registered_split, with_example
from medfactory.cli.reward import build_from_options, verifier_options
from medfactory.reporting import dumps


def _split_ratios(_ctx, _param, value: str) -> tuple[float, ...]:
    from converters.split import parse_split

    try:
        return parse_split(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@with_example(
    "medfactory data sample --endpoint http://127.0.0.1:8000 --dataset exam_train --n 8 "
    "--verifier choice --answers dataset_info/exam.answers.jsonl --name exam_rft"
)
@click.command()
@click.option(
    "--endpoint", required=True, type=URL(), help="Base URL of an OpenAI-compatible server."
)
@click.option("--model-name", help="The sampled model [default: the server's last listed].")
@click.option("--api-key", envvar="MEDFACTORY_API_KEY", help="The server's API key.")
@registered_split
@click.option("--n", "n", default=8, show_default=True, type=click.IntRange(1, 128),
              help="Answers asked per prompt, in one request (vLLM's n).")  # fmt: skip
@verifier_options
@click.option(
    "--min-score",
    default=0.0,
    show_default=True,
    help="An answer passes when it scores above this; the best passing one is kept as SFT.",
)
@click.option(
    "--name", required=True, help="Registers NAME_sft_train and NAME_dpo_train (and splits)."
)
@click.option("--temperature", default=0.8, show_default=True, help="Sampling temperature.")
@click.option("--max-tokens", default=1024, show_default=True, help="Tokens per answer.")
@click.option("--concurrency", default=4, show_default=True, help="Requests in flight.")
@dataset_format("LLaMA-Factory format of the exports.")
@click.option(
    "--split", default="1", show_default=True, callback=_split_ratios,
    help="train,val,test ratios of the exports ('1': train only).",
)  # fmt: skip
@click.option("--seed", default=42, show_default=True, help="Seed of the split.")
@click.option("--force", is_flag=True, help="Replace datasets of the same names.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def sample(
    endpoint, model_name, api_key, dataset, dataset_dir, n, min_score, name, temperature,
    max_tokens, concurrency, fmt, split, seed, force, as_json, **verifier,
) -> None:  # fmt: skip
    """Ask a served model for N answers per prompt, keep the ones a verifier passes.

    Each answer is scored by the verifier `reward serve` scores with, on the prompt and
    answer as the server receives them. The best answer above --min-score becomes SFT
    data (NAME_sft_*), the best and the worst, when they score differently, a DPO pair
    (NAME_dpo_*); both registered with manifests and provenance.
    DATASET_DIR/NAME.sample-report.json counts, per prompt, how many of the N answers
    passed. A rerun asks only for the prompts it has no answers for (and needs no server
    when it has them all).
    """
    from deploy.client import Endpoint
    from medfactory.cli.progress import count_progress
    from medfactory.rewards.sampling import SampleOptions, sample_dataset

    scorer = build_from_options(**verifier)
    options = SampleOptions(
        dataset=dataset, name=name, dataset_dir=dataset_dir, n=n, min_score=min_score,
        temperature=temperature, max_tokens=max_tokens, concurrency=concurrency, fmt=fmt,
        split=split, seed=seed, force=force,
    )  # fmt: skip
    server = Endpoint(endpoint, api_key=api_key, model=model_name)  # asked when a prompt is due
    summary = sample_dataset(server, scorer, options, partial(count_progress, enabled=not as_json))
    if as_json:
        click.echo(dumps(summary))
    else:
        _print_summary(summary)


def _print_summary(summary: dict) -> None:
    click.echo(
        f"{summary['dataset']}: {summary['prompts']} prompts, {summary['sampled']} sampled "
        f"({summary['requests']} requests, {summary['from_earlier_runs']} from earlier runs, "
        f"{summary['refused']} refused); {summary['passed']} of {summary['answers']} answers "
        f"passed ({summary['verifier']}, above {summary['min_score']:g})"
    )
    counts = summary["passed_histogram"].items()
    histogram = ", ".join(f"{passed}/{summary['n']}: {prompts}" for passed, prompts in counts)
    click.echo(f"prompts by answers passed: {histogram or 'none'}")
    click.echo(f"kept: {summary['sft']} SFT records, {summary['dpo']} DPO pairs")
    for path in summary["files"]:
        click.echo(f"  {path}")
    for reason, count in summary["skipped"].items():
        click.echo(f"skipped {count}: {reason}")
    click.echo(f"per-prompt counts: {summary['report']}")
