"""`rag index`: documents -> de-identified chunks -> a BM25 index (and dense vectors).

The readers and the chunker are `data synthesize`'s (converters/documents.py);
each chunk's text goes through the converters' PII scrubber before it is
stored or sent anywhere. A rebuild reads, chunks, scrubs, tokenizes and embeds
only the files whose content changed (sha256), reuses the rest, and rebuilds
the BM25 matrix over all of them (its weights depend on every document).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from converters.clean import scrub_pii
from converters.documents import HEADING, chunk_document, read_document
from medfactory.rag import store
from medfactory.rag.dense import Embedder
from medfactory.rag.errors import RagError
from medfactory.rag.tokens import TOKENIZER, terms_of_all


@dataclass(frozen=True)
class IndexOptions:
    name: str
    index_dir: Path | None = None
    chunk_chars: int = 600  # three passages stay well inside a small model's context
    overlap: int = 100
    embeddings_endpoint: str | None = None
    embeddings_model: str | None = None
    api_key: str | None = None
    encoding: str | None = None  # of the text documents [default: detected]


@dataclass
class Indexed:
    """The chunks of the index being built, in file order, with what BM25 and the dense
    search need of each."""

    chunks: list[dict]
    terms: list[list[str]]
    vectors: np.ndarray | None


def named_documents(inputs: list[Path]) -> dict[str, Path]:
    """Each document under the name its passages cite: its path inside the folder given,
    or its file name when given by itself."""
    from medfactory.synthesis.run import documents

    named: dict[str, Path] = {}
    for given in inputs:
        for path in documents([Path(given)]):
            name = path.relative_to(given).as_posix() if Path(given).is_dir() else path.name
            if name in named and named[name].resolve() != path.resolve():
                raise RagError(f"{named[name]} and {path} would both be cited as {name!r}; "
                               "index them from one folder or rename one")  # fmt: skip
            named[name] = path
    return named


def build_index(
    inputs: list[Path], options: IndexOptions, on_progress: Callable[[str], None] | None = None
) -> dict:
    """Build or update index NAME; the summary of what was read, reused and written."""
    started = time.perf_counter()
    say = on_progress or (lambda _text: None)
    folder = store.index_folder(options.name, options.index_dir)
    old = store.read_manifest(folder)
    if old and old.get("embeddings") and not (options.embeddings_endpoint or
                                              options.embeddings_model):  # fmt: skip
        # A rerun keeps the index's dense vectors: the same model, on the same server.
        options = replace(options, embeddings_endpoint=old["embeddings"]["endpoint"],
                          embeddings_model=old["embeddings"]["model"])  # fmt: skip
    embedder = _embedder(options)
    named = named_documents(inputs)
    dimension = embedder.embed(["dimension probe"]).shape[1] if embedder else None
    hashes = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in named.items()}
    settings = _settings(options)
    reusable = _reusable(old, settings, hashes, dimension)
    if old and set(reusable) == set(hashes) == set(old["files"]) and _same_server(old, settings):
        return _summary(old, folder, reused=len(hashes), read=0, removed=0, changed=False,
                        seconds=time.perf_counter() - started)  # fmt: skip
    previous = _load_reusable(folder / old["data"], old, reusable) if reusable else {}
    fresh = [name for name in named if name not in reusable]
    say(f"reading {len(fresh)} documents ({len(reusable)} unchanged)")
    new_chunks, pii = _read_chunks({name: named[name] for name in fresh}, options)
    new_terms = terms_of_all([_searchable(chunk) for chunk in new_chunks])
    new_vectors = None
    if embedder:
        say(f"embedding {len(new_chunks)} chunks with {embedder.model}")
        new_vectors = embedder.embed([_searchable(c) for c in new_chunks], dimension)
    indexed = _merge(named, previous, new_chunks, new_terms, new_vectors)
    if not indexed.chunks:
        raise RagError("the documents hold no text to index")
    counts = Counter(chunk["file"] for chunk in indexed.chunks)
    files = {
        name: {
            "sha256": hashes[name],
            "chunks": counts[name],
            "pii_replaced": pii[name] if name in pii else old["files"][name]["pii_replaced"],
        }
        for name in named
    }
    manifest = {
        "name": options.name,
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **settings,
        "chunks": len(indexed.chunks),
        "files": files,
        "pii_replaced": dict(
            sorted(sum((Counter(f["pii_replaced"]) for f in files.values()), Counter()).items())
        ),  # fmt: skip
    }
    if embedder:
        dims = indexed.vectors.shape[1]
        manifest["embeddings"] = {**settings["embeddings"], "dimension": dims}
    say(f"indexing {len(indexed.chunks)} chunks")
    store.commit(folder, manifest, lambda version: _write_version(version, indexed))
    removed = len(set((old or {}).get("files", {})) - set(named))
    return _summary(manifest, folder, reused=len(reusable), read=len(fresh), removed=removed,
                    changed=True, seconds=time.perf_counter() - started)  # fmt: skip


def _embedder(options: IndexOptions) -> Embedder | None:
    if options.embeddings_endpoint is None:
        if options.embeddings_model:
            raise RagError("--embeddings-model needs --embeddings-endpoint (the server's URL)")
        return None
    return Embedder(options.embeddings_endpoint, options.embeddings_model, options.api_key)


def _settings(options: IndexOptions) -> dict:
    """What a reused file's chunks depend on: a change to any of them rereads every file."""
    embeddings = None
    if options.embeddings_endpoint:
        endpoint = options.embeddings_endpoint.rstrip("/").removesuffix("/v1")
        embeddings = {"endpoint": endpoint, "model": options.embeddings_model}
    return {
        "chunking": {
            "chunk_chars": options.chunk_chars,
            "overlap": options.overlap,
            "encoding": options.encoding,
        },
        "deid": "basic",
        "tokenizer": TOKENIZER,
        "embeddings": embeddings,
    }


