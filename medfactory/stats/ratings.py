"""Ratings of versions from pairwise verdicts: Bradley-Terry as Chatbot Arena fits it
(logistic regression, bootstrap intervals), plain and with style control. The fit is
scikit-learn's L2 logistic regression, solved in numpy (its twin in the tests is
scikit-learn's own).

Raters, clinicians included, favour longer and more formatted answers. Style control
puts the answers' differences in length and Markdown (headers, bold spans, list items)
beside the version terms, so a version's rating is what remains once style is
accounted for, and each style term's coefficient says how much style swayed the
verdicts (positive: the longer or more formatted answer tends to win).
"""

from __future__ import annotations

import math
import re

import numpy as np

BOOTSTRAP = 200
ELO = 400 / math.log(10)  # one logit on the Elo scale
# Both fits keep the same mild L2 penalty (scikit-learn's C; Chatbot Arena's style-
# controlled fit has one too): where one version, or one style term, decides every
# verdict, as in a small study, the unpenalised fit has no finite solution. The same
# penalty on both keeps the plain and the style-controlled ratings comparable.
PRIOR_C = 1.0
STYLE = ("length", "headers", "bold", "lists")
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_LIST = re.compile(r"^\s*(?:[-*+•]|\d+[.)、])\s", re.M)


def style_of(text: str) -> tuple[float, ...]:
    """An answer's style: characters, Markdown headers, bold spans and list items."""
    return (
        float(len(text)),
        float(len(_HEADER.findall(text))),
        float(len(_BOLD.findall(text))),
        float(len(_LIST.findall(text))),
    )


def _fit(rows: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """scikit-learn's L2 logistic regression without intercept (C = PRIOR_C), by Newton's
    method in numpy: the same minimum (tests/unit/test_stats_ratings.py compares the two),
    in a tenth of a millisecond where scikit-learn's checks take one, and the bootstrap
    fits 400 times per report."""
    coefficients = np.zeros(rows.shape[1])
    signs = 2 * labels - 1

    def objective(w: np.ndarray) -> float:
        return 0.5 * w @ w + PRIOR_C * weights @ np.logaddexp(0, -signs * (rows @ w))

    current = objective(coefficients)
    for _ in range(100):
        chance = 1 / (1 + np.exp(-(rows @ coefficients)))
        gradient = coefficients + PRIOR_C * rows.T @ (weights * (chance - labels))
        curvature = weights * chance * (1 - chance)
        hessian = np.eye(len(coefficients)) + PRIOR_C * (rows.T * curvature) @ rows
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while (trial := objective(coefficients - size * step)) > current and size > 1e-8:
            size /= 2  # a full Newton step overshot: halve it
        coefficients, current = coefficients - size * step, trial
        if np.max(np.abs(size * step)) < 1e-10:
            break
    return coefficients


def _games(decisive: list[tuple[int, int]], index: dict[int, int]) -> tuple[np.ndarray, ...]:
    """Design rows: each game both ways (+1 winner, -1 loser, label 1; and mirrored)."""
    rows = np.zeros((2 * len(decisive), len(index)))
    labels = np.zeros(2 * len(decisive))
    for n, (winner, loser) in enumerate(decisive):
        rows[2 * n, index[winner]], rows[2 * n, index[loser]] = 1, -1
        rows[2 * n + 1, index[winner]], rows[2 * n + 1, index[loser]] = -1, 1
        labels[2 * n] = 1
    return rows, labels


def _elo(coefficients: np.ndarray) -> np.ndarray:
    ratings = ELO * coefficients
    return ratings - ratings.mean() + 1000


def _bootstrap(counts: np.ndarray, fit, seed: int) -> np.ndarray:
    """Fits over the games drawn with replacement, as weights: a game drawn k times
    weighs k (both of its rows), which is the resample without copying the rows."""
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(counts.sum(), counts / counts.sum(), size=BOOTSTRAP)
    return np.array([fit(np.repeat(drawn, 2)) for drawn in draws])


def bradley_terry(decisive: list[tuple[int, int]], version_ids: list[int], seed: int = 0) -> dict:
    """Elo-scale ratings (mean 1000) from (winner, loser) pairs, 95 % bootstrap intervals."""
    if not decisive:
        return {}
    index = {v: i for i, v in enumerate(version_ids)}
    # Games between the same two versions with the same winner are one row with a count.
    pairs, counts = np.unique(np.array(decisive), axis=0, return_counts=True)
    rows, labels = _games([tuple(pair) for pair in pairs.tolist()], index)
    point = _elo(_fit(rows, labels, np.repeat(counts, 2)))
    samples = _bootstrap(counts, lambda weights: _elo(_fit(rows, labels, weights)), seed)
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    return {
        v: {"rating": float(point[i]), "low": float(low[i]), "high": float(high[i])}
        for v, i in index.items()
    }


def style_controlled(
    decisive: list[tuple[int, int, str, str]], version_ids: list[int], seed: int = 0
) -> dict:
    """Bradley-Terry with style control from (winner, loser, winner's answer, loser's
    answer): Elo-scale ratings (mean 1000) of the versions and a coefficient per style
    term (logits per standard deviation of the term), each with a 95 % bootstrap interval.

    As Chatbot Arena: each term is the normalised difference (a - b) / (a + b) of the
    two answers, standardised over the games; a term that never differs is left out
    and reported as None.
    """
    if not decisive:
        return {}
    index = {v: i for i, v in enumerate(version_ids)}
    rows, labels = _games([(won, lost) for won, lost, _, _ in decisive], index)
    style = np.zeros((len(rows), len(STYLE)))
    for n, (_, _, won, lost) in enumerate(decisive):
        a, b = np.array(style_of(won)), np.array(style_of(lost))
        total = a + b
        difference = np.divide(a - b, total, out=np.zeros_like(a), where=total > 0)
        style[2 * n], style[2 * n + 1] = difference, -difference
    spread = style.std(axis=0)  # the mirrored rows make each term's mean 0
    used = spread > 0
    design = np.hstack([rows, style[:, used] / spread[used]])
    versions = len(index)

    def fit(weights: np.ndarray) -> np.ndarray:
        coefficients = _fit(design, labels, weights)
        return np.concatenate([_elo(coefficients[:versions]), coefficients[versions:]])

    games = np.ones(len(decisive), dtype=int)
    point = fit(np.repeat(games, 2))
    low, high = np.percentile(_bootstrap(games, fit, seed), [2.5, 97.5], axis=0)
    figures = [
        {"value": float(point[i]), "low": float(low[i]), "high": float(high[i])}
        for i in range(len(point))
    ]
    terms = iter(figures[versions:])
    return {
        "ratings": {
            v: {"rating": figures[i]["value"], "low": figures[i]["low"], "high": figures[i]["high"]}
            for v, i in index.items()
        },
        "style": {term: next(terms) if on else None for term, on in zip(STYLE, used, strict=True)},
    }
