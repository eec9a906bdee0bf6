"""`medfactory train|predict|export RECIPE`: run a recipe with llamafactory-cli."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory.cli.common import with_example

RECIPE = click.argument("recipe", type=click.Path(path_type=Path))
OVERRIDES = click.argument("overrides", nargs=-1)


def _run(command: str, recipe: Path, overrides, distributed=None) -> None:
    from medfactory.recipes.render import parse_overrides
    from medfactory.recipes.run import run_recipe

    log = run_recipe(command, recipe, parse_overrides(overrides), distributed=distributed)
    click.echo(f"llamafactory-cli {command} finished; log: {log}")


@with_example("medfactory train llamafactory_configs/tiny/train_lora.yaml")
@click.command()
@RECIPE
@click.option("--nproc", type=int, help="Processes (GPUs) per node; launches through torchrun.")
@click.option("--nnodes", default=1, show_default=True, help="Number of nodes.")
@click.option("--node-rank", default=0, show_default=True, help="This node's rank.")
@click.option("--master-addr", default="127.0.0.1", show_default=True, help="Rank 0's address.")
@click.option("--master-port", type=int, help="Rank 0's port [default: a free one].")
@OVERRIDES
def train(recipe, nproc, nnodes, node_rank, master_addr, master_port, overrides) -> None:
    """Train with a recipe, on one or many GPUs and nodes.

    OVERRIDES are key=value pairs passed to LLaMA-Factory for this run only.
    The tokenized dataset is cached under .cache/tokenized/ and reused.
    """
    from medfactory.recipes.run import Distributed

    distributed = Distributed(nproc, nnodes, node_rank, master_addr, master_port)
    _run("train", recipe, overrides, distributed)


@with_example("medfactory predict llamafactory_configs/tiny/predict_lora.yaml")
@click.command()
@RECIPE
@OVERRIDES
def predict(recipe, overrides) -> None:
    """Generate on a test split and score BLEU-4/ROUGE.

    Runs llamafactory-cli train with do_predict; writes generated_predictions.jsonl
    and predict_results.json to the recipe's output_dir.
    """
    _run("train", recipe, overrides)


@with_example("medfactory export llamafactory_configs/tiny/export_lora.yaml")
@click.command()
@RECIPE
@OVERRIDES
def export(recipe, overrides) -> None:
    """Merge a LoRA adapter into its base model (llamafactory-cli export)."""
    _run("export", recipe, overrides)
