import hashlib
from collections import Counter

import pytest

from converters.split import assign_split, parse_split


@pytest.mark.parametrize(
    ("text", "ratios"),
    [("0.7,0.2,0.1", (0.7, 0.2, 0.1)), ("1", (1.0,)), ("0.8,0.2", (0.8, 0.2))],
)
def test_parse_split(text, ratios):
    assert parse_split(text) == ratios


@pytest.mark.parametrize("text", ["0.7,0.2", "a,b", "0.5,0.5,0.5", "1.2,-0.2", "0.2,0.2,0.2,0.4"])
def test_bad_split_is_refused(text):
    with pytest.raises(ValueError, match="--split"):
        parse_split(text)


def keys(n, offset=0):
    return [hashlib.blake2b(str(i).encode(), digest_size=16).digest() for i in range(offset, n)]


def test_ratios_are_followed():
    counts = Counter(assign_split(k, 42, (0.7, 0.2, 0.1)) for k in keys(20000))
    assert abs(counts["train"] / 20000 - 0.7) < 0.02
    assert abs(counts["val"] / 20000 - 0.2) < 0.02
    assert abs(counts["test"] / 20000 - 0.1) < 0.02


def test_split_depends_on_content_and_seed_only():
    ratios = (0.7, 0.2, 0.1)
    before = {k: assign_split(k, 42, ratios) for k in keys(1000)}
    after = {k: assign_split(k, 42, ratios) for k in reversed(keys(2000))}
    assert all(after[k] == split for k, split in before.items())
    other_seed = {k: assign_split(k, 7, ratios) for k in keys(1000)}
    assert other_seed != before


def test_train_only():
    assert {assign_split(k, 42, (1.0,)) for k in keys(500)} == {"train"}
