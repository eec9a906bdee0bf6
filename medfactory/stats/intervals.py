"""Confidence intervals shared by the evaluation and the clinicians' reports."""

from __future__ import annotations

import math


def wilson(count: int, total: int) -> tuple[float, float, float]:
    """(share, low, high) with the Wilson 95 % interval (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if total == 0:
        return (math.nan, math.nan, math.nan)
    low, high = proportion_confint(count, total, alpha=0.05, method="wilson")
    return (count / total, float(low), float(high))
