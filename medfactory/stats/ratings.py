"""Ratings of versions from pairwise verdicts (Bradley-Terry, as Chatbot Arena fits it)."""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP = 200


def bradley_terry(decisive: list[tuple[int, int]], version_ids: list[int], seed: int = 0) -> dict:
    """Elo-scale ratings (mean 1000) from (winner, loser) pairs, 95 % bootstrap intervals."""
    from sklearn.linear_model import LogisticRegression

    index = {v: i for i, v in enumerate(version_ids)}

    def fit(pairs: list[tuple[int, int]]) -> np.ndarray:
        rows = np.zeros((2 * len(pairs), len(version_ids)))
        labels = np.zeros(2 * len(pairs))
        for n, (winner, loser) in enumerate(pairs):  # each game both ways, so both labels occur
            rows[2 * n, index[winner]], rows[2 * n, index[loser]] = 1, -1
            rows[2 * n + 1, index[winner]], rows[2 * n + 1, index[loser]] = -1, 1
            labels[2 * n] = 1
        model = LogisticRegression(fit_intercept=False, C=1e6, max_iter=1000)
        model.fit(rows, labels)
        scale = 400 / math.log(10)
        ratings = scale * model.coef_[0]
        return ratings - ratings.mean() + 1000

    if not decisive:
        return {}
    point = fit(decisive)
    rng = np.random.default_rng(seed)
    samples = np.array(
        [
            fit([decisive[i] for i in rng.integers(0, len(decisive), len(decisive))])
            for _ in range(BOOTSTRAP)
        ]
    )
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    return {
        v: {"rating": float(point[i]), "low": float(low[i]), "high": float(high[i])}
        for v, i in index.items()
    }
