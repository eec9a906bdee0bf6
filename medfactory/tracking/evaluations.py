"""An evaluation of a recorded version (`eval ... --model-version REF`): an MLflow run with
its options, figures and report, and the figures attached to the version, so `models show`
lists them beside the parent's and the model card reports them."""

from __future__ import annotations

import time
from pathlib import Path

from medfactory.tracking.client import experiment_id, open_client
from medfactory.tracking.refs import label, resolve
from medfactory.tracking.settings import tracking_uri
from medfactory.tracking.versions import attach_scores


def figures_of(kind: str, report: dict) -> dict[str, float]:
    """The headline figures of an evaluation's report, by what each `eval` command writes."""
    if kind in ("predictions", "endpoint"):  # BLEU-4 and ROUGE
        from medfactory.evaluation.metrics import METRICS

        return {metric: float(report[metric]) for metric in METRICS}
    if kind == "exam":
        return {"accuracy": float(report["overall"]["accuracy"])}
    if kind == "safety":
        return {"flagged_rate": float(report["rate"])}
    if kind == "judge":
        [run] = report["runs"]
        score = run["overall"]["score"]
        found = {"invalid_judgments": float(run["invalid_judgments"])}
        return found if score is None else {"score": float(score), **found}
    raise ValueError(f"unknown evaluation kind {kind!r}")


def check_version(ref: str, uri: str | None = None) -> str:
    """The version's NAME@VERSION, before an evaluation runs: a wrong REF costs nothing."""
    uri = tracking_uri(uri)
    return label(resolve(open_client(uri), ref, uri))


def record_evaluation(
    ref: str, kind: str, report: dict, files: list[Path], options: dict, uri: str | None = None
) -> str:
    """Record the evaluation as a run and attach its figures to the version `ref` names;
    returns the version's NAME@VERSION."""
    from mlflow.entities import Metric, Param

    uri = tracking_uri(uri)
    client = open_client(uri)
    version = resolve(client, ref, uri)  # an unknown version fails before anything is written
    figures = figures_of(kind, report)
    tags = {
        "mlflow.runName": f"eval {kind} {label(version)}",
        "medfactory.command": f"eval {kind}",
        "evaluated": label(version),
    }
    run = client.create_run(experiment_id(client, uri), tags=tags)
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(key, value, now, 0) for key, value in figures.items()],
        params=[Param(key, str(value)[:6000]) for key, value in sorted(options.items())
                if value is not None],
    )  # fmt: skip
    for file in files:
        if Path(file).is_file():
            client.log_artifact(run.info.run_id, str(file), "report")
    attach_scores(client, version, kind, figures)
    client.set_terminated(run.info.run_id, "FINISHED")
    return label(version)
