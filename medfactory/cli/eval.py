"""`medfactory eval`: BLEU-4 / ROUGE, exam accuracy, rubric grading by a judge, safety."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from medfactory.cli.common import (
    DB,
    RULES,
    URL,
    ExampleGroup,
    open_db,
    options,
    registered_split,
    server_client,
    with_example,
)
from medfactory.evaluation.metrics import METRICS
from medfactory.reporting import dumps

THINK = click.option(
    "--think",
    type=click.Choice(["keep", "strip"]),
    help="strip: score the final answer without its <think>...</think> part "
    "(reported separately); keep: score the raw text.",
)
WORKERS = click.option("--workers", type=int, help="Processes [default: all cores].")


# --rag INDEX, --top K and --index-dir, as `eval endpoint` and `eval exam` take them.
rag_options = options(
    click.option(
        "--rag",
        metavar="INDEX",
        help="Retrieve from this index (`medfactory rag index`) and put the passages "
        "before each question.",
    ),
    click.option("--top", default=3, show_default=True, help="Passages per question, with --rag."),
    click.option(
        "--index-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Folder of the indexes, with --rag [default: the project's saves/rag/].",
    ),
)


def _augmenter(rag: str | None, top: int, index_dir: Path | None):
    """The index opened before any request (a missing one is one line), or None."""
    if not rag:
        return None
    from medfactory.rag import augmenter

    return augmenter(rag, top, index_dir)


def model_version(function):
    """--model-version REF and --tracking-uri: the evaluation recorded on MLflow and its
    figures attached to that version (`medfactory models show`). The version is looked up
    before the evaluation starts."""

    def checked(context, _parameter, ref):
        if ref:
            from medfactory.tracking.evaluations import check_version

            check_version(ref, context.params.get("tracking_uri"))
        return ref

    function = click.option(
        "--model-version", metavar="REF", callback=checked,
        help="The recorded version evaluated (NAME@VERSION, NAME@ALIAS, models:/..., or its "
        "output folder): the run is recorded and its figures attached to it.",
    )(function)  # fmt: skip
    return click.option(
        "--tracking-uri", is_eager=True,
        help="MLflow store of the version [default: as train's].",
    )(function)  # fmt: skip


def _attach(ref, uri, kind: str, report: dict, files: list[Path], options: dict) -> None:
    if not ref:
        return
    from medfactory.tracking.evaluations import record_evaluation

    attached = record_evaluation(ref, kind, report, files, options, uri)
    click.echo(f"figures attached to {attached}", err=True)


@click.group(cls=ExampleGroup)
def eval_group() -> None:
    """Score predictions with LLaMA-Factory's BLEU-4 / ROUGE, and compare runs."""


def _progress(enabled: bool = True):
    """The progress bar every evaluation drives: (description, total) -> advance."""
    from medfactory.cli.progress import count_progress

    return partial(count_progress, enabled=enabled)


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
@model_version
def predictions(file: Path, think: str | None, workers: int | None, model_version, tracking_uri):
    """Score a generated_predictions.jsonl; write scores.json next to it.

    With the default --think keep the numbers equal LLaMA-Factory's
    predict_results.json, sample for sample.
    """
    from medfactory.evaluation.scoring import SCORES_FILE, score_file

    scores = score_file(file, think or "keep", workers, _progress())
    _print_scores(scores, file.parent / SCORES_FILE)
    _attach(model_version, tracking_uri, "predictions", scores, [file.parent / SCORES_FILE],
            {"predictions": str(file), "think": think or "keep"})  # fmt: skip


