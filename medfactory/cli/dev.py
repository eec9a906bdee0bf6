"""`medfactory dev`: the tiny test model and the environment smoke run."""

from __future__ import annotations

from pathlib import Path

import click

from medfactory import paths
from medfactory.cli.common import (
    DATASET_DIR,
    DB,
    URL,
    ExampleGroup,
    open_db,
    unwind_on_termination,
    with_example,
)


@click.group(cls=ExampleGroup)
def dev() -> None:
    """Developer tools: the tiny test model, the environment smoke run."""


@with_example("medfactory dev tiny-model .cache/tiny-model --seed 42")
@dev.command("tiny-model")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=42, show_default=True, help="Weight-initialisation seed.")
@click.option(
    "--tokenizer-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Qwen2.5 tokenizer to use [default: shared/fixtures/qwen2.5-0.5b-instruct-tokenizer].",
)
def tiny_model(out_dir: Path, seed: int, tokenizer_dir: Path | None) -> None:
    """Build the tiny random-weight Qwen2 test model.

    About 20M parameters (hidden 128, 2 layers, head_dim 64) on the real
    Qwen2.5 tokenizer, so every stage runs on a CPU. The same seed gives
    byte-identical files.
    """
    from medfactory.dev.tiny_model import build_tiny_model

    summary = build_tiny_model(out_dir, tokenizer_dir or paths.tokenizer_dir(), seed=seed)
    click.echo(
        f"tiny model: {summary['parameters'] / 1e6:.1f}M parameters, "
        f"vocabulary {summary['vocab_size']}, head_dim {summary['head_dim']}, "
        f"seed {seed} -> {out_dir}"
    )


@with_example("medfactory dev smoke --steps 3")
@dev.command("smoke")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where data, adapter and logs go [default: .cache/smoke].",
)
@click.option("--steps", default=3, show_default=True, help="LoRA training steps.")
def smoke(work_dir: Path | None, steps: int) -> None:
    """LoRA-train the tiny model a few steps, then chat with it on vLLM.

    Trains a few steps with `llamafactory-cli train` in .venv, starts a vLLM
    server from .venv-vllm on a free port of 127.0.0.1, asks one question,
    and stops the server again.
    """
    from medfactory.dev.smoke import run_smoke
    from medfactory.dev.tiny_model import ensure_tiny_model

    model_dir = ensure_tiny_model(paths.cache_dir() / "tiny-model", paths.tokenizer_dir())
    result = run_smoke(work_dir or paths.cache_dir() / "smoke", model_dir, steps=steps)
    click.echo(
        f"smoke passed: {len(result.losses)} LoRA steps (loss {result.losses[-1]:.3f}), "
        f"vLLM answered {result.completion_tokens} tokens ({result.finish_reason})"
    )


@with_example("medfactory dev abtest --adapter saves/tiny/lora/sft --users 8 --turns 2")
@dev.command()
@click.option(
    "--adapter", type=click.Path(file_okay=False, path_type=Path),
    help="The LoRA version served beside the base model (the demo's: saves/tiny/lora/sft).",
)  # fmt: skip
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The base model [default: .cache/tiny-model].")  # fmt: skip
@click.option("--endpoint", type=URL(),
              help="A running server of both versions, instead of starting one.")  # fmt: skip
@click.option("--api-key", envvar="MEDFACTORY_API_KEY", help="The --endpoint server's API key.")
@click.option("--model-name", default="tiny", show_default=True,
              help="The base model's served name.")  # fmt: skip
@click.option("--adapter-name", default="lora", show_default=True,
              help="The LoRA adapter's served name.")  # fmt: skip
@click.option("--experiment", default="ab", show_default=True,
              help="The experiment it records (its earlier scripted record replaced).")  # fmt: skip
@click.option("--dataset", default="huatuo_sample_test", show_default=True,
              help="The scripted clinicians' questions and reference answers.")  # fmt: skip
