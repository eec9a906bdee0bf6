"""What `medfactory serve --model models:/NAME@ALIAS` starts: the version's folder as the
model, or, for a LoRA adapter, its base model with the adapter served beside it under the
version's name; the chat template is the one its recipe trained with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medfactory.tracking.client import open_client
from medfactory.tracking.errors import TrackingError
from medfactory.tracking.refs import OUTPUT_TAG, label, resolve
from medfactory.tracking.settings import tracking_uri
from medfactory.tracking.versions import run_of


@dataclass(frozen=True)
class Served:
    version: str  # NAME@VERSION
    model: str  # a folder, or a hub id the base model was trained from
    adapter: Path | None  # the version itself, when it is a LoRA adapter
    name: str  # the served model name: the registered model's
    template: str | None  # the recipe's LLaMA-Factory template


def served(ref: str, uri: str | None = None) -> Served:
    """The folders and template a `models:/` reference serves."""
    uri = tracking_uri(uri)
    client = open_client(uri)
    version = resolve(client, str(ref), uri)
    tags = dict(version.tags or {})
    folder = Path(tags.get(OUTPUT_TAG, version.source))
    run = run_of(client, version)
    template = run.data.params.get("template") if run else None
    if not folder.is_dir():
        raise TrackingError(
            f"{label(version)}: its folder {folder} is not on this machine; copy it there "
            "or serve the folder with --model"
        )
    if tags.get("finetuning_type") != "lora" or tags.get("command") == "export":
        return Served(label(version), str(folder), None, version.name, template)
    base = tags.get("base_model_path") or tags.get("base_model")
    if not base:
        raise TrackingError(f"{label(version)} is a LoRA adapter with no recorded base model")
    return Served(label(version), base, folder, version.name, template)


def served_as(ref: str, uri: str | None = None) -> tuple[str, str]:
    """(NAME@VERSION, the name a server gives it) of the version `ref` names, as `serve
    --model models:/...` serves it (the registered model's name, for a merged model and
    for an adapter alike); its folders need not be on this machine."""
    uri = tracking_uri(uri)
    client = open_client(uri)
    version = resolve(client, str(ref), uri)
    return label(version), version.name
