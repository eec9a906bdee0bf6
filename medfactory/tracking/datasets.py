"""The datasets a recipe trains and evaluates on, each with its manifest: the one written
when it was registered (converters/registry.py), or, for data registered before
manifests existed, one made now from the data file alone (`"manifest": null`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from converters.registry import count_records, file_sha256, read_manifest, read_registry
from medfactory import paths
from medfactory.tracking.hashes import canonical_sha256

CONTEXTS = (("dataset", "train"), ("eval_dataset", "eval"))


@dataclass(frozen=True)
class UsedDataset:
    name: str
    context: str  # train | eval
    manifest: dict

    @property
    def digest(self) -> str:
        """The manifest's hash, its registration time left out: the same data registered
        twice is the same dataset."""
        return canonical_sha256({k: v for k, v in self.manifest.items() if k != "registered_at"})


def recipe_dataset_dir(arguments: dict) -> Path:
    """`dataset_dir` as llamafactory-cli reads it (relative to the project)."""
    return paths.PROJECT_ROOT / str(arguments.get("dataset_dir") or "data")


def used_datasets(arguments: dict) -> list[UsedDataset]:
    dataset_dir = recipe_dataset_dir(arguments)
    if str(arguments.get("dataset_dir", "")).startswith(("ONLINE", "REMOTE:")):
        return []
    registry = read_registry(dataset_dir)
    used = []
    for key, context in CONTEXTS:
        for name in filter(None, (n.strip() for n in str(arguments.get(key) or "").split(","))):
            manifest = read_manifest(dataset_dir, name) or _made_now(dataset_dir, name, registry)
            used.append(UsedDataset(name, context, manifest | {"dataset_dir": str(dataset_dir)}))
    return used


def _made_now(dataset_dir: Path, name: str, registry: dict) -> dict:
    file_name = str(registry.get(name, {}).get("file_name", ""))
    data = dataset_dir / file_name
    found = {"manifest": None, "dataset": name, "file": file_name}
    if file_name and data.is_file():
        found |= {"size": data.stat().st_size, "records": count_records(data),
                  "sha256": file_sha256(data)}  # fmt: skip
    return found
