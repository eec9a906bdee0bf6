"""`medfactory vram`: will this run fit my GPU?"""

from __future__ import annotations

import click

from medfactory.cli.common import with_example

POSITIVE = click.IntRange(min=1)


SERVE_ONLY = ("tp", "pp", "max_model_len", "max_num_seqs", "dtype")
TRAIN_ONLY = ("method", "batch", "seq", "gpus", "zero", "lora_rank", "stage", "no_reference",
              "reward")  # fmt: skip


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
@click.option("--serve", is_flag=True,
              help="Serving with vLLM instead of training: weights split over --tp x --pp "
              "GPUs and the KV cache.")  # fmt: skip
@click.option("--tp", default=1, show_default=True, type=POSITIVE,
              help="--serve: vLLM's --tensor-parallel-size.")  # fmt: skip
@click.option("--pp", default=1, show_default=True, type=POSITIVE,
              help="--serve: vLLM's --pipeline-parallel-size.")  # fmt: skip
@click.option("--max-model-len", default=4096, show_default=True, type=POSITIVE,
              help="--serve: the longest sequence (prompt + answer) in tokens.")  # fmt: skip
@click.option("--max-num-seqs", default=256, show_default=True, type=POSITIVE,
              help="--serve: sequences in one batch (vLLM's default: 256; 1024 on cards of "
              "70 GB or more).")  # fmt: skip
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float16", "float32"]),
              default="auto", show_default=True,
              help="--serve: vLLM's --dtype (auto: the config's; fp32 as bf16).")  # fmt: skip
@click.pass_context
def vram(
    ctx, model, method, batch, seq, gpus, zero, lora_rank, stage, no_reference, reward, serve,
    tp, pp, max_model_len, max_num_seqs, dtype,
) -> None:  # fmt: skip
    """Estimate GPU memory per card: weights, gradients, optimizer, activations.

    The formula is in medfactory/recipes/vram.py. Against real runs on an H100 (1.5B and
    7B; LoRA, QLoRA, full; up to 8192 tokens a step) it is 1-11 % above the peak.

    With --serve: what one GPU holds when vLLM serves the model -- its share of the
    weights over --tp x --pp GPUs, the KV cache of --max-num-seqs sequences of
    --max-model-len tokens, activations -- and how many full-length sequences fit:

    \b
        medfactory vram --model qwen2.5-7b-instruct --serve --tp 2 \\
            --max-model-len 32768 --max-num-seqs 16
    """
    from rich.console import Console
    from rich.table import Table

    from medfactory.recipes.vram import GIB, estimate, load_architecture

    given = {
        name for name in (*SERVE_ONLY, *TRAIN_ONLY)
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }  # fmt: skip
    wrong = sorted(given & set(TRAIN_ONLY if serve else SERVE_ONLY))
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise click.UsageError(
            f"{flags}: for training estimates, not with --serve"
            if serve
            else f"{flags}: for serving estimates; add --serve"
        )
    if serve:
        _print_serving(model, tp, pp, max_model_len, max_num_seqs, dtype)
        return

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


def _print_serving(model, tp, pp, max_model_len, max_num_seqs, dtype) -> None:
    from rich.console import Console
    from rich.table import Table

    from medfactory.recipes.vram import (
        GIB,
        estimate_serving,
        load_architecture,
        model_dtype,
        serving_dtype,
    )

    served = serving_dtype(model_dtype(model), dtype)
    try:
        result = estimate_serving(
            load_architecture(model), max_model_len, max_num_seqs, tp, pp, served
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    console = Console()
    console.print(
        f"{model}: vLLM serving in {served}, {tp * pp} GPU(s) a replica (tp {tp} x pp {pp}), "
        f"{max_num_seqs} sequences x {max_model_len} tokens"
    )
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("parameters", f"{result.parameters / 1e9:.2f} B")
    table.add_row("weights", f"{result.weights / GIB:.1f} GiB")
    table.add_row("KV cache", f"{result.kv_cache / GIB:.1f} GiB")
    table.add_row("  per sequence", f"{result.kv_per_sequence / GIB:.3f} GiB")
    table.add_row("activations", f"{result.activations / GIB:.1f} GiB")
    table.add_row("overhead", f"{result.overhead / GIB:.1f} GiB")
    table.add_row("total per GPU", f"{result.total / GIB:.1f} GiB")
    sequences = result.sequences()
    for card, fits in result.verdicts().items():
        room = f"{sequences[card]} sequences of {max_model_len} tokens"
        table.add_row(f"{card} GB card", ("fits; room for " if fits else "does not fit; room for ")
                      + room)  # fmt: skip
    console.print(table)
