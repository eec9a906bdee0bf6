"""`dataset_info.json`: the registry LLaMA-Factory and its WebUI read.

Registration merges new entries into the file without touching others,
refuses to replace a different entry of the same name unless forced, holds an
exclusive lock so two conversions can run at once, and writes through a
temporary file and an atomic rename: the file is never half-written.

Every registered entry gets a manifest, DIR/NAME.manifest.json: its data file's
size, record count and SHA-256, the hashes of the splits registered with it, and
what the caller says about where the data came from (source files with their
hashes, the converter and its options, counts written and rejected, the
de-identification summary, the study or experiment and its people). A trained
model's lineage reads these manifests, so a model version can be traced back to
the exact bytes it learnt from.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

INFO_FILE = "dataset_info.json"
MANIFEST_SUFFIX = ".manifest.json"  # beside the data, as NAME.deid-audit.json is
PROVENANCE_SUFFIX = ".provenance.jsonl"
MANIFEST_VERSION = 1


class RegistryError(ValueError):
    """The registry cannot be read or would lose an entry; the message says what to do."""


@contextlib.contextmanager
def locked(dataset_dir: Path) -> Iterator[None]:
    """Hold the dataset directory's registry lock (blocks while another holder works)."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    with open(dataset_dir / f".{INFO_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_registry(dataset_dir: Path) -> dict:
    path = Path(dataset_dir) / INFO_FILE
    if not path.exists():
        return {}
    try:
        registry = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f"line {error.lineno} column {error.colno}" if hasattr(error, "lineno") else ""
        raise RegistryError(
            f"{path}: not valid JSON {where} ({error}); fix or remove the file, nothing was changed"
        ) from None
    if not isinstance(registry, dict):
        raise RegistryError(f"{path}: expected a JSON object of datasets; nothing was changed")
    return registry


def check_conflicts(dataset_dir: Path, registry: dict, entries: dict) -> None:
    """Raise unless every entry is new to `registry` or equal to the one there."""
    clashing = sorted(name for name, entry in entries.items() if registry.get(name, entry) != entry)
    if clashing:
        raise RegistryError(
            f"{Path(dataset_dir) / INFO_FILE} already has a different entry for "
            f"{', '.join(clashing)}; choose another --name, or pass --force to replace it"
        )


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and one atomic rename."""
    umask = os.umask(0)
    os.umask(umask)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~umask
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
        os.chmod(tmp.name, mode)
    os.replace(tmp.name, path)


def register(
    dataset_dir: Path,
    entries: dict,
    force: bool = False,
    remove: tuple[str, ...] = (),
    before_write: Callable[[], None] | None = None,
    describe: Callable[[str], dict] | None = None,
) -> None:
    """Merge `entries` into DIR/dataset_info.json (and drop the names in `remove`).

    `before_write` runs under the lock once the merge is known to be allowed;
    the converter moves its data files into place there, so data and registry
    change together. Each entry's manifest is written then too; `describe(name)`
    (called after `before_write`) adds where the entry's data came from.
    """
    dataset_dir = Path(dataset_dir)
    with locked(dataset_dir):
        registry = read_registry(dataset_dir)
        if not force:
            check_conflicts(dataset_dir, registry, entries)
        if before_write:
            before_write()
        for name in remove:
            registry.pop(name, None)
            manifest_path(dataset_dir, name).unlink(missing_ok=True)
            (Path(dataset_dir) / f"{name}{PROVENANCE_SUFFIX}").unlink(missing_ok=True)
        write_manifests(dataset_dir, entries, describe)
        registry.update(entries)
        text = json.dumps(registry, ensure_ascii=False, indent=2) + "\n"
        write_atomically(dataset_dir / INFO_FILE, text)


# --- manifests -----------------------------------------------------------------------


def manifest_path(dataset_dir: Path, name: str) -> Path:
    return Path(dataset_dir) / f"{name}{MANIFEST_SUFFIX}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while block := data.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def source_files(paths: Iterable[Path]) -> list[dict]:
    """Input files as a manifest names them: absolute path, size, SHA-256."""
    return [
        {"path": str(Path(p).resolve()), "size": Path(p).stat().st_size, "sha256": file_sha256(p)}
        for p in paths
    ]


def count_records(path: Path) -> int:
    """Records in a data file: lines of JSON Lines, items of a JSON array."""
    if path.suffix == ".json":
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            data = json.loads(path.read_text(encoding="utf-8"))
            return len(data) if isinstance(data, list) else 1
        return 0
    with open(path, "rb") as data:
        return sum(1 for line in data if line.strip())


def write_manifests(
    dataset_dir: Path, entries: dict, describe: Callable[[str], dict] | None = None
) -> None:
    """DIR/NAME.manifest.json for each entry whose data file exists: its content hash and
    count, its sibling splits' hashes, and what `describe(NAME)` says of its origin."""
    hashed = {}
    for name, entry in entries.items():
        data = Path(dataset_dir) / str(entry.get("file_name", ""))
        if entry.get("file_name") and data.is_file():
            hashed[name] = (data, file_sha256(data))
    registered_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    for name, (data, sha256) in hashed.items():
        manifest = {
            "manifest": MANIFEST_VERSION,
            "dataset": name,
            "file": entries[name]["file_name"],
            "size": data.stat().st_size,
            "records": count_records(data),
            "sha256": sha256,
            "splits": {other: digest for other, (_, digest) in hashed.items()},
            "registered_at": registered_at,
            **(describe(name) if describe else {}),
        }
        write_atomically(
            manifest_path(dataset_dir, name),
            json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
        )


def read_manifest(dataset_dir: Path, name: str) -> dict | None:
    """The entry's manifest, or None when it was registered without one."""
    path = manifest_path(dataset_dir, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def plain(value: object) -> object:
    """Options as JSON: dataclasses as dicts, paths and other objects as text."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=plain_leaf))


def plain_leaf(value: object) -> object:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def conversion_manifest(
    converter: str, inputs: Iterable[Path], options: object, summary: dict
) -> dict:
    """What a conversion's manifests say of its origin: the source files with their hashes,
    the converter and its options, the counts written and rejected by reason, and the
    de-identification summary (its audit file beside the data holds the samples)."""
    return {
        "converter": converter,
        "sources": source_files(inputs),
        "options": plain(options),
        "read": summary.get("read"),
        "written": summary.get("written"),
        "duplicates": summary.get("duplicates"),
        "rejected": summary.get("rejected"),
        "deid": {
            "level": summary.get("deid"),
            "replaced": summary.get("pii_replaced"),
            "audit": summary.get("files", {}).get("deid_audit"),
        },
        "lint": {"level": summary.get("lint"), "flagged": summary.get("flagged")},
    }
