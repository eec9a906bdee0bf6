"""`medfactory eval predictions|endpoint|compare`: BLEU-4 / ROUGE, fast and comparable."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from medfactory.cli.common import ExampleGroup, registered_split, server_client, with_example
from medfactory.evaluation.metrics import METRICS

THINK = click.option(
    "--think",
    type=click.Choice(["keep", "strip"]),
    help="strip: score the final answer without its <think>...</think> part "
    "(reported separately); keep: score the raw text.",
)
WORKERS = click.option("--workers", type=int, help="Processes [default: all cores].")


@click.group(cls=ExampleGroup)
def eval_group() -> None:
    """Score predictions with LLaMA-Factory's BLEU-4 / ROUGE, and compare runs."""


def _score(path: Path, think: str, workers: int | None) -> dict:
    from medfactory.cli.progress import count_progress
    from medfactory.evaluation.scoring import read_predictions, score_predictions

    total = len(read_predictions(path))
    with count_progress("scoring", total) as advance:
        scores = score_predictions(path, think=think, workers=workers, on_progress=advance)
    _print_scores(scores, path.parent / "scores.json")
    return scores


def _print_scores(scores: dict, written: Path) -> None:
    table = Table(title=f"{scores['samples']} samples (think={scores['think']})")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    table.add_row(*(f"{scores[m]:.2f}" for m in METRICS))
    console = Console()
    console.print(table)
    if thought := scores.get("thought"):
        console.print(
            f"thought: {thought['with_thought']} answers reasoned, "
            f"{thought['mean_chars']:.0f} characters on average, "
            f"{thought['unfinished']} cut off before the answer"
        )
    console.print(f"per-sample scores: {written}")


@with_example("medfactory eval predictions saves/tiny/lora/predict/generated_predictions.jsonl")
@eval_group.command()
@click.argument("file", type=click.Path(path_type=Path))
@THINK
@WORKERS
def predictions(file: Path, think: str | None, workers: int | None) -> None:
    """Score a generated_predictions.jsonl; write scores.json next to it.

    With the default --think keep the numbers equal LLaMA-Factory's
    predict_results.json, sample for sample.
    """
    _score(file, think or "keep", workers)


@with_example(
    "medfactory eval endpoint --endpoint http://127.0.0.1:8000 --dataset huatuo_sample_test"
)
@eval_group.command()
@server_client
@registered_split
@click.option("--max-samples", type=int, help="Only the first N conversations.")
@click.option("--concurrency", default=4, show_default=True, help="Requests in flight.")
@click.option("--temperature", default=0.0, show_default=True)
@click.option("--max-tokens", default=512, show_default=True, help="Tokens per answer.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output folder [default: saves/eval/DATASET].",
)
@THINK
@WORKERS
def endpoint(
    endpoint, dataset, dataset_dir, api_key, model_name, max_samples, concurrency,
    temperature, max_tokens, out, think, workers,
) -> None:  # fmt: skip
    """Answer a test split through a served model, then score the answers.

    Sends each conversation's system prompt and earlier turns, writes
    OUT/generated_predictions.jsonl and OUT/scores.json. Reasoning models are
    scored on their final answer (--think strip, the default here).
    """
    from converters.conversations import load_conversations
    from deploy.client import Endpoint
    from medfactory.cli.progress import count_progress
    from medfactory.evaluation.generate import generate_predictions

    conversations = load_conversations(dataset_dir, dataset, limit=max_samples)
    server = Endpoint(endpoint, api_key=api_key, model=model_name)
    model = server.check()
    out = out or Path("saves/eval") / dataset
    with count_progress(f"asking {model}", len(conversations)) as advance:
        path = generate_predictions(
            server, conversations, out / "generated_predictions.jsonl",
            concurrency=concurrency, temperature=temperature, max_tokens=max_tokens,
            on_progress=advance,
        )  # fmt: skip
    click.echo(f"predictions: {path}")
    _score(path, think or "strip", workers)


@with_example(
    "medfactory eval compare saves/tiny/base/predict/generated_predictions.jsonl "
    "saves/tiny/lora/predict/generated_predictions.jsonl --names base,lora"
)
@eval_group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--names", help="Comma-separated run names [default: their folder names].")
@click.option(
    "--out",
    default="saves/compare",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for report.md, comparison.json and scores.png.",
)
@THINK
def compare(files, names, out, think) -> None:
    """Compare scored runs: the first is the baseline, the others are compared with it.

    FILES are scores.json files, or generated_predictions.jsonl files, which are
    scored first (--think, as `eval predictions`).

    Prints a table with per-metric deltas and 95 % paired-bootstrap confidence
    intervals; writes a Markdown report and a bar chart.
    """
    from medfactory.evaluation.compare import write_comparison

    scored = []
    for file in files:
        if file.suffix == ".jsonl":  # predictions: score them first, as `eval predictions`
            _score(file, think or "keep", None)
            file = file.with_name("scores.json")
        scored.append(file)
    result, report = write_comparison(scored, names.split(",") if names else None, out)

    table = Table(title=f"{result.samples} paired samples; baseline {result.names[0]}")
    table.add_column("metric")
    for name in result.names:
        table.add_column(name, justify="right")
    for name in result.deltas:
        table.add_column(f"Δ {name} [95% CI]", justify="right")
    for i, metric in enumerate(METRICS):
        cells = [f"{result.means[n][metric]:.2f}" for n in result.names]
        for deltas in result.deltas.values():
            d = deltas[i]
            mark = " *" if d.significant else ""
            cells.append(f"{d.delta:+.2f} [{d.low:+.2f}, {d.high:+.2f}]{mark}")
        table.add_row(metric, *cells)
    console = Console()
    console.print(table)
    console.print("* the interval excludes zero")
    console.print(f"report: {report}  chart: {out / 'scores.png'}")
