"""Bootstrap intervals: of a mean, and of a mean paired difference."""

from __future__ import annotations

import numpy as np

RESAMPLES = 2000


def paired_bootstrap(
    baseline: np.ndarray, candidate: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95 % confidence interval of mean(candidate - baseline) over paired samples."""
    differences = candidate - baseline
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_interval(
    values: list[float],
    resamples: int = RESAMPLES,
    seed: int = 0,
    clip: tuple[float, float] | None = None,
) -> list[float]:
    """95 % percentile interval of the mean (clipped to `clip`, if given), resampling the items."""
    array = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, len(array), size=(resamples, len(array)))].mean(axis=1)
    low, high = np.percentile(means if clip is None else np.clip(means, *clip), [2.5, 97.5])
    return [float(low), float(high)]