@with_example(
    "medfactory eval endpoint --endpoint http://127.0.0.1:8000 --dataset huatuo_sample_test\n"
    "  medfactory eval endpoint --endpoint http://127.0.0.1:8000 --dataset huatuo_sample_test "
    "--rag guidelines --out saves/eval/base+rag"
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
@rag_options
@THINK
@WORKERS
@model_version
def endpoint(
    endpoint, dataset, dataset_dir, api_key, model_name, max_samples, concurrency,
    temperature, max_tokens, out, rag, top, index_dir, think, workers, model_version,
    tracking_uri,
) -> None:  # fmt: skip
    """Answer a test split through a served model, then score the answers.

    Sends each conversation's system prompt and earlier turns, writes
    OUT/generated_predictions.jsonl and OUT/scores.json. Reasoning models are
    scored on their final answer (--think strip, the default here).

    With --rag INDEX the last question of each conversation is sent with the top
    passages retrieved for it (templates/rag/); each prediction keeps that turn
    in `rag_prompt` and the passages' sources in `passages`, while `prompt`
    stays the question, so `eval compare` and review studies pair the run with
    the same split answered without retrieval.
    """
    from deploy.client import Endpoint
    from medfactory.evaluation.generate import evaluate_endpoint
    from medfactory.evaluation.scoring import SCORES_FILE

    augment = _augmenter(rag, top, index_dir)
    path, scores = evaluate_endpoint(
        Endpoint(endpoint, api_key=api_key, model=model_name), dataset, dataset_dir, out,
        max_samples=max_samples, concurrency=concurrency, temperature=temperature,
        max_tokens=max_tokens, think=think or "strip", workers=workers, progress=_progress(),
        augment=augment,
    )  # fmt: skip
    click.echo(f"predictions: {path}")
    _print_scores(scores, path.parent / SCORES_FILE)
    _attach(model_version, tracking_uri, "endpoint", scores, [path.parent / SCORES_FILE],
            {"endpoint": endpoint, "model": model_name, "dataset": dataset, "rag": rag,
             "top": top if rag else None, "max_samples": max_samples,
             "temperature": temperature, "max_tokens": max_tokens})  # fmt: skip


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
    scored first (--think, as `eval predictions`), or exam.json files written by
    `eval exam` (accuracy per subject, question by question), or the folders
    that hold them (`eval endpoint --out`'s).

    Prints a table with per-metric deltas and 95 % paired-bootstrap confidence
    intervals; writes a Markdown report and a bar chart.
    """
    from medfactory.evaluation.compare import compare_files

    compared = compare_files(
        list(files), names.split(",") if names else None, out, think or "keep", _progress()
    )
    if compared.exam is not None:
        _print_exam_comparison(compared.exam, out)
        return
    result, report = compared.scores, compared.report
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


@with_example("medfactory eval safety saves/tiny/lora/predict/generated_predictions.jsonl")
@eval_group.command()
@click.argument("predictions", type=click.Path(path_type=Path))
@RULES
@click.option("--examples", default=3, show_default=True, help="Examples kept per rule.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for safety.json [default: next to PREDICTIONS].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@model_version
def safety(predictions, rules, examples, out, as_json, model_version, tracking_uri) -> None:
    """Rate of a model's answers breaking each safety rule: banned claims (保证治愈,
    无副作用, 100%有效, ...) and red-flag symptoms answered without a referral.

    The final answer is checked (a <think> part is left out). Writes OUT/safety.json.
    """
    from medfactory.cli.tables import print_safety_report
    from medfactory.evaluation.safety import safety_of_predictions

    out = out or predictions.parent
    report = safety_of_predictions(predictions, rules, examples, out)
    _attach(model_version, tracking_uri, "safety", report, [out / "safety.json"],
            {"predictions": str(predictions), "rules": report["rules_file"]})  # fmt: skip
    if as_json:
        click.echo(dumps(report))
    else:
        print_safety_report(report)
        click.echo(f"report: {out / 'safety.json'}")


@with_example(
    "medfactory eval exam --endpoint http://127.0.0.1:8000 --benchmark ceval-medical\n"
    "  medfactory eval exam --endpoint http://127.0.0.1:8000 --benchmark our_exam.csv "
    "--rag guidelines"
)
@eval_group.command()
@server_client
@click.option(
    "--benchmark",
    required=True,
    metavar="NAME|FILE",
    help="ceval-medical, cmmlu-medical, mmlu-medical, medmcqa, medxpertqa, ceval-general "
    "(the forgetting check), or a CSV/JSONL exam: question, A, B, ... (or options), answer "
    "[, id, subject].",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A named benchmark's ModelScope dataset, downloaded elsewhere [default: fetched].",
)
@click.option("--limit", type=int, help="Only the first N questions of each subject.")
@click.option("--concurrency", default=8, show_default=True, help="Requests in flight.")
@click.option("--max-tokens", default=512, show_default=True, help="Tokens per answer.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder [default: saves/exam/BENCHMARK/MODEL].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@rag_options
@model_version
def exam(
    endpoint, api_key, model_name, benchmark, data_dir, limit, concurrency, max_tokens, out,
    as_json, rag, top, index_dir, model_version, tracking_uri,
) -> None:  # fmt: skip
    """Multiple-choice accuracy of a served model, through EvalScope.

    Accuracy per subject with Wilson 95 % intervals; writes OUT/exam.json (every
    question, the letter read from the answer, right or wrong). Compare a base and a
    fine-tune with `medfactory eval compare BASE/exam.json TUNED/exam.json`.

    With --rag INDEX each question reaches the server with the top passages retrieved
    for it (through a local relay in front of the server; the passages given are in
    OUT/passages.jsonl): base, base+RAG, tuned and tuned+RAG sit the same exam.
    """
    from deploy.client import Endpoint
    from medfactory.evaluation.exam import EXAM_FILE, sit_exam

    augment = _augmenter(rag, top, index_dir)
    report, out = sit_exam(
        benchmark, Endpoint(endpoint, api_key=api_key, model=model_name), out, data_dir,
        limit, concurrency, max_tokens, _progress(), rag=(rag, augment) if rag else None,
    )  # fmt: skip
    _attach(model_version, tracking_uri, "exam", report, [out / EXAM_FILE],
            {"benchmark": benchmark, "endpoint": endpoint, "model": model_name, "limit": limit,
             "max_tokens": max_tokens, "rag": rag, "top": top if rag else None})  # fmt: skip
    if as_json:
        click.echo(dumps({k: v for k, v in report.items() if k != "per_question"}))
        return
    table = Table(title=f"{report['title']}: {report['model']}", title_justify="left")
    for column in ("subject", "questions", "accuracy", "95% CI"):
        table.add_column(column, justify="left" if column == "subject" else "right")
    rows = [*report["subjects"].items(), ("overall", report["overall"])]
    for subject, entry in rows:
        low, high = entry["ci95"]
        table.add_row(
            subject, str(entry["questions"]), f"{100 * entry['accuracy']:.1f}%",
            f"[{100 * low:.1f}, {100 * high:.1f}]",
        )  # fmt: skip
    Console().print(table)
    click.echo(f"report: {out / EXAM_FILE}")


def _print_exam_comparison(result: dict, out: Path) -> None:
    names = result["names"]
    console = Console()
    for name, rows in result["deltas"].items():
        table = Table(
            title=f"{name} vs {names[0]}: {result['questions']} paired questions",
            title_justify="left",
        )
        for column in ("subject", "questions", names[0], name, "Δ [95% CI]"):
            table.add_column(column, justify="left" if column == "subject" else "right")
        for subject, row in rows.items():
            low, high = row["ci95"]
            mark = " *" if row["significant"] else ""
            table.add_row(
                subject, str(row["questions"]), f"{100 * row['baseline']:.1f}%",
                f"{100 * row['candidate']:.1f}%",
                f"{100 * row['delta']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]{mark}",
            )  # fmt: skip
        console.print(table)
    console.print("* the interval excludes zero")
    console.print(f"comparison: {out / 'exam_comparison.json'}")


@with_example(
    "medfactory eval judge saves/eval/base/generated_predictions.jsonl "
    "saves/eval/lora/generated_predictions.jsonl --rubric medical-default "
    "--judge-endpoint https://api.example.com --judge-model gpt-4.1 --calibrate r1"
)
@eval_group.command()
@click.argument("predictions", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--rubric",
    default="medical-default",
    show_default=True,
    metavar="FILE|NAME",
    help="HealthBench JSONL (prompt, rubrics: [{criterion, points, tags}], optional prompt_id), "
    "one per prediction in order or matched by prompt_id; or a YAML rubric for every answer; "
    "or a name under templates/rubrics/.",
)
@click.option("--judge-endpoint", required=True, type=URL(), help="Base URL of the judge's server.")
@click.option("--judge-model", help="The judge model [default: the server's last listed].")
@click.option(
    "--judge-api-key", envvar="MEDFACTORY_JUDGE_API_KEY", help="The judge server's API key."
)
@click.option(
    "--calibrate",
    metavar="STUDY",
    help="A clinician review study over the same prompts: Cohen's kappa between the judge's "
    "preference and the clinicians' final verdicts.",
)
@DB
@click.option("--concurrency", default=8, show_default=True, help="Judge requests in flight.")
@click.option(
    "--max-tokens", default=512, show_default=True, type=click.IntRange(min=1),
    help="Longest judge reply (HealthBench's is a short JSON object).",
)  # fmt: skip
@click.option(
    "--out",
    default="saves/judge",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for judge.json and the judgment cache (judgments.jsonl).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@model_version
def judge(
    predictions, rubric, judge_endpoint, judge_model, judge_api_key, calibrate, db, concurrency,
    max_tokens, out, as_json, model_version, tracking_uri,
) -> None:  # fmt: skip
    """Grade answers against physician-written rubrics with a judge model (HealthBench's way).

    Each criterion is put to the judge; an answer scores the points of the criteria
    met over its positive points; per axis and overall the mean, clipped to [0, 1],
    with 95 % bootstrap intervals. A reply that cannot be parsed is asked again once,
    then counted as invalid. Judgments are cached in OUT/judgments.jsonl: a rerun
    asks only what is new.
    """
    from deploy.client import Endpoint
    from medfactory.evaluation.judge import JUDGE_FILE, Calibration, judge_predictions
    from medfactory.review.calibration import calibrate as calibrate_judge

    if not predictions and not calibrate:
        raise click.UsageError("give PREDICTIONS files to grade, or --calibrate STUDY, or both")
    if model_version and len(predictions) != 1:
        raise click.UsageError("--model-version: give the one PREDICTIONS file of that version")
    calibration = None
    if calibrate:  # review's calibration, on the store, through the same judge
        store = open_db(db)
        calibration = Calibration(
            calibrate, lambda judge, rubrics, advance: calibrate_judge(
                judge, rubrics, store, calibrate, advance
            ),
        )  # fmt: skip
    judge_server = Endpoint(judge_endpoint, api_key=judge_api_key, model=judge_model)
    report = judge_predictions(
        list(predictions), rubric, judge_server, out, concurrency, calibration,
        _progress(enabled=not as_json), max_tokens,
    )  # fmt: skip
    _attach(model_version, tracking_uri, "judge", report, [out / JUDGE_FILE],
            {"predictions": str(predictions[0]) if predictions else None, "rubric": rubric,
             "judge": report["judge"]})  # fmt: skip
    if as_json:
        click.echo(dumps(report))
        return
    _print_judge(report)
    click.echo(f"report: {out / JUDGE_FILE}")


def _print_judge(report: dict) -> None:
    console = Console()
    for run in report["runs"]:
        table = Table(
            title=f"{run['file']}: {run['scored_items']} of {run['items']} answers scored by "
            f"{report['judge']}",
            title_justify="left",
        )
        for column in ("", "score", "95% CI", "answers"):
            table.add_column(column, justify="left" if not column else "right")
        rows = [("overall", run["overall"]), *((f"axis {a}", v) for a, v in run["axes"].items())]
        for label, entry in rows:
            low, high = entry["ci95"]
            if entry["score"] is None:
                table.add_row(label, "n/a", "", "0")
                continue
            table.add_row(
                label, f"{entry['score']:.3f}", f"[{low:.3f}, {high:.3f}]", str(entry["items"])
            )
        console.print(table)
        console.print(
            f"invalid judgments (unparseable twice, or refused): "
            f"{run['invalid_judgments']} of {run['judgments']}"
        )
    for file, change in report.get("comparison", {}).items():
        low, high = change["ci95"]
        mark = "  (the interval excludes zero)" if change["significant"] else ""
        console.print(
            f"{file} vs {change['baseline']}: {change['delta']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] over {change['answers']} answers{mark}"
        )
    if calibration := report.get("calibration"):
        console.print(
            f"{calibration_line(calibration)} ({calibration['unscored']} left out: the judge "
            "gave no score)"
        )
    console.print(f"judge requests this run: {report['requests']} (the rest were cached)")


@with_example(
    "medfactory eval reward dataset_info/abtest_dpo_test.jsonl --reward-model saves/tiny/lora/rm"
)
@eval_group.command()
@click.argument("pairs", type=click.Path(path_type=Path))
@click.option("--reward-model", required=True, type=click.Path(path_type=Path),
              help="The output_dir of a `--stage rm` run.")  # fmt: skip
@click.option("--template", default="qwen", show_default=True, help="The recipe's template.")
@click.option("--base", help="The LoRA reward model's base, if not the one it names.")
@click.option(
    "--calibrate",
    metavar="STUDY",
    help="A clinician A/B review study: Cohen's kappa between the reward model's preference "
    "and the clinicians' final verdicts.",
)
@DB
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def reward(
    pairs: Path, reward_model: Path, template: str, base, calibrate, db, as_json: bool
) -> None:
    """A reward model's accuracy on held-out preference pairs: how often it scores the
    chosen answer above the rejected one, with a Wilson 95 % interval; with --calibrate,
    its agreement with the clinicians' final verdicts of a review study."""
    from medfactory.review.calibration import calibrate_reward_model
    from medfactory.rewards.accuracy import reward_accuracy
    from medfactory.rewards.errors import RewardError
    from medfactory.rewards.model import RewardModel

    try:
        model = RewardModel(reward_model, base, template)  # loaded once, for both
        result = reward_accuracy(pairs, model)
        if calibrate:
            result["calibration"] = calibrate_reward_model(model, open_db(db), calibrate)
    except RewardError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(dumps(result))
        return
    click.echo(
        f"reward model {reward_model}: chosen above rejected in {result['correct']} of "
        f"{result['pairs']} pairs, accuracy {result['accuracy']:.3f} "
        f"(95% CI {result['low']:.3f}-{result['high']:.3f})"
    )
    if calibration := result.get("calibration"):
        click.echo(
            f"{calibration_line(calibration)} ({calibration['without_a_side']} settled as a tie "
            "or both unacceptable left out)"
        )


def calibration_line(calibration: dict) -> str:
    kappa = calibration["kappa"]
    return (
        f"calibration on study {calibration['study']}: Cohen's kappa "
        f"{'n/a' if kappa is None else f'{kappa:.3f}'}, agreement "
        f"{100 * calibration['agreement']:.1f}% over {calibration['compared']} settled items"
    )
