"""The Retriever: an index opened once, asked many times.

`bm25` ranks by BM25 (bm25s) over `tokens.terms`; `dense` by cosine between
the question's embedding and the chunks'; `hybrid` fuses the two rankings by
reciprocal rank (each chunk scores sum 1 / (60 + rank), the constant of
Cormack et al. 2009), which needs no calibration between their scales.
`auto` is hybrid when the index holds vectors, BM25 otherwise.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medfactory.rag import store
from medfactory.rag.dense import Embedder
from medfactory.rag.errors import RagError
from medfactory.rag.tokens import terms

MODES = ("auto", "bm25", "dense", "hybrid")
RRF_K = 60
CANDIDATES = 50  # each ranking's depth before fusion


def check_top(top: int) -> int:
    if top < 1:
        raise RagError(f"--top {top}: at least 1 passage")
    return top


@dataclass(frozen=True)
class Passage:
    rank: int
    score: float  # BM25 or cosine; the fused reciprocal-rank score in hybrid mode
    file: str
    heading: str
    start: int  # the character range in the document's text
    end: int
    text: str

    def source(self) -> dict:
        """What a predictions file or an exchange record keeps of it (not the text)."""
        kept = asdict(self)
        del kept["text"]
        kept["score"] = round(self.score, 4)
        return kept


class Retriever:
    def __init__(self, name: str, manifest: dict, chunks: list[dict], bm25, vectors,
                 embedder: Embedder | None, mode: str):  # fmt: skip
        self.name, self.manifest, self.chunks = name, manifest, chunks
        self.bm25, self.vectors, self.embedder, self.mode = bm25, vectors, embedder, mode

    @classmethod
    def open(
        cls,
        name: str,
        index_dir: Path | None = None,
        mode: str = "auto",
        embeddings_endpoint: str | None = None,
        api_key: str | None = None,
    ) -> Retriever:
        """Index NAME from INDEX_DIR; `embeddings_endpoint` overrides the one it was built
        with (the same model, served elsewhere)."""
        import bm25s

        if mode not in MODES:
            raise RagError(f"--mode {mode!r}: one of {', '.join(MODES)}")
        manifest, version = store.open_manifest(name, index_dir)
        dense = manifest.get("embeddings")
        if mode == "auto":
            mode = "hybrid" if dense else "bm25"
        if mode != "bm25" and not dense:
            raise RagError(
                f"--mode {mode}: index {name!r} holds no vectors; rebuild it with "
                "--embeddings-endpoint URL --embeddings-model NAME, or use --mode bm25"
            )
        with (version / "chunks.jsonl").open(encoding="utf-8") as lines:
            chunks = [json.loads(line) for line in lines]
        bm25 = bm25s.BM25.load(version / "bm25", show_progress=False) if mode != "dense" else None
        vectors = embedder = None
        if mode != "bm25":
            vectors = np.load(version / "vectors.npy")
            endpoint = embeddings_endpoint or dense["endpoint"]
            embedder = Embedder(endpoint, dense["model"], api_key)
        return cls(name, manifest, chunks, bm25, vectors, embedder, mode)

    def search(self, query: str, top: int = 3) -> list[Passage]:
        """The `top` passages for `query`, best first; fewer when fewer share a term with it."""
        check_top(top)
        depth = max(top, CANDIDATES)
        rankings = []
        if self.mode in ("bm25", "hybrid"):
            rankings.append(self._bm25(query, depth))
        if self.mode in ("dense", "hybrid"):
            rankings.append(self._dense(query, depth))
        ranked = rankings[0] if len(rankings) == 1 else fuse(rankings)
        return [
            Passage(rank, float(score), **{key: self.chunks[row][key] for key in
                                           ("file", "heading", "start", "end", "text")})
            for rank, (row, score) in enumerate(ranked[:top], 1)
        ]  # fmt: skip

    def augment(self, messages: list[dict], top: int = 3) -> tuple[list[dict], list[dict]]:
        """The messages with the passages for the last user turn put before its question,
        and the sources of those passages."""
        from medfactory.rag.prompt import augment

        return augment(self, messages, top)

    def _bm25(self, query: str, depth: int) -> list[tuple[int, float]]:
        ids = self.bm25.get_tokens_ids(terms(query))
        if not ids:
            return []
        return _best(self.bm25.get_scores_from_ids(ids), depth)

    def _dense(self, query: str, depth: int) -> list[tuple[int, float]]:
        vector = self.embedder.embed([query], self.vectors.shape[1])[0]
        return _best(self.vectors @ vector, depth, positive_only=False)


def _best(scores: np.ndarray, depth: int, positive_only: bool = True) -> list[tuple[int, float]]:
    """(row, score) of the `depth` highest scores, best first; ties in document order."""
    rows = np.arange(len(scores))
    if depth < len(scores):  # a partial sort; at the cut, tied rows are taken in order
        threshold = -np.partition(-scores, depth - 1)[depth - 1]
        above = np.flatnonzero(scores > threshold)
        rows = np.concatenate([above, np.flatnonzero(scores == threshold)[: depth - len(above)]])
    rows = rows[np.lexsort((rows, -scores[rows]))]
    return [(int(r), float(scores[r])) for r in rows if not positive_only or scores[r] > 0]


def fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: best first, ties in document order."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _score) in enumerate(ranking, 1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def search_index(name: str, query: str, top: int = 3, index_dir: Path | None = None,
                 **options) -> list[Passage]:  # fmt: skip
    """`rag search`: open index NAME and ask it once."""
    check_top(top)
    if not query.strip():
        raise RagError("the query is empty; ask a question")
    return Retriever.open(name, index_dir, **options).search(query, top)
