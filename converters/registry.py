"""`dataset_info.json`: the registry LLaMA-Factory and its WebUI read.

Registration merges new entries into the file without touching others,
refuses to replace a different entry of the same name unless forced, holds an
exclusive lock so two conversions can run at once, and writes through a
temporary file and an atomic rename: the file is never half-written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

INFO_FILE = "dataset_info.json"


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
) -> None:
    """Merge `entries` into DIR/dataset_info.json (and drop the names in `remove`).

    `before_write` runs under the lock once the merge is known to be allowed;
    the converter moves its data files into place there, so data and registry
    change together.
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
        registry.update(entries)
        text = json.dumps(registry, ensure_ascii=False, indent=2) + "\n"
        write_atomically(dataset_dir / INFO_FILE, text)
