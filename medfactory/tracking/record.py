"""A finished `train` or `export` recorded on MLflow, and the model it made registered as
a version.

The run holds the resolved recipe as parameters, the recipe file and the datasets'
manifests as artifacts, the datasets as inputs (by manifest hash), the loss curve and
final figures as metrics, the git commit and the engines' versions. The version points
at the output folder and is tagged with its base model (name and config/weight-index
hash), its parent version (the adapter or recorded model it started from, as DPO on an
SFT adapter does), the recipe's hash and its datasets.

A store that does not answer never loses a finished run: the caller is told once and the
run is recorded in the embedded store instead, unless tracking is required.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from converters.registry import file_sha256
from medfactory import paths
from medfactory.access.audit import os_user
from medfactory.tracking import datasets as used
from medfactory.tracking.client import experiment_id, open_client
from medfactory.tracking.environment import git_commit, package_versions
from medfactory.tracking.errors import TrackingUnreachable
from medfactory.tracking.hashes import canonical_sha256, model_fingerprint
from medfactory.tracking.refs import OUTPUT_TAG, folder_key, label, model_name, version_of_folder
from medfactory.tracking.settings import Tracking, embedded_uri, is_server, saves_dir

PARAM_CHARS = 6000  # MLflow's limit on a parameter's value
TAG_CHARS = 5000
RESULT_FILES = ("all_results.json", "predict_results.json")


@dataclass
class Recorded:
    uri: str
    run_id: str
    version: str | None = None  # NAME@VERSION, when a model was registered
    evaluated: str | None = None  # NAME@VERSION a prediction run's scores were attached to
    warnings: list[str] = field(default_factory=list)


def output_folder(command: str, arguments: dict) -> Path | None:
    """Where the run's model went: export_dir for export, output_dir for training."""
    if command == "export":
        folder = arguments.get("export_dir")
    elif arguments.get("do_train", False):
        folder = arguments.get("output_dir")
    else:
        return None
    return Path(folder_key(folder)) if folder else None


def record_run(
    command: str, recipe: Path, arguments: dict, tracking: Tracking, started: float | None = None
) -> Recorded:
    """Record a finished llamafactory-cli run and register the model it made."""
    uri, warnings = tracking.resolved_uri, []
    try:
        client = open_client(uri)
    except TrackingUnreachable as error:
        if tracking.required or uri == embedded_uri():
            raise
        warnings.append(f"{error}; recorded in {embedded_uri()} instead")
        uri = embedded_uri()
        client = open_client(uri)
    run_id = _log_run(client, uri, command, Path(recipe), arguments, started)
    recorded = Recorded(uri, run_id, warnings=warnings)
    folder = output_folder(command, arguments)
    if folder is not None and folder.is_dir():
        name = tracking.model_name or model_name(folder, saves_dir())
        recorded.version = _register(
            client, name, folder, run_id, command, Path(recipe), arguments, is_server(uri)
        )
    elif arguments.get("do_predict"):
        recorded.evaluated = _attach_predictions(client, arguments)
    return recorded


def _attach_predictions(client, arguments: dict) -> str | None:
    """A prediction run's BLEU/ROUGE on the recorded version it generated with (its adapter,
    or a recorded merged model), so `models show` has them beside the parent's."""
    from medfactory.tracking.versions import attach_scores

    evaluated = parent_version(client, arguments)
    results = _output(arguments) / "predict_results.json" if _output(arguments) else None
    if evaluated is None or results is None or not results.is_file():
        return None
    figures = {k.removeprefix("predict_"): v for k, v in json.loads(results.read_text()).items()
               if isinstance(v, int | float) and not isinstance(v, bool)
               and not k.endswith(("runtime", "per_second", "_time"))}  # fmt: skip
    attach_scores(client, evaluated, "predict", figures)
    return label(evaluated)


def _log_run(client, uri, command, recipe: Path, arguments: dict, started) -> str:
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param

    commit = git_commit()
    datasets = used.used_datasets(arguments)
    tags = {
        "mlflow.runName": f"{command} {recipe.parent.name}/{recipe.stem}",
        "mlflow.source.name": str(recipe),
        "mlflow.source.type": "LOCAL",
        "medfactory.command": command,
        "recipe": str(recipe),
        "recipe_sha256": file_sha256(recipe) if recipe.is_file() else "",
        **({"mlflow.source.git.commit": commit} if commit else {}),
        **{f"version.{k}": v for k, v in package_versions().items()},
    }
    start_ms = int((started or time.time()) * 1000)
    run = client.create_run(experiment_id(client, uri), start_time=start_ms, tags=tags)
    run_id = run.info.run_id
    params = [Param(k, _text(v, PARAM_CHARS)) for k, v in sorted(arguments.items())]
    metrics = _metrics(output_folder(command, arguments) or _output(arguments))
    for first in range(0, max(len(params), len(metrics)), 100):  # MLflow's batch limits
        client.log_batch(run_id, metrics=[Metric(*m) for m in metrics[first : first + 100]],
                         params=params[first : first + 100])  # fmt: skip
    inputs = [
        DatasetInput(
            Dataset(
                d.name,
                d.digest[:32],
                "local",
                json.dumps(
                    {"uri": str(Path(d.manifest["dataset_dir"]) / str(d.manifest.get("file", "")))}
                ),
                profile=json.dumps({k: d.manifest.get(k) for k in ("records", "sha256", "size")}),
            ),
            [InputTag("mlflow.data.context", d.context)],
        )  # fmt: skip
        for d in datasets
    ]
    if inputs:
        client.log_inputs(run_id, datasets=inputs)
    client.set_tag(run_id, "datasets", _text(",".join(d.name for d in datasets), TAG_CHARS))
    with tempfile.TemporaryDirectory(prefix="medfactory-run-") as scratch:
        scratch = Path(scratch)
        if recipe.is_file():
            client.log_artifact(run_id, str(recipe), "recipe")
        resolved = scratch / "recipe_resolved.yaml"
        resolved.write_text(yaml.safe_dump(arguments, allow_unicode=True, sort_keys=False))
        client.log_artifact(run_id, str(resolved), "recipe")
        for dataset in datasets:
            manifest = scratch / f"{dataset.name}.json"
            manifest.write_text(json.dumps(dataset.manifest | {"context": dataset.context,
                                                               "digest": dataset.digest},
                                           ensure_ascii=False, indent=2))  # fmt: skip
            client.log_artifact(run_id, str(manifest), "datasets")
        folder = output_folder(command, arguments) or _output(arguments)
        for name in RESULT_FILES:
            if folder and (folder / name).is_file():
                client.log_artifact(run_id, str(folder / name), "results")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _output(arguments: dict) -> Path | None:
    folder = arguments.get("output_dir")
    return Path(folder_key(folder)) if folder else None


