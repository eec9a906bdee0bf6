"""Deterministic, stable train/validation/test assignment.

A record's split is a function of its (folded) content and the seed alone, so
adding records to a source never moves existing ones between splits, and
near-duplicates always land in the same split (no train/test leakage).
"""

from __future__ import annotations

import hashlib

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


def assign_split(content_key: bytes, seed: int, ratios: tuple[float, ...]) -> str:
    digest = hashlib.blake2b(content_key, digest_size=8, key=str(seed).encode()).digest()
    point = int.from_bytes(digest, "big") / 2**64
    edge = 0.0
    for name, ratio in zip(SPLIT_NAMES, ratios, strict=False):
        edge += ratio
        if point < edge:
            return name
    return SPLIT_NAMES[len(ratios) - 1]  # rounding at the top edge
