"""Bradley-Terry ratings, plain and with style control (Chatbot Arena's covariates)."""

import random

import pytest

from medfactory.stats.ratings import bradley_terry, style_controlled, style_of


def games_won_by_length(seed: int, count: int = 200, longer_wins: float = 1.0, edge: float = 0.0):
    """(winner, loser, winner's answer, loser's answer): versions 1 and 2 write alike but
    1 writes longer three times in four; the longer answer wins (always, or with the
    chance `longer_wins`); with `edge`, version 1 also wins that share of the rest."""
    rng = random.Random(seed)
    games = []
    for _ in range(count):
        long, short = "建议低盐饮食。" * rng.randint(30, 60), "建议低盐饮食。" * rng.randint(3, 20)
        first, second = (long, short) if rng.random() < 0.75 else (short, long)
        first_wins = (len(first) > len(second)) == (rng.random() < longer_wins)
        if edge and rng.random() < edge:
            first_wins = True
        games.append((1, 2, first, second) if first_wins else (2, 1, second, first))
    return games


def gap(ratings: dict) -> float:
    return ratings[1]["rating"] - ratings[2]["rating"]


def plain_and_styled(games: list[tuple], seed: int = 0) -> tuple[dict, dict]:
    plain = bradley_terry([(won, lost) for won, lost, _, _ in games], [1, 2], seed)
    return plain, style_controlled(games, [1, 2], seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_when_the_longer_answer_always_wins_style_control_shrinks_the_gap(seed):
    plain, styled = plain_and_styled(games_won_by_length(seed), seed)
    assert plain[2]["high"] < plain[1]["low"] and gap(plain) > 100  # plain: 1 clearly ahead
    assert 0 <= gap(styled["ratings"]) < 0.6 * gap(plain)
    assert styled["style"]["length"]["low"] > 0  # the longer answer wins
    # no Markdown in any answer: those terms never differ and are not fitted
    assert styled["style"]["headers"] is styled["style"]["bold"] is styled["style"]["lists"] is None
    mean = (styled["ratings"][1]["rating"] + styled["ratings"][2]["rating"]) / 2
    assert mean == pytest.approx(1000)


def test_when_length_mostly_decides_the_versions_are_no_longer_told_apart():
    plain, styled = plain_and_styled(games_won_by_length(0, count=400, longer_wins=0.85))
    assert plain[2]["high"] < plain[1]["low"]
    ratings = styled["ratings"]
    assert ratings[1]["low"] < ratings[2]["high"] and abs(gap(ratings)) < gap(plain) / 3
    assert styled["style"]["length"]["low"] > 0


def test_style_control_keeps_a_real_difference_between_versions():
    """Where version 1 also wins beyond its length, style control still finds it ahead."""
    _, styled = plain_and_styled(games_won_by_length(0, count=400, longer_wins=0.85, edge=0.4))
    assert styled["ratings"][1]["low"] > styled["ratings"][2]["high"]
    assert styled["style"]["length"]["value"] > 0


def test_style_of_counts_length_and_markdown():
    text = "## 诊断\n\n**高血压** 二级。\n\n- 低盐饮食\n- 规律服药\n1. 复查\n2) 随访\n__注意__"
    assert style_of(text) == (float(len(text)), 1.0, 2.0, 4.0)
    plain = "plain # not a header, 2*3*4"
    assert style_of(plain) == (float(len(plain)), 0.0, 0.0, 0.0)


def test_no_decisive_verdict_has_no_ratings():
    assert bradley_terry([], [1, 2]) == {} and style_controlled([], [1, 2]) == {}


@pytest.mark.parametrize("seed", range(4))
def test_the_fit_is_scikit_learns_logistic_regression(seed):
    """The numpy fit (400 per report) against scikit-learn's, on generated designs with
    bootstrap-like weights, some rows weighing nothing."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from medfactory.stats.ratings import PRIOR_C, _fit

    rng = np.random.default_rng(seed)
    rows = np.hstack([rng.integers(-1, 2, (60, 3)), rng.normal(size=(60, 2))]).astype(float)
    labels = (rng.random(60) < 1 / (1 + np.exp(-rows @ [1.5, -1, 0, 2, 0.5]))).astype(float)
    weights = rng.integers(0, 4, 60).astype(float)
    reference = LogisticRegression(fit_intercept=False, C=PRIOR_C, tol=1e-10, max_iter=1000)
    reference.fit(rows, labels, sample_weight=weights)
    assert _fit(rows, labels, weights) == pytest.approx(reference.coef_[0], abs=1e-6)
