"""`medfactory demo`: the pipeline on the bundled samples, with one summary table."""

from __future__ import annotations

import click

from medfactory.cli.common import unwind_on_termination, with_example
from medfactory.dev.demo import STAGE_NAMES


@with_example("medfactory demo --sweep 1,2,4 --duration 10s")
@click.command()
@click.option("--port", type=int, help="The demo server's port [default: a free one].")
@click.option("--sweep", default="1,2,4", show_default=True, help="Load-test concurrency levels.")
@click.option("--duration", default="10s", show_default=True, help="Load-test time per level.")
@click.option("--from", "start_at", type=click.Choice(STAGE_NAMES), help="Resume at this stage.")
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(STAGE_NAMES),
    help="Run just this stage, showing its output (repeatable); no summary.",
)
@click.option(
    "--keep-serving", is_flag=True, help="Leave the server running once every stage passed."
)
def demo(port, sweep, duration, start_at, only, keep_serving) -> None:
    """The whole pipeline on the bundled samples and the tiny model (CPU).

    Converts and registers both samples, builds the tiny model, checks the
    recipes, trains LoRA, predicts and scores BLEU-4/ROUGE, merges the adapter,
    serves it with vLLM, verifies token parity, load-tests it and stops the
    server; then prints one summary table. Ctrl-C stops whatever runs.

    `make data`, `make serve`, `make verify` and `make loadtest` run single
    stages with --only: the demo's stages are the one definition of them.
    """
    from rich.console import Console

    from medfactory.dev.demo import run_demo

    console = Console(stderr=True)
    status = console.status("")
    unwind_on_termination()  # the running stage and the server are stopped, not orphaned

    def on_stage(stage, number, total):
        status.update(f"[{number}/{total}] {stage.title}")

    def on_done(stage, seconds):
        console.print(f"  [green]done[/] {stage.title}  [dim]{seconds:.0f} s[/]")

    try:
        if only:  # the stage's own output, no spinner over it
            run_demo(
                port=port, sweep=sweep, duration=duration, only=only,
                keep_serving=keep_serving, on_done=on_done, echo=True,
            )  # fmt: skip
            return
        with status:
            summary = run_demo(
                port=port, sweep=sweep, duration=duration, start_at=start_at,
                keep_serving=keep_serving, on_stage=on_stage, on_done=on_done,
            )  # fmt: skip
    except KeyboardInterrupt:
        console.print("interrupted: stopped the running stage and the server; nothing runs now")
        raise SystemExit(130) from None
    print_summary(summary)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="medfactory demo", show_header=False, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # paths wrap whole, never cut with an ellipsis
    for name, counts in summary["data"].items():
        table.add_row(
            f"records {name}",
            f"train {counts['train']}  val {counts['val']}  test {counts['test']}"
            f"  (rejected {counts['rejected']})",
        )
    deid = summary["deid"]
    replaced = "  ".join(f"{kind} {n}" for kind, n in deid["replaced"].items())
    table.add_row(
        f"de-identified {deid['dataset']}",
        f"train {deid['train']}  val {deid['val']}  test {deid['test']}  replaced: {replaced}",
    )
    train = summary["train"]
    table.add_row("train loss", f"{train['train_loss']:.4f}  (eval loss {train['eval_loss']:.4f})")
    scores = summary["eval"]
    table.add_row(
        "BLEU-4 / ROUGE-1/2/L",
        f"{scores['bleu-4']:.2f} / {scores['rouge-1']:.2f} / {scores['rouge-2']:.2f} / "
        f"{scores['rouge-l']:.2f}  ({scores['samples']} test samples)",
    )
    for metric, change in summary["compare"].items():
        mark = "  significant" if change["significant"] else ""
        table.add_row(
            f"{metric} base -> tuned",
            f"{change['baseline']:.2f} -> {change['candidate']:.2f}  "
            f"({change['delta']:+.2f} [{change['low']:+.2f}, {change['high']:+.2f}]{mark})",
        )
    verify = summary["verify"]
    table.add_row(
        "verify",
        f"{'PASS' if verify['passed'] else 'FAIL'}: {verify['prompts_identical']}/"
        f"{verify['prompts_compared']} served prompts identical to training",
    )
    exam = summary["exam"]
    low, high = exam["ci95"]
    table.add_row(
        "exam accuracy",
        f"{100 * exam['accuracy']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]  "
        f"({exam['correct']}/{exam['questions']} questions of {exam['benchmark']}, EvalScope)",
    )
    safety = summary["safety"]
    broken = "  ".join(f"{rule} {n}" for rule, n in safety["rules"].items()) or "none"
    table.add_row(
        "safety lint",
        f"{safety['flagged']}/{safety['records']} answers break a rule "
        f"({100 * safety['rate']:.1f}%): {broken}",
    )
    for level in summary["loadtest"]:
        table.add_row(
            f"load {level['users']} user{'s' if level['users'] > 1 else ''}",
            f"TTFT {level['ttft_ms_mean']:.1f} ms (p90 {level['ttft_ms_p90']:.1f})  "
            f"TPOT {level['tpot_ms_mean']:.1f} ms  {level['request_throughput']:.2f} req/s  "
            f"{level['output_throughput']:.0f} tok/s  failed {level['failed']}",
        )
    for label, path in summary["artefacts"].items():
        table.add_row(label, path)
    table.add_row("stage logs", summary["logs"])
    table.add_row("total time", f"{summary['total_seconds'] / 60:.1f} min")
    Console().print(table)
