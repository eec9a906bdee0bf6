"""A version's lineage: version <- run <- recipe + datasets <- source files (their hashes
then and now) / review studies / A/B experiments <- the people whose judgments made the
data; then the parent version's, down to the base model.

The datasets' manifests are read from the run's artifacts (as they were when it ran),
and every recorded file hash is compared with the file as it is now.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from converters.registry import file_sha256
from medfactory.tracking.refs import OUTPUT_TAG, label, resolve
from medfactory.tracking.versions import base_model_of, iso, run_of

PEOPLE_WORDS = {"raters": "raters", "arbiters": "arbiters", "chat_users": "chat users"}


def lineage(client, ref: str, uri: str) -> dict:
    return _node(client, resolve(client, ref, uri), uri, seen=set())


def _node(client, version, uri: str, seen: set[str]) -> dict:
    seen.add(label(version))
    tags = dict(version.tags or {})
    run = run_of(client, version)
    run_tags = dict(run.data.tags) if run else {}
    node = {
        "version": label(version),
        "stage": tags.get("stage", ""),
        "output_dir": tags.get(OUTPUT_TAG, version.source),
        "created": iso(version.creation_timestamp),
        "run": {
            "id": version.run_id,
            "recipe": tags.get("recipe", ""),
            "recipe_sha256": tags.get("recipe_sha256", ""),
            "git_commit": run_tags.get("mlflow.source.git.commit", ""),
        },
        "base_model": base_model_of(tags),
        "datasets": _datasets(client, version.run_id) if run else [],
        "parent": None,
    }
    parent = tags.get("parent")
    if parent and parent not in seen:
        try:
            node["parent"] = _node(client, resolve(client, parent, uri), uri, seen)
        except Exception:  # noqa: BLE001 - deleted since: named, not followed
            node["parent"] = {"version": parent, "missing": True}
    return node


def _datasets(client, run_id: str) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="medfactory-lineage-") as scratch:
        try:
            folder = Path(client.download_artifacts(run_id, "datasets", scratch))
        except Exception:  # noqa: BLE001 - a run recorded with no datasets
            return []
        manifests = [
            json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))
        ]
    return [_dataset(m) for m in manifests]


def _now(path: Path, recorded: str | None) -> str:
    """The file as it is now against its recorded hash: same, differs or missing."""
    if not recorded:
        return "unknown"
    if not path.is_file():
        return "missing"
    return "same" if file_sha256(path) == recorded else "differs"


def _dataset(manifest: dict) -> dict:
    data = Path(manifest.get("dataset_dir", "")) / str(manifest.get("file", ""))
    return {
        "name": manifest.get("dataset"),
        "context": manifest.get("context", ""),
        "records": manifest.get("records"),
        "file": str(data),
        "sha256": manifest.get("sha256"),
        "now": _now(data, manifest.get("sha256")),
        "converter": manifest.get("converter", ""),
        "origin": manifest.get("origin", {}),
        "options": manifest.get("options", {}),
        "rejected": manifest.get("rejected", {}),
        "deid": manifest.get("deid", {}),
        "verdicts": manifest.get("verdicts", {}),
        "people": manifest.get("people", {}),
        "provenance": manifest.get("provenance"),
        "served_versions": _served_versions(manifest),
        "sources": [
            {**source, "now": _now(Path(source["path"]), source.get("sha256"))}
            for source in manifest.get("sources", [])
        ],
    }


def _served_versions(manifest: dict) -> dict[str, list[str]]:
    """An A/B experiment's data: per arm, the recorded versions (NAME@VERSION) whose answers
    it holds, from its provenance sidecar as it is now (none when the sidecar is gone)."""
    if "experiment" not in manifest.get("origin", {}) or not manifest.get("provenance"):
        return {}
    sidecar = Path(manifest.get("dataset_dir", "")) / str(manifest["provenance"])
    if not sidecar.is_file():
        return {}
    arms: dict[str, set[str]] = {}
    for line in sidecar.read_text(encoding="utf-8").splitlines():
        try:
            origin = json.loads(line)
        except ValueError:
            continue
        if isinstance(origin, dict) and origin.get("model_version"):
            arms.setdefault(str(origin.get("arm")), set()).add(str(origin["model_version"]))
    return {arm: sorted(versions) for arm, versions in sorted(arms.items())}


# --- text --------------------------------------------------------------------------


def render(node: dict) -> str:
    return "\n".join(_lines(_tree(node), "", root=True))


def _tree(node: dict) -> tuple[str, list]:
    if node.get("missing"):
        return (f"parent {node['version']} (no longer in the store)", [])
    run, base = node["run"], node["base_model"]
    children = [
        (f"run {run['id']}  recipe {run['recipe']} (sha256 {run['recipe_sha256'][:12]})"
         f"  commit {run['git_commit'][:12] or '-'}", []),
    ]  # fmt: skip
    children += [_dataset_tree(d) for d in node["datasets"]]
    if node["parent"]:
        parent = _tree(node["parent"])
        children.append((f"parent {parent[0]}", parent[1]))
    else:
        where = base.get("path") or base.get("revision", "")
        children.append((f"base model {base.get('name', '?')}  {where}  "
                         f"sha256 {base.get('sha256', '')[:12]}".rstrip(), []))  # fmt: skip
    head = f"{node['version']}  {node['stage']}  {node['output_dir']}  ({node['created']})"
    return (head, children)


def _dataset_tree(dataset: dict) -> tuple[str, list]:
    now = {"differs": "  (now differs)", "missing": "  (now missing)"}.get(dataset["now"], "")
    head = (f"dataset {dataset['name']} ({dataset['context']}): {dataset['records']} records, "
            f"sha256 {str(dataset['sha256'])[:12]}{now}"
            + (f"  [{dataset['converter']}]" if dataset["converter"] else ""))  # fmt: skip
    children = []
    for source in dataset["sources"]:
        flag = {"differs": "  (now differs)", "missing": "  (now missing)"}.get(source["now"], "")
        children.append((f"source file {source['path']}  {source.get('size')} bytes  "
                         f"sha256 {source.get('sha256', '')[:12]}{flag}", []))  # fmt: skip
    origin = dataset["origin"]
    people = [
        (f"{PEOPLE_WORDS.get(kind, kind)}: {', '.join(names)}", [])
        for kind, names in dataset["people"].items() if names
    ]  # fmt: skip
    verdicts = ", ".join(f"{v} {n}" for v, n in dataset["verdicts"].items())
    if "study" in origin:
        children.append((f"review study {origin['study']}" + (f": {verdicts}" if verdicts else ""),
                         people))  # fmt: skip
    elif "experiment" in origin:
        served = "; ".join(
            f"arm {arm} served by {', '.join(versions)}"
            for arm, versions in dataset.get("served_versions", {}).items()
        )
        children.append((f"A/B experiment {origin['experiment']}"
                         + (f" ({served})" if served else ""), people))  # fmt: skip
    else:
        children += people
    deid = dataset["deid"]
    if deid.get("level") or deid.get("identifiers_scrubbed") or deid.get("replaced"):
        replaced = deid.get("replaced") or deid.get("identifiers_scrubbed") or {}
        counts = ", ".join(f"{k} {v}" for k, v in replaced.items()) or "nothing replaced"
        children.append((f"de-identification {deid.get('level') or 'scrubbed'}: {counts}", []))
    if dataset["rejected"]:
        children.append(
            ("rejected: " + ", ".join(f"{k} {v}" for k, v in dataset["rejected"].items()), [])
        )
    return (head, children)


def _lines(tree: tuple[str, list], prefix: str, root: bool = False, last: bool = True) -> list[str]:
    text, children = tree
    lines = [text if root else f"{prefix}{'└── ' if last else '├── '}{text}"]
    deeper = "" if root else prefix + ("    " if last else "│   ")
    for i, child in enumerate(children):
        lines += _lines(child, deeper, last=i == len(children) - 1)
    return lines
