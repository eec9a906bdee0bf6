"""A model version by any of its names: `NAME@VERSION`, `NAME@ALIAS`, `models:/NAME@ALIAS`,
`models:/NAME/VERSION`, `NAME` (its latest version), or the output folder of the run that
made it (`saves/tiny/lora/dpo`)."""

from __future__ import annotations

import re
from pathlib import Path

from medfactory import paths
from medfactory.tracking.errors import UnknownVersion, UnrecordedFolder

OUTPUT_TAG = "output_dir"
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def folder_key(folder: str | Path) -> str:
    """A folder as versions are tagged with it: absolute, relative paths read from the
    project (where llamafactory-cli runs)."""
    path = Path(folder).expanduser()
    return str((path if path.is_absolute() else paths.PROJECT_ROOT / path).resolve())


def version_of_folder(client, folder: str | Path):
    """The newest version made into `folder`, or None."""
    key = folder_key(folder).replace("'", "\\'")
    found = client.search_model_versions(f"tags.{OUTPUT_TAG} = '{key}'")
    return max(found, key=lambda v: int(v.creation_timestamp), default=None)


def label(version) -> str:
    return f"{version.name}@{version.version}"


def resolve(client, ref: str, uri: str):
    """The ModelVersion `ref` names; one clear error when there is none."""
    ref = ref.strip()
    as_folder = Path(ref).expanduser()
    if (
        "@" not in ref
        and not ref.startswith("models:/")
        and (as_folder.is_dir() or (paths.PROJECT_ROOT / as_folder).is_dir() or "/" in ref)
    ):
        version = version_of_folder(client, ref)
        if version is None:
            raise UnrecordedFolder(
                f"{ref}: no recorded run made this folder (store {uri}); train or export it "
                "with tracking on, or name a version as NAME@VERSION (`medfactory models list`)"
            )
        return version
    name, version, alias = _parse(ref)
    model = _registered(client, name, uri)
    if alias is not None:
        try:
            return client.get_model_version_by_alias(name, alias)
        except Exception:  # noqa: BLE001 - MLflow raises its RESOURCE_DOES_NOT_EXIST
            aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(model_aliases(model).items()))
            known = f"aliases: {aliases}" if aliases else "no aliases yet"
            raise UnknownVersion(
                f"{name} has no alias {alias!r} ({known}); "
                f"set one with `medfactory models promote {name}@VERSION --alias {alias}`"
            ) from None
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise UnknownVersion(f"{name} has no versions yet; `medfactory train` registers one")
    if version is None:
        return max(versions, key=lambda v: int(v.version))
    for found in versions:
        if str(found.version) == version:
            return found
    known = ", ".join(sorted((str(v.version) for v in versions), key=int))
    raise UnknownVersion(f"{name} has no version {version}; its versions: {known}")


def _parse(ref: str) -> tuple[str, str | None, str | None]:
    """-> (name, version or None, alias or None)."""
    if ref.startswith("models:/"):
        rest = ref.removeprefix("models:/")
        if "@" in rest:
            name, _, alias = rest.partition("@")
            return name, None, alias
        name, _, version = rest.partition("/")
        if not version.isdigit():
            raise UnknownVersion(f"{ref}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
        return name, version, None
    name, at, tail = ref.partition("@")
    if at and not tail:
        raise UnknownVersion(f"{ref}: nothing after '@'; write NAME@VERSION or NAME@ALIAS")
    if not at:
        return name, None, None
    return (name, tail, None) if tail.isdigit() else (name, None, tail)


def model_aliases(model) -> dict[str, str]:
    aliases = getattr(model, "aliases", None) or {}
    return {str(a): str(v) for a, v in dict(aliases).items()}


def _registered(client, name: str, uri: str):
    try:
        return client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - RESOURCE_DOES_NOT_EXIST
        known = sorted(m.name for m in client.search_registered_models(max_results=1000))
        listed = ", ".join(known[:12]) or "none yet"
        raise UnknownVersion(
            f"no registered model named {name!r} in {uri}; known: {listed}"
        ) from None


def model_name(folder: str | Path, saves: Path) -> str:
    """A registered model's name from an output folder: its path under saves/ without the
    last part (saves/tiny/lora/dpo -> tiny-lora), else the folder's parent's name."""
    path = Path(folder_key(folder))
    try:
        parts = path.relative_to(saves.resolve()).parts[:-1]
    except ValueError:
        parts = (path.parent.name,)
    return _NAME.sub("-", "-".join(parts) or path.name).strip("-.") or "model"
