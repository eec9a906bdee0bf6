"""Deterministic, stable train/validation/test assignment.

A record's split is a function of its (folded) content and the seed alone, so
adding records to a source never moves existing ones between splits, and
near-duplicates always land in the same split (no train/test leakage).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def parse_split(text: str) -> tuple[float, ...]:
    """'0.7,0.2,0.1' -> (0.7, 0.2, 0.1); '1' -> (1.0,): train only."""
    try:
        ratios = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--split {text!r}: expected numbers like 0.7,0.2,0.1") from None
    if not 1 <= len(ratios) <= len(SPLIT_NAMES):
        raise ValueError(f"--split {text!r}: give 1 to 3 ratios (train[,val[,test]])")
    if any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"--split {text!r}: ratios must be >= 0 and add up to 1")
    return ratios


def content_keys(contents: Iterable[bytes], seed: int) -> np.ndarray:
    """A 64-bit keyed hash of each content: it places the record, and it is its dedup key."""
    key = str(seed).encode()
    digests = b"".join(hashlib.blake2b(c, digest_size=8, key=key).digest() for c in contents)
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def split_indices(keys: np.ndarray, ratios: tuple[float, ...]) -> np.ndarray:
    """Index into SPLIT_NAMES for each key: the key, read as a point in [0, 1), picks the split."""
    edges = np.cumsum(ratios)
    points = keys.astype(np.float64) / 2.0**64
    index = np.searchsorted(edges, points, side="right")
    return np.minimum(index, len(ratios) - 1).astype(np.uint8)  # rounding at the top edge


def assign_split(content: bytes, seed: int, ratios: tuple[float, ...]) -> str:
    """The split of one record's content."""
    return SPLIT_NAMES[split_indices(content_keys([content], seed), ratios)[0]]