def _metrics(folder: Path | None) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp ms, step): the logged loss curve from trainer_state.json and
    the final figures from all_results.json / predict_results.json."""
    if folder is None:
        return []
    now = int(time.time() * 1000)
    found = []
    state = folder / "trainer_state.json"
    if state.is_file():
        for entry in json.loads(state.read_text()).get("log_history", []):
            step = int(entry.get("step", 0))
            for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
                if isinstance(entry.get(key), int | float):
                    found.append((f"curve.{key}", float(entry[key]), now, step))
    for name in RESULT_FILES:
        if (folder / name).is_file():
            results = json.loads((folder / name).read_text())
            found += [(k, float(v), now, 0) for k, v in results.items()
                      if isinstance(v, int | float) and not isinstance(v, bool)]  # fmt: skip
    return found


def _register(
    client, name, folder: Path, run_id, command, recipe: Path, arguments, on_server: bool
) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="Trained with medfactory.")
    except MlflowException as error:
        if "already exists" not in str(error).lower() and "ALREADY_EXISTS" not in str(error):
            raise
    parent = parent_version(client, arguments)
    base = base_model(client, arguments, parent)
    datasets = used.used_datasets(arguments)
    tags = {
        OUTPUT_TAG: str(folder),
        "command": command,
        "stage": str(arguments.get("stage", "export" if command == "export" else "")),
        "finetuning_type": str(arguments.get("finetuning_type", "")),
        "recipe": str(recipe),
        "recipe_sha256": canonical_sha256(arguments),
        "datasets": ",".join(f"{d.name}:{d.digest[:16]}" for d in datasets),
        **{f"base_model{k}": v for k, v in base.items()},
        **(
            {"parent": label(parent), "parent_dir": parent.tags.get(OUTPUT_TAG, "")}
            if parent
            else {}
        ),  # fmt: skip
        "created_by": os_user(),
    }
    # A server refuses a local path outside the run's artifacts as a version's source (its
    # own files are not the trainer's); there the source is the run, the folder its tag.
    source = f"runs:/{run_id}/{folder.name}" if on_server else str(folder)
    version = client.create_model_version(
        name, source=source, run_id=run_id,
        tags={k: _text(v, TAG_CHARS) for k, v in tags.items() if v not in (None, "")},
        description=f"{command} of {recipe.name}",
    )  # fmt: skip
    return f"{name}@{version.version}"


def parent_version(client, arguments: dict):
    """The recorded version a run started from: an adapter it trained on (DPO on an SFT
    adapter), or the model it loaded when that is itself a recorded version (a merged
    model); None for a base model."""
    adapters = [a.strip() for a in str(arguments.get("adapter_name_or_path") or "").split(",")]
    for candidate in [*filter(None, adapters), arguments.get("model_name_or_path")]:
        if candidate and _local(str(candidate)):
            found = version_of_folder(client, candidate)
            if found is not None:
                return found
    return None


def base_model(client, arguments: dict, parent) -> dict:
    """The model at the root of the chain: its name, where it is, its hash (config and
    weight index); inherited from a recorded model that is loaded as the base."""
    model = str(arguments.get("model_name_or_path", ""))
    if _local(model):
        loaded = version_of_folder(client, model)
        if loaded is not None:  # a merged version trained on: its own base is the root
            return {k.removeprefix("base_model"): v for k, v in loaded.tags.items()
                    if k.startswith("base_model")}  # fmt: skip
        folder = Path(folder_key(model))
        fingerprint = model_fingerprint(folder)
        return {"": folder.name, "_path": str(folder), "_sha256": fingerprint["sha256"],
                "_config_sha256": fingerprint["config_sha256"] or "",
                "_weights_sha256": fingerprint["weights_sha256"] or ""}  # fmt: skip
    revision = str(arguments.get("model_revision") or "main")
    return {"": model, "_revision": revision}


def _local(model: str) -> bool:
    path = Path(model).expanduser()
    return path.is_absolute() and path.exists() or (paths.PROJECT_ROOT / path).exists()


def _text(value: object, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
