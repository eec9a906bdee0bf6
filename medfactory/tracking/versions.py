"""Model versions as `models list` and `models show` present them: aliases, parent, base,
data, the run's recipe and every score, the parent's beside them."""

from __future__ import annotations

import contextlib
import json
import time

from medfactory.tracking.refs import OUTPUT_TAG, label, model_aliases, resolve

# Figures shown first, in this order, where a version has them.
KEY_SCORES = ("eval_loss", "train_loss", "predict_bleu-4", "predict_rouge-l")
SCORE_TAG = "score."  # evaluations attached to a version: score.SOURCE.METRIC
# The trainer's bookkeeping, not a score: left out of lists and cards.
BOOKKEEPING = ("runtime", "per_second", "flos", "epoch")


def is_score(key: str) -> bool:
    return not any(word in key for word in BOOKKEEPING)


def iso(milliseconds: int | None) -> str:
    if not milliseconds:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(int(milliseconds) / 1000))


def base_model_of(tags: dict) -> dict:
    """A version's base_model* tags as {name, path, sha256, ...}."""
    return {k.removeprefix("base_model").lstrip("_") or "name": v
            for k, v in tags.items() if k.startswith("base_model")}  # fmt: skip


def run_of(client, version):
    if not version.run_id:
        return None
    try:
        return client.get_run(version.run_id)
    except Exception:  # noqa: BLE001 - a run deleted from the store: the version stands alone
        return None


def scores(client, version, run=None) -> dict[str, float]:
    """The run's final figures (not the loss curve) and the scores attached since."""
    run = run or run_of(client, version)
    found = {k: v for k, v in (run.data.metrics if run else {}).items()
             if "." not in k and is_score(k)}  # fmt: skip
    for key, value in (version.tags or {}).items():
        if key.startswith(SCORE_TAG):
            with contextlib.suppress(ValueError):
                found[key.removeprefix(SCORE_TAG)] = float(value)
    ordered = {k: found[k] for k in KEY_SCORES if k in found}
    return ordered | {k: found[k] for k in sorted(found) if k not in ordered}


def list_versions(client) -> list[dict]:
    """Every version of every registered model, newest model first, versions in order."""
    rows = []
    for model in client.search_registered_models(max_results=1000):
        by_version: dict[str, list[str]] = {}
        for alias, number in model_aliases(model).items():
            by_version.setdefault(number, []).append(alias)
        versions = client.search_model_versions(f"name = '{model.name}'")
        for version in sorted(versions, key=lambda v: int(v.version)):
            rows.append({
                "name": version.name, "version": int(version.version),
                "aliases": sorted(by_version.get(str(version.version), [])),
                "parent": version.tags.get("parent", ""),
                "stage": version.tags.get("stage", ""),
                "created": iso(version.creation_timestamp),
                "output_dir": version.tags.get(OUTPUT_TAG, ""),
                "scores": scores(client, version),
            })  # fmt: skip
    return rows


def show_version(client, ref: str, uri: str) -> dict:
    version = resolve(client, ref, uri)
    run = run_of(client, version)
    tags = dict(version.tags or {})
    model = client.get_registered_model(version.name)
    parent = None
    if tags.get("parent"):
        try:
            parent_version = resolve(client, tags["parent"], uri)
            parent = {"version": tags["parent"], "scores": scores(client, parent_version)}
        except Exception:  # noqa: BLE001 - a parent deleted since: named, without scores
            parent = {"version": tags["parent"], "scores": {}}
    run_tags = dict(run.data.tags) if run else {}
    return {
        "version": label(version),
        "aliases": sorted(a for a, v in model_aliases(model).items() if v == str(version.version)),
        "created": iso(version.creation_timestamp),
        "created_by": tags.get("created_by", ""),
        "output_dir": tags.get(OUTPUT_TAG, version.source),
        "command": tags.get("command", ""),
        "stage": tags.get("stage", ""),
        "finetuning_type": tags.get("finetuning_type", ""),
        "base_model": base_model_of(tags),
        "parent": parent,
        "recipe": {
            "path": tags.get("recipe", ""),
            "sha256": tags.get("recipe_sha256", ""),
            "arguments": dict(run.data.params) if run else {},
        },  # fmt: skip
        "datasets": _datasets(run),
        "run": {
            "id": version.run_id,
            "git_commit": run_tags.get("mlflow.source.git.commit", ""),
            "versions": {
                k.removeprefix("version."): v
                for k, v in run_tags.items()
                if k.startswith("version.")
            },
        },  # fmt: skip
        "scores": scores(client, version, run),
        "promotions": promotions(tags),
    }


