"""Rates and differences when answers come in clusters (one clinician gives many).

One clinician's answers are not independent: treating them so makes intervals
too narrow, and one busy clinician can decide a comparison alone. Here the
unit of resampling is the user: a cluster bootstrap over users (within each
arm, as users are randomised to arms) for every rate and for the difference
of two arms, and a GEE p-value (statsmodels, binomial, exchangeable
correlation within a user, bias-reduced sandwich variance, as few clusters
are the rule) with a permutation of users between arms where GEE cannot fit.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0
PERMUTATIONS = 5000


@dataclass(frozen=True)
class Clusters:
    """One arm's binary outcomes, totalled per user: `hits[i]` of `totals[i]` for user i."""

    users: tuple[str, ...]
    hits: np.ndarray
    totals: np.ndarray

    @classmethod
    def of(cls, pairs: list[tuple[str, int]]) -> Clusters:
        """From (user, outcome 0/1) pairs; a user with no outcome is not a cluster."""
        by_user: dict[str, list[int]] = {}
        for user, outcome in pairs:
            by_user.setdefault(user, []).append(int(outcome))
        users = tuple(sorted(by_user))
        hits = np.array([sum(by_user[u]) for u in users], dtype=float)
        totals = np.array([len(by_user[u]) for u in users], dtype=float)
        return cls(users, hits, totals)

    @property
    def rate(self) -> float:
        total = self.totals.sum()
        return float(self.hits.sum() / total) if total else math.nan

    def resampled_rates(self, rng: np.random.Generator, resamples: int) -> np.ndarray:
        """The rate over `resamples` draws of as many users, with replacement (NaN: none)."""
        if not len(self.users):
            return np.full(resamples, np.nan)
        picks = rng.integers(0, len(self.users), size=(resamples, len(self.users)))
        totals = self.totals[picks].sum(axis=1)
        return self.hits[picks].sum(axis=1) / totals  # totals > 0: every user has an outcome


def _interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    kept = samples[np.isfinite(samples)]
    if not len(kept):
        return None, None
    low, high = np.percentile(kept, [2.5, 97.5])
    return float(low), float(high)


def clustered_rates(
    arms: dict[str, Clusters], control: str | None = None,
    resamples: int = RESAMPLES, seed: int = SEED,
) -> dict:  # fmt: skip
    """Each arm's rate with its 95 % cluster-bootstrap interval, and each arm's difference
    from `control` (the first arm by default) from the same resampled draws."""
    rng = np.random.default_rng(seed)
    draws = {name: clusters.resampled_rates(rng, resamples) for name, clusters in arms.items()}
    rates = {}
    for name, clusters in arms.items():
        low, high = _interval(draws[name])
        rate = clusters.rate
        rates[name] = {
            "users": len(clusters.users),
            "rate": None if math.isnan(rate) else rate,
            "low": low,
            "high": high,
        }
    control = control or next(iter(arms), None)
    differences = {}
    for name, clusters in arms.items():
        if name == control:
            continue
        point = clusters.rate - arms[control].rate
        low, high = _interval(draws[name] - draws[control])
        differences[name] = {
            "difference": None if math.isnan(point) else point,
            "low": low,
            "high": high,
            **clustered_p_value(arms[name], arms[control], seed=seed),
        }
    return {"rates": rates, "differences": differences, "resamples": resamples, "seed": seed}


def clustered_p_value(arm: Clusters, control: Clusters, seed: int = SEED) -> dict:
    """Two-sided p-value for a difference in rate between two arms of users:
    GEE where each arm has two users or more and the fit converges, else a permutation
    of users between the arms; `method` says which."""
    if not len(arm.users) or not len(control.users):
        return {"p_value": None, "method": "no users in one arm"}
    hits = arm.hits.sum() + control.hits.sum()
    if hits in (0, arm.totals.sum() + control.totals.sum()):
        return {"p_value": 1.0, "method": "every outcome the same: no difference to test"}
    if min(len(arm.users), len(control.users)) >= 2:
        p_value = _gee_p_value(arm, control)
        if p_value is not None:
            return {"p_value": p_value, "method": "GEE"}
    return {"p_value": _permutation_p_value(arm, control, seed), "method": "permutation of users"}


def _outcomes(arms: list[Clusters]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per answer: outcome, arm index, user index (users numbered across arms)."""
    y, group, treated = [], [], []
    number = 0
    for index, clusters in enumerate(arms):
        for hits, total in zip(clusters.hits, clusters.totals, strict=True):
            n, k = int(total), int(hits)
            y += [1] * k + [0] * (n - k)
            group += [number] * n
            treated += [index] * n
            number += 1
    return np.array(y, dtype=float), np.array(treated, dtype=float), np.array(group)


def _gee_p_value(arm: Clusters, control: Clusters) -> float | None:
    """The arm term's p-value of a binomial GEE with exchangeable correlation within a
    user; None where the fit fails, does not converge or is not finite (separation)."""
    import statsmodels.api as sm
    from statsmodels.genmod.cov_struct import Exchangeable
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    y, treated, groups = _outcomes([control, arm])
    model = sm.GEE(
        y, sm.add_constant(treated), groups=groups,
        family=sm.families.Binomial(), cov_struct=Exchangeable(),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fit = model.fit(cov_type="bias_reduced")
        except (ConvergenceWarning, PerfectSeparationWarning, ValueError,
                np.linalg.LinAlgError, ZeroDivisionError):  # fmt: skip
            return None
    p_value = float(fit.pvalues[1])
    if not math.isfinite(p_value) or not np.all(np.isfinite(fit.params)):
        return None
    return p_value


def _permutation_p_value(arm: Clusters, control: Clusters, seed: int) -> float:
    """Users (with all their answers) shuffled between the two arms, keeping each arm's
    number of users; p = (1 + draws at least as far apart) / (1 + draws)."""
    hits = np.concatenate([arm.hits, control.hits])
    totals = np.concatenate([arm.totals, control.totals])
    size = len(arm.users)
    observed = abs(arm.rate - control.rate)
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((PERMUTATIONS, len(hits))), axis=1)
    first, second = order[:, :size], order[:, size:]
    apart = np.abs(
        hits[first].sum(axis=1) / totals[first].sum(axis=1)
        - hits[second].sum(axis=1) / totals[second].sum(axis=1)
    )
    return float((1 + np.sum(apart >= observed - 1e-12)) / (1 + PERMUTATIONS))
