"""Vectors from any OpenAI-compatible `/v1/embeddings` (vLLM serves them with
`--runner pooling`), scaled to unit length so a dot product is the cosine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import requests

from medfactory.rag.errors import RagError

BATCH = 64


@dataclass
class Embedder:
    endpoint: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint.rstrip("/").removesuffix("/v1")
        if not self.endpoint.startswith(("http://", "https://")):
            raise RagError(f"--embeddings-endpoint {self.endpoint!r}: an http:// or https:// URL")
        if not self.model:
            raise RagError("--embeddings-endpoint needs --embeddings-model (the served name)")

    def embed(self, texts: list[str], dimension: int | None = None) -> np.ndarray:
        """One unit-length float32 row per text; RagError when the server does not answer,
        refuses, or answers with another dimension than `dimension`."""
        rows = [self._batch(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
        vectors = np.concatenate(rows) if rows else np.zeros((0, dimension or 0), np.float32)
        if dimension is not None and vectors.shape[1] != dimension:
            raise self.mismatch(vectors.shape[1], dimension)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def mismatch(self, answered: int, indexed: int) -> RagError:
        return RagError(
            f"{self.endpoint} model {self.model!r} answers with {answered}-dimension vectors, "
            f"the index holds {indexed}-dimension ones: use the model the index was built "
            "with, or rebuild the index without reusing it (another --name or a fresh folder)"
        )

    def _batch(self, texts: list[str]) -> np.ndarray:
        url = f"{self.endpoint}/v1/embeddings"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            reply = requests.post(
                url, json={"model": self.model, "input": texts}, headers=headers,
                timeout=self.timeout,
            )  # fmt: skip
        except requests.ConnectionError:
            raise RagError(
                f"no embeddings server answers at {self.endpoint}; start one (vLLM: "
                "--runner pooling) or check --embeddings-endpoint"
            ) from None
        except requests.Timeout:
            raise RagError(f"{url} did not answer in {self.timeout:g} s") from None
        if reply.status_code >= 400:
            raise RagError(
                f"POST {url} failed with HTTP {reply.status_code}: {reply.text[:300]} "
                "(check --embeddings-model and the server's API key)"
            )
        try:
            data = sorted(reply.json()["data"], key=lambda item: item["index"])
            vectors = np.array([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError):
            raise RagError(f"{url} did not answer with OpenAI-style embeddings") from None
        if vectors.ndim != 2 or len(vectors) != len(texts) or not np.isfinite(vectors).all():
            raise RagError(f"{url} answered {len(vectors)} vectors for {len(texts)} texts")
        return vectors
