"""An index on disk: INDEX_DIR/NAME/manifest.json and the version folder it names.

```
saves/rag/guidelines/
  manifest.json    files (sha256, chunks), chunk count, chunking, tokenizer, embeddings
  v1733212345.../  the version the manifest names (a time in nanoseconds)
    chunks.jsonl   file, index, heading, start, end, text (de-identified), topic per chunk
    terms.txt      each chunk's search terms, space-separated, one line per chunk
    bm25/          bm25s's sparse index
    vectors.npy    unit-length embeddings (dense retrieval only)
  eval/MODE/       `rag eval`'s report
```

A rebuild writes a new version folder beside the old one, then replaces the
manifest in one rename: a reader sees the old index or the new one, never a
mix, and a failed build leaves the old one as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from medfactory import paths
from medfactory.rag.errors import RagError
from medfactory.reporting import dumps

FORMAT = 1
MANIFEST = "manifest.json"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def default_index_dir() -> Path:
    """saves/rag/ of the project, wherever the command runs from."""
    return paths.PROJECT_ROOT / "saves" / "rag"


def index_folder(name: str, index_dir: Path | None = None) -> Path:
    if not NAME.fullmatch(name or ""):
        raise RagError(
            f"--name {name!r}: letters, digits, '.', '_' and '-' only (it names a folder)"
        )
    return Path(index_dir or default_index_dir()) / name


def read_manifest(folder: Path) -> dict | None:
    """The manifest of the index in `folder`, None when there is none."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise RagError(f"{folder / MANIFEST}: not a readable manifest ({error})") from None
    if manifest.get("format") != FORMAT or not (folder / manifest.get("data", "")).is_dir():
        raise RagError(f"{folder}: an index of another format or half-deleted; rebuild it")
    return manifest


def open_manifest(name: str, index_dir: Path | None = None) -> tuple[dict, Path]:
    """(manifest, version folder) of index NAME; RagError listing the indexes there."""
    folder = index_folder(name, index_dir)
    manifest = read_manifest(folder)
    if manifest is None:
        parent = folder.parent
        names = sorted(p.parent.name for p in parent.glob(f"*/{MANIFEST}"))
        listed = f"; indexes there: {', '.join(names)}" if names else ""
        raise RagError(
            f"no index {name!r} in {parent}{listed}; build it with "
            f"`medfactory rag index DOCS --name {name}` (or pass --index-dir)"
        )
    return manifest, folder / manifest["data"]


def commit(folder: Path, manifest: dict, write: Callable[[Path], None]) -> Path:
    """Write a new version with `write(version_folder)`, then point the manifest at it.

    Nothing is replaced until every file is written; the previous versions are
    removed only after the manifest names the new one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".v{time.time_ns()}.{os.getpid()}.partial"
    try:
        partial.mkdir()
        write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    # Two builds of one index may finish together: one switches at a time, and each
    # removes only versions no manifest names any more.
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version = f"v{time.time_ns()}"
        partial.rename(folder / version)
        manifest = {**manifest, "format": FORMAT, "data": version}
        temporary = folder / f".{MANIFEST}.{os.getpid()}"
        temporary.write_text(dumps(manifest) + "\n", encoding="utf-8")
        os.replace(temporary, folder / MANIFEST)
        for old in folder.glob("v*"):
            if old.is_dir() and old.name != version:
                shutil.rmtree(old, ignore_errors=True)
    return folder / version
