"""`medfactory recipe`: render and check LLaMA-Factory recipes."""

from __future__ import annotations

import click

from medfactory.cli.common import DATASET_DIR, ExampleGroup, with_example
from medfactory.recipes.render import METHODS, REPORT_TO, STAGES, TRAINING_STAGES


@click.group(cls=ExampleGroup)
def recipe() -> None:
    """Render and check LLaMA-Factory recipes."""


@with_example(
    "medfactory recipe render --model deepseek-r1-distill-qwen-7b --method lora "
    "--stage train --dataset medical_o1_zh learning_rate=5e-5"
)
@recipe.command()
@click.option("--model", "preset", required=True, help="Model preset (templates/presets.yaml).")
@click.option("--method", type=click.Choice(METHODS), default="lora", show_default=True)
@click.option("--stage", type=click.Choice(STAGES), default="train", show_default=True)
@click.option("--dataset", "datasets", multiple=True, help="Registered dataset name (repeatable).")
@click.option("--reward", help="ppo: a reward server URL (`medfactory reward serve`) or a "
              "trained reward model's folder (lora: its adapter; full: the model).")  # fmt: skip
@click.option("--report-to", type=click.Choice(REPORT_TO), default="none", show_default=True,
              help="Where LLaMA-Factory reports the training curves (mlflow: the store "
              "`medfactory train` records in).")  # fmt: skip
@click.argument("overrides", nargs=-1)
def render(
    preset: str, method: str, stage: str, datasets: tuple[str, ...], reward, report_to, overrides
) -> None:
    """Write llamafactory_configs/<model>/<stage>_<method>.yaml.

    OVERRIDES are key=value pairs that replace the template's values (or add
    keys); nothing else changes. The file's first line is this command.
    """
    from medfactory.recipes.render import parse_overrides, write_recipe

    if stage in (*TRAINING_STAGES, "predict") and not datasets:
        raise click.UsageError(f"--stage {stage} needs at least one --dataset")
    if stage == "ppo" and not reward:
        raise click.UsageError("--stage ppo needs --reward URL|PATH")
    if reward and stage != "ppo":
        raise click.UsageError(f"--reward is for --stage ppo, not --stage {stage}")
    path = write_recipe(
        preset, method, stage, list(datasets), parse_overrides(overrides), reward=reward,
        report_to=report_to,
    )  # fmt: skip
    click.echo(f"wrote {path.relative_to(path.parents[2])}")


@with_example(
    "medfactory recipe easyr1 --model qwen2.5-7b-instruct --dataset o1_verifiable "
    "--reward http://127.0.0.1:8300/score --gpus 8"
)
@recipe.command()
@click.option("--model", "preset", required=True, help="Model preset (templates/presets.yaml).")
@click.option("--dataset", required=True, help="A prompt set (`data convert medical-o1-"
              "verifiable|exam FILE --name NAME`).")  # fmt: skip
@click.option(
    "--reward", required=True, help="The reward server's URL (`medfactory reward serve`)."
)
@click.option("--gpus", default=8, show_default=True, help="GPUs per node.")
@click.option("--lora-rank", default=0, show_default=True, help="0: full fine-tuning; else LoRA.")
@click.option("--rollout-n", default=8, show_default=True, help="Answers sampled per prompt.")
@click.option("--model-path", help="A local copy of the model [default: the preset's id].")
@DATASET_DIR
def easyr1(preset, dataset, reward, gpus, lora_rank, rollout_n, model_path, dataset_dir) -> None:
    """GRPO with EasyR1 on a prompt set, rewarded by medfactory's verifiers.

    Writes llamafactory_configs/<model>/easyr1/grpo_<dataset>.yaml (EasyR1's own
    config) and the prompts as EasyR1 reads them (DATASET_DIR/<dataset>.easyr1_*.jsonl).
    EasyR1 needs GPUs and its own environment; run it from this checkout, with
    `medfactory reward serve` answering at --reward.
    """
    from medfactory.recipes.easyr1 import write_easyr1

    written = write_easyr1(preset, dataset, reward, gpus, lora_rank, rollout_n, model_path,
                           dataset_dir)  # fmt: skip
    prompts = ", ".join(f"{n} {split}" for split, n in written["prompts"].items())
    click.echo(f"wrote {written['config']} and its prompts ({prompts})")
    click.echo(f"run, from this checkout, in EasyR1's environment: {written['run']}")


@with_example("medfactory recipe check")
@recipe.command()
@click.argument("recipes", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def check(recipes: tuple[str, ...]) -> None:
    """Check recipes: fresh, parsed by LLaMA-Factory, datasets registered.

    With no RECIPES, checks every file under llamafactory_configs/.
    """
    from pathlib import Path

    from medfactory.recipes.check import check_recipes

    paths = [Path(p) for p in recipes] or None
    problems = check_recipes(paths)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} recipe problem(s)")
    click.echo("recipes: all fresh, parsed by LLaMA-Factory, datasets registered")


@with_example("medfactory recipe presets")
@recipe.command()
def presets() -> None:
    """List the model presets."""
    from medfactory.recipes.presets import load_presets

    for name, preset in load_presets().items():
        thinking = "reasoning" if preset.reasoning else ""
        click.echo(f"{name:32s} {preset.model:45s} template={preset.template:11s} {thinking}")
