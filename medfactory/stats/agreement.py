"""Agreement between raters, and paired differences of their scores."""

from __future__ import annotations

import math
import warnings

import numpy as np


def kappa(a: list, b: list, weights: str | None = None) -> float | None:
    """Cohen's kappa of two raters (scikit-learn); None where it is undefined."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) < 2 or len(set(a) | set(b)) < 2:
        return None  # undefined with a single category
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = cohen_kappa_score(a, b, weights=weights, labels=sorted(set(a) | set(b)))
    return None if math.isnan(value) else float(value)


def alpha(matrix: list[list[float]], level: str) -> float | None:
    """Krippendorff's alpha over a raters x units matrix (NaN: not rated); None where undefined."""
    import krippendorff

    data = np.array(matrix, dtype=float).reshape(len(matrix), -1)
    if not np.any((~np.isnan(data)).sum(axis=0) >= 2):
        return None  # no unit rated twice yet
    values = data[~np.isnan(data)]
    if len(np.unique(values)) < 2:
        return None
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))


def paired_difference(x: list[float], y: list[float]) -> dict:
    """mean(y - x) with a 95 % t interval."""
    from scipy import stats

    diff = np.asarray(y, dtype=float) - np.asarray(x, dtype=float)
    if len(diff) < 2:
        return {
            "n": int(len(diff)),
            "mean": float(diff.mean()) if len(diff) else math.nan,
            "low": math.nan,
            "high": math.nan,
        }
    if np.all(diff == diff[0]):
        return {
            "n": int(len(diff)),
            "mean": float(diff[0]),
            "low": float(diff[0]),
            "high": float(diff[0]),
        }
    low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
    return {"n": int(len(diff)), "mean": float(diff.mean()), "low": float(low), "high": float(high)}
