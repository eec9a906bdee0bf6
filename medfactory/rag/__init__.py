"""Retrieval over a team's own documents: the baseline and the arm beside a fine-tune.

tokens    text to search terms (jieba for Chinese, Snowball stems for English)
store     an index on disk: its folder, manifest and atomic replacement
build     documents -> de-identified chunks -> BM25 (and optional dense vectors)
dense     vectors from any OpenAI-compatible /v1/embeddings
search    the Retriever: BM25, dense, or both fused by reciprocal rank
prompt    the top passages and their sources put before the question (templates/rag/)
evaluate  recall@k and MRR of a question file

`augmenter(NAME)` is what `eval endpoint --rag` and a gateway arm with `rag=` call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medfactory.rag.errors import RagError

__all__ = ["RagError", "augmenter"]

Augment = Callable[[list[dict]], tuple[list[dict], list[dict]]]


def augmenter(name: str, top: int = 3, index_dir: Path | None = None, **options) -> Augment:
    """`messages -> (augmented messages, sources of the passages used)` over index NAME.

    The index is opened here, so a missing one fails when a run or a gateway
    starts, not at its first request; `options` are `Retriever.open`'s (mode,
    embeddings_endpoint, api_key).
    """
    from medfactory.rag.search import Retriever, check_top

    check_top(top)
    retriever = Retriever.open(name, index_dir, **options)
    return lambda messages: retriever.augment(messages, top)
