"""`medfactory train|predict|export RECIPE`: run a recipe with llamafactory-cli."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.common import options, with_example

RECIPE = click.argument("recipe", type=click.Path(path_type=Path))
OVERRIDES = click.argument("overrides", nargs=-1)


# --tracking-uri, --no-tracking, --require-tracking, --model-name.
tracking_options = options(
    click.option("--tracking-uri", help="MLflow store to record in [default: "
                 "$MLFLOW_TRACKING_URI, else sqlite under saves/mlflow/]."),
    click.option("--no-tracking", is_flag=True, help="Record nothing (also "
                 "MEDFACTORY_TRACKING=off)."),
    click.option("--require-tracking", is_flag=True, help="Fail, before starting, when "
                 "the store does not answer (default: warn once, record locally)."),
    click.option("--model-name", help="Registered model name [default: the output "
                 "folder's path under saves/ without its last part, e.g. tiny-lora]."),
)  # fmt: skip


def _run(command: str, recipe: Path, overrides, tracking: dict, distributed=None) -> None:
    from medfactory.recipes.render import parse_overrides
    from medfactory.recipes.run import run_and_record
    from medfactory.tracking.settings import Tracking

    settings = Tracking.from_options(
        tracking["tracking_uri"], tracking["no_tracking"], tracking["require_tracking"],
        tracking["model_name"],
    )  # fmt: skip
    finished = run_and_record(command, recipe, parse_overrides(overrides), distributed, settings)
    click.echo(f"llamafactory-cli {command} finished; log: {finished.log}")
    for warning in finished.warnings:
        click.echo(f"warning: {warning}", err=True)
    if finished.recorded is not None:
        made = f"; model version {finished.recorded.version}" if finished.recorded.version else ""
        if finished.recorded.evaluated:
            made = f"; scores attached to {finished.recorded.evaluated}"
        click.echo(f"recorded run {finished.recorded.run_id} in {finished.recorded.uri}{made}")


@with_example("medfactory train llamafactory_configs/tiny/train_lora.yaml")
@click.command()
@RECIPE
@click.option("--nproc", type=int, help="Processes (GPUs) per node; launches through torchrun.")
@click.option("--nnodes", default=1, show_default=True, help="Number of nodes.")
@click.option("--node-rank", default=0, show_default=True, help="This node's rank.")
@click.option("--master-addr", default="127.0.0.1", show_default=True, help="Rank 0's address.")
@click.option("--master-port", type=int, help="Rank 0's port [default: a free one].")
@tracking_options
@OVERRIDES
def train(recipe, nproc, nnodes, node_rank, master_addr, master_port, overrides, **tracking):
    """Train with a recipe, on one or many GPUs and nodes.

    OVERRIDES are key=value pairs passed to LLaMA-Factory for this run only.
    The tokenized dataset is cached under .cache/tokenized/ and reused.
    The run is recorded on MLflow and its model registered as a version
    (`medfactory models list`).
    """
    from medfactory.recipes.run import Distributed

    distributed = Distributed(nproc, nnodes, node_rank, master_addr, master_port)
    _run("train", recipe, overrides, tracking, distributed)


@with_example("medfactory predict llamafactory_configs/tiny/predict_lora.yaml")
@click.command()
@RECIPE
@tracking_options
@OVERRIDES
def predict(recipe, overrides, **tracking) -> None:
    """Generate on a test split and score BLEU-4/ROUGE.

    Runs llamafactory-cli train with do_predict; writes generated_predictions.jsonl
    and predict_results.json to the recipe's output_dir. The run and its scores are
    recorded on MLflow.
    """
    _run("train", recipe, overrides, tracking)


@with_example("medfactory export llamafactory_configs/tiny/export_lora.yaml")
@click.command()
@RECIPE
@tracking_options
@OVERRIDES
def export(recipe, overrides, **tracking) -> None:
    """Merge a LoRA adapter into its base model (llamafactory-cli export).

    The merged model is registered on MLflow as a version whose parent is the
    adapter's version.
    """
    _run("export", recipe, overrides, tracking)