def _same_server(old: dict, settings: dict) -> bool:
    return (old.get("embeddings") or {}).get("endpoint") == (settings["embeddings"] or {}).get(
        "endpoint"
    )


def _reusable(old: dict | None, settings: dict, hashes: dict, dimension: int | None) -> list:
    """The files whose chunks, terms (and vectors: same model, same dimension) can be kept."""
    if old is None or any(old.get(key) != settings[key] for key in ("chunking", "deid",
                                                                       "tokenizer")):  # fmt: skip
        return []
    had = old.get("embeddings") or {}
    if (settings["embeddings"] or {}).get("model") != had.get("model") or (
        dimension != had.get("dimension")
    ):
        return []
    return [name for name, digest in hashes.items()
            if old["files"].get(name, {}).get("sha256") == digest]  # fmt: skip


def _load_reusable(version: Path, old: dict, names: list[str]) -> dict[str, Indexed]:
    keep = set(names)
    chunks = [json.loads(line) for line in (version / "chunks.jsonl").open(encoding="utf-8")]
    lines = (version / "terms.txt").read_text(encoding="utf-8").split("\n")
    vectors = np.load(version / "vectors.npy") if old.get("embeddings") else None
    kept: dict[str, Indexed] = {}
    for row, chunk in enumerate(chunks):
        if chunk["file"] not in keep:
            continue
        part = kept.setdefault(chunk["file"], Indexed([], [], [] if vectors is not None else None))
        part.chunks.append(chunk)
        part.terms.append(lines[row].split())
        if vectors is not None:
            part.vectors.append(vectors[row])
    return kept


def _read_chunks(paths: dict[str, Path], options: IndexOptions) -> tuple[list[dict], dict]:
    """The chunks of these documents, scrubbed; what was replaced, per document."""
    chunks, pii = [], {}
    for name, path in paths.items():
        found, text = Counter(), read_document(path, options.encoding)
        headings = _headings(text)
        for chunk in chunk_document(name, text, options.chunk_chars, options.overlap):
            chunks.append({
                "file": name, "index": chunk.index, "heading": scrub_pii(chunk.heading, found),
                "start": chunk.start, "end": chunk.end, "text": scrub_pii(chunk.text, found),
                "topic": scrub_pii(_topic(name, headings, chunk.start), found),
            })  # fmt: skip
        pii[name] = dict(sorted(found.items()))
    return chunks, pii


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of every Markdown heading line of a document's text."""
    found, offset = [], 0
    for line in text.split("\n"):
        if match := HEADING.match(line):
            found.append((offset, len(match.group(1)), match.group(2)))
        offset += len(line) + 1
    return found


def _topic(name: str, headings: list[tuple[int, int, str]], start: int) -> str:
    """The file's name, its first heading (the title) and the headings above a chunk: a
    passage under 诊断 in 高血压.md is about 高血压 though its text may not say so."""
    trail: dict[int, str] = {}
    for offset, level, title in headings:
        if offset >= start:
            break
        trail = {lvl: t for lvl, t in trail.items() if lvl < level} | {level: title}
    words = [re.sub(r"[_\-.]+", " ", PurePosixPath(name).stem)]
    if headings and headings[0][0] < start and headings[0][2] not in trail.values():
        words.append(headings[0][2])
    return " ".join(words + list(trail.values()))


def _searchable(chunk: dict) -> str:
    """What a chunk is found by: its topic, then its text."""
    return f"{chunk['topic']}\n{chunk['text']}"


def _merge(named, previous: dict[str, Indexed], chunks, terms, vectors) -> Indexed:
    """Reused and new chunks together, in the order of the documents."""
    fresh: dict[str, Indexed] = {}
    for row, chunk in enumerate(chunks):
        part = fresh.setdefault(chunk["file"], Indexed([], [], []))
        part.chunks.append(chunk)
        part.terms.append(terms[row])
        if vectors is not None:
            part.vectors.append(vectors[row])
    merged = Indexed([], [], [] if vectors is not None else None)
    for name in named:
        part = previous.get(name) or fresh.get(name)
        if part is None:
            continue  # a document without text
        merged.chunks += part.chunks
        merged.terms += part.terms
        if merged.vectors is not None:
            merged.vectors += part.vectors
    if merged.vectors is not None:
        merged.vectors = np.array(merged.vectors, dtype=np.float32)
    return merged


def _write_version(version: Path, indexed: Indexed) -> None:
    import bm25s

    with (version / "chunks.jsonl").open("w", encoding="utf-8") as out:
        for chunk in indexed.chunks:
            out.write(json.dumps(chunk, ensure_ascii=False) + "\n")
    (version / "terms.txt").write_text(
        "\n".join(" ".join(row) for row in indexed.terms), encoding="utf-8"
    )
    bm25 = bm25s.BM25()
    bm25.index(indexed.terms, show_progress=False)
    bm25.save(version / "bm25", show_progress=False)
    if indexed.vectors is not None:
        np.save(version / "vectors.npy", indexed.vectors)


def _summary(manifest: dict, folder: Path, **counts) -> dict:
    return {
        "name": manifest["name"],
        "folder": str(folder),
        "documents": len(manifest["files"]),
        "chunks": manifest["chunks"],
        "documents_read": counts["read"],
        "documents_reused": counts["reused"],
        "documents_removed": counts["removed"],
        "updated": counts["changed"],
        "embeddings": manifest.get("embeddings"),
        "pii_replaced": manifest.get("pii_replaced", {}),
        "seconds": round(counts["seconds"], 2),
    }