def _datasets(run) -> list[dict]:
    if run is None or not run.inputs or not run.inputs.dataset_inputs:
        return []
    found = []
    for item in run.inputs.dataset_inputs:
        context = next((t.value for t in item.tags if t.key == "mlflow.data.context"), "")
        profile = json.loads(item.dataset.profile or "{}")
        found.append({"name": item.dataset.name, "context": context,
                      "digest": item.dataset.digest, **profile})  # fmt: skip
    return found


def promotions(tags: dict) -> list[dict]:
    """`promoted.ALIAS` tags: who set which alias when."""
    found = []
    for key, value in tags.items():
        if key.startswith("promoted."):
            with contextlib.suppress(ValueError):
                found.append({"alias": key.removeprefix("promoted."), **json.loads(value)})
    return sorted(found, key=lambda p: p.get("at", ""))


def attach_scores(client, version, source: str, figures: dict[str, float]) -> None:
    """An evaluation's figures on the version it evaluated (`score.SOURCE.METRIC` tags), so
    `models show` lists them beside the parent's."""
    for metric, value in figures.items():
        key = f"{SCORE_TAG}{source}.{metric}"
        client.set_model_version_tag(version.name, version.version, key, str(float(value)))


def render_list(rows: list[dict]) -> str:
    if not rows:
        return "no model versions recorded yet; `medfactory train RECIPE` records one"
    header = ("version", "aliases", "parent", "stage", "created", "scores")
    table = [header] + [
        (f"{r['name']}@{r['version']}", ",".join(r["aliases"]) or "-", r["parent"] or "-",
         r["stage"] or "-", r["created"],
         " ".join(f"{k}={v:.4g}" for k, v in list(r["scores"].items())[:4]) or "-")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row[:-1], widths, strict=True))
        + "  "
        + str(row[-1])
        for row in table
    )


def render_show(shown: dict) -> str:
    made = f"{shown['command']} {shown['stage']} {shown['finetuning_type']}".rstrip()
    lines = [f"{shown['version']}  ({', '.join(shown['aliases']) or 'no alias'})",
             f"  folder:     {shown['output_dir']}",
             f"  made by:    {made}",
             f"  created:    {shown['created']} by {shown['created_by']}"]  # fmt: skip
    base = shown["base_model"]
    lines.append(f"  base model: {base.get('name', '')} {base.get('path', '')} "
                 f"sha256 {base.get('sha256', base.get('revision', ''))[:16]}")  # fmt: skip
    if shown["parent"]:
        lines.append(f"  parent:     {shown['parent']['version']}")
    lines.append(
        f"  recipe:     {shown['recipe']['path']} (sha256 {shown['recipe']['sha256'][:16]})"
    )
    for dataset in shown["datasets"]:
        digest = str(dataset.get("sha256"))[:16]
        lines.append(f"  data:       {dataset['name']} ({dataset['context']}, "
                     f"{dataset.get('records')} records, sha256 {digest})")  # fmt: skip
    run = shown["run"]
    lines.append(f"  run:        {run['id']} commit {run['git_commit'][:12] or '-'}; "
                 + ", ".join(f"{k} {v}" for k, v in run["versions"].items()))  # fmt: skip
    parent_scores = (shown["parent"] or {}).get("scores", {})
    if shown["scores"]:
        lines.append("  scores:     " + ("(parent in brackets)" if parent_scores else ""))
        for key, value in shown["scores"].items():
            beside = f"  [{parent_scores[key]:.4g}]" if key in parent_scores else ""
            lines.append(f"    {key:28s} {value:.4g}{beside}")
    for promotion in shown["promotions"]:
        lines.append(
            f"  promoted:   {promotion['alias']} by {promotion.get('by')} at {promotion.get('at')}"
        )
    return "\n".join(lines)