@DATASET_DIR
@click.option("--users", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--turns", default=2, show_default=True, type=click.IntRange(min=1))
@DB
def abtest(
    adapter, model_dir, endpoint, api_key, model_name, adapter_name, experiment, dataset,
    dataset_dir, users, turns, db,
) -> None:  # fmt: skip
    """A live A/B on this machine: the base model and a LoRA adapter on one vLLM server,
    the gateway in front, scripted clinicians chatting and rating, then the report.

    A scripted clinician gives a thumbs-up when an answer's ROUGE-L against the
    dataset's answer reaches 0.05, else a thumbs-down (with the dataset's answer
    as the better one, once per clinician). The record goes into the store
    (--db) as experiment `ab`, where `medfactory ab report` and `ab export` read
    it; its feedback is registered as abtest_kto, abtest_sft and abtest_dpo.
    With --endpoint the versions are a running server's (--model-name and
    --adapter-name as served); else one is started for --model and --adapter.
    """
    from medfactory.ab.report import markdown
    from medfactory.cli.tables import print_export_summary
    from medfactory.dev.abtest import run_abtest

    if not adapter and not endpoint:
        raise click.UsageError("pass --adapter (a LoRA version to serve) or --endpoint")
    unwind_on_termination()  # the server it starts is stopped, not orphaned
    out = paths.PROJECT_ROOT / "saves" / "ab"
    report, _, exported = run_abtest(
        open_db(db), out, model_dir or paths.cache_dir() / "tiny-model", dataset_dir,
        adapter, endpoint, api_key, model_name, adapter_name, experiment, dataset, users,
        turns, say=click.echo,
    )  # fmt: skip
    click.echo(markdown(report, None))
    print_export_summary(exported)
    again = "medfactory ab report" + (f" --experiment {experiment}" if experiment != "ab" else "")
    again += f" --db {db}" if db else ""
    click.echo(f"report: {out / experiment / 'report.md'}; again with: {again}")


@with_example("medfactory dev rl --port 8300 --samples 4")
@dev.command()
@click.option("--port", default=8300, show_default=True, help="The reward server's port.")
@click.option("--prompts", default=128, show_default=True, help="PPO prompts (4 a step).")
@click.option("--samples", default=4, show_default=True, help="Answers per held-out prompt.")
def rl(port: int, prompts: int, samples: int) -> None:
    """SFT, a reward model on the clinicians' pairs, PPO; held-out SFT vs PPO reward.

    Fully fine-tunes the tiny model on the HuatuoGPT sample (SFT); trains
    llamafactory_configs/tiny/rm_lora.yaml from that model on `make abtest`'s DPO
    pairs; serves it (`reward serve --verifier model`); trains ppo_lora.yaml in
    .venv-rl from the SFT model (all weights) against it. SFT and PPO models then
    answer each held-out prompt SAMPLES times and the same server scores them. Prints
    the reward of each logged PPO step and the held-out mean rewards with 95 %
    bootstrap intervals over prompts.
    """
    from medfactory.dev.rl import run_rl

    unwind_on_termination()  # the reward server it starts is stopped, not orphaned
    report = run_rl(port, prompts, samples, say=click.echo)
    click.echo("PPO reward per logged step (trainer_log.jsonl):")
    for step, reward in report["rewards"]:
        click.echo(f"  step {step:>3}  reward {reward:+.3f}")
    click.echo(f"mean reward: first quarter of the steps {report['first_quarter_mean']:+.3f}, "
               f"last quarter {report['last_quarter_mean']:+.3f}; {report['scored']} answers "
               "scored by the server")  # fmt: skip
    print_heldout(report["heldout"], samples, "prompts")
    seconds = report["seconds"]
    click.echo(
        f"SFT {seconds['sft']:.0f} s, reward model {seconds['rm']:.0f} s, PPO "
        f"{seconds['ppo']:.0f} s, in all {seconds['total']:.0f} s; {report['report']}"
    )


def print_heldout(heldout: dict, samples: int, unit: str) -> None:
    click.echo(f"held-out reward, {heldout['questions']} {unit} x {samples} answers "
               f"(mean, 95 % bootstrap interval over {unit}):")  # fmt: skip
    for label in ("sft", "ppo", "difference"):
        low, high = heldout[label]["interval"]
        name = {"sft": "SFT", "ppo": "PPO", "difference": "PPO - SFT"}[label]
        click.echo(f"  {name:<10}{heldout[label]['mean']:+.3f}  [{low:+.3f}, {high:+.3f}]")


@with_example("medfactory dev rl-exam --model .cache/tiny-model --epochs 10 --samples 4")
@dev.command("rl-exam")
@click.option(
    "--model",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".cache/tiny-model"),
    show_default=True,
    help="The model SFT starts from.",
)
@click.option("--port", default=8300, show_default=True, help="The reward server's port.")
@click.option("--epochs", default=10.0, show_default=True, help="PPO epochs over the prompts.")
@click.option("--samples", default=4, show_default=True, help="Answers per held-out question.")
@click.option(
    "--format-epochs",
    default=3.0,
    show_default=True,
    help="Epochs of the answer-form SFT (every letter once per question) before PPO.",
)
def rl_exam(model: Path, port: int, epochs: float, samples: int, format_epochs: float) -> None:
    """SFT then PPO on a verifiable exam, compared on held-out questions.

    The bundled exam with its right option moved to A (`data convert exam`), scored by
    `reward serve --verifier choice` (+1 right, 0 wrong, -1 no letter). SFT fine-tunes
    MODEL fully on the training questions answered "答案：X" once with each of their
    letters (the form, no preference for a letter); PPO (all weights, .venv-rl)
    continues the SFT model; each of the two answers every held-out question SAMPLES times and the
    same verifier scores them. Prints the reward of each logged PPO step and the
    held-out mean rewards with 95 % bootstrap intervals over questions.
    """
    from medfactory.dev.rl_exam import run_exam_rl

    unwind_on_termination()  # the reward server it starts is stopped, not orphaned
    report = run_exam_rl(model, port, epochs, samples, format_epochs=format_epochs,
                         say=click.echo)  # fmt: skip
    click.echo("PPO reward per logged step (trainer_log.jsonl):")
    for step, reward in report["rewards"]:
        click.echo(f"  step {step:>3}  reward {reward:+.3f}")
    server = report["server"]
    click.echo(f"reward server: {server['scored']} answers scored for {server['prompts']} "
               f"questions, {server['outcomes']}")  # fmt: skip
    print_heldout(report["heldout"], samples, "questions")
    click.echo(f"outcomes: SFT {report['outcomes']['sft']}; PPO {report['outcomes']['ppo']}")
    seconds = report["seconds"]
    click.echo(f"SFT {seconds['sft']:.0f} s, PPO {seconds['ppo']:.0f} s, in all "
               f"{seconds['total']:.0f} s; {report['report']}")  # fmt: skip
