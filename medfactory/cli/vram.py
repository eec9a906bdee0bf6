"""`medfactory vram`: will this run fit my GPU?"""

from __future__ import annotations

import click

from medfactory.cli.common import with_example

POSITIVE = click.IntRange(min=1)


@with_example("medfactory vram --model qwen2.5-7b-instruct --method qlora")
@click.command()
@click.option("--model", required=True, help="A preset name, or a model's config.json (or folder).")
@click.option("--method", type=click.Choice(["lora", "qlora", "full"]), default="lora",
              show_default=True)  # fmt: skip
@click.option("--batch", default=1, show_default=True, type=POSITIVE, help="Micro-batch per GPU.")
@click.option("--seq", default=1024, show_default=True, type=POSITIVE,
              help="Sequence length (cutoff_len).")  # fmt: skip
@click.option("--gpus", default=1, show_default=True, type=POSITIVE, help="GPUs the run uses.")
@click.option("--zero", type=click.Choice(["0", "3"]), default="0", show_default=True,
              help="DeepSpeed ZeRO stage (3 shards weights, gradients, optimizer).")  # fmt: skip
@click.option("--lora-rank", default=8, show_default=True, type=POSITIVE)
@click.option("--stage", type=click.Choice(["sft", "dpo", "kto", "ppo"]), default="sft",
              show_default=True, help="dpo/kto: chosen and rejected in one forward, and the "
              "reference model; ppo: the reference, the value head and the reward.")  # fmt: skip
@click.option("--no-reference", is_flag=True, help="DPO with orpo or simpo: no reference model.")
@click.option("--reward", type=click.Choice(["model", "api"]), default="model",
              show_default=True,
              help="ppo: a trained reward model on the GPU, or a server (none).")  # fmt: skip
def vram(model, method, batch, seq, gpus, zero, lora_rank, stage, no_reference, reward) -> None:
    """Estimate GPU memory per card: weights, gradients, optimizer, activations.

    The formula is in medfactory/recipes/vram.py. Against real runs on an H100 (1.5B and
    7B; LoRA, QLoRA, full; up to 8192 tokens a step) it is 1-11 % above the peak.
    """
    from rich.console import Console
    from rich.table import Table

    from medfactory.recipes.vram import GIB, estimate, load_architecture

    result = estimate(
        load_architecture(model), method, batch, seq, gpus, int(zero), lora_rank, stage,
        reference=not no_reference, reward=reward,
    )  # fmt: skip
    console = Console()
    console.print(
        f"{model}: {method} {stage}, micro-batch {batch} x {seq} tokens, {gpus} GPU(s), ZeRO {zero}"
    )
    if stage != "sft":
        reference = "none" if no_reference else (
            "a frozen bf16 copy" if method == "full" else "the base, adapter off"
        )  # fmt: skip
        what = (
            "policy with a value head" if stage == "ppo" else "chosen and rejected in one forward"
        )
        console.print(f"{what}; reference model: {reference}")
    if stage == "ppo":
        console.print("reward: " + ("a server, no GPU memory" if reward == "api" else (
            "a second bf16 model" if method == "full" else "a second adapter on the base"
        )))  # fmt: skip
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("parameters", f"{result.parameters / 1e9:.2f} B")
    table.add_row("trainable", f"{result.trainable / 1e6:,.1f} M")
    for part in ("weights", "gradients", "optimizer", "activations", "overhead"):
        table.add_row(part, f"{getattr(result, part) / GIB:.1f} GiB")
    table.add_row("total per GPU", f"{result.total / GIB:.1f} GiB")
    for card, fits in result.verdicts().items():
        table.add_row(f"{card} GB card", "fits" if fits else "does not fit")
    console.print(table)
