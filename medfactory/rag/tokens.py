"""Text to search terms: jieba words for Chinese, Snowball stems for English.

Chinese is cut in jieba's search mode (高血压 gives 血压 and 高血压), so a
question that says 血压 finds a passage that says 高血压; the HMM that guesses
unknown words is off (nearly three times faster, and a guess is no better a
term than the characters it falls back to). English words (FEV1 and HbA1c
count as words) are lower-cased and stemmed (inhalers -> inhal), numbers are
kept as written (140, 6.5), and the commonest function words of both
languages are dropped.

The index and every query go through the same `terms`; `TOKENIZER` names the
rule in the manifest, so an index built by another rule is rebuilt, not mixed.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor

TOKENIZER = "jieba-search-nohmm+snowball-english/1"

_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+|[A-Za-z][A-Za-z0-9]*|\d+(?:\.\d+)?")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
# The commonest function words of both languages, and words of asking (患者, 请问).
_STOP_WORDS = """
a an and are as at be but by for if in into is it its no not of on or such that the their
then there these they this to was were will with what which who whom how when where why do
does did can could should would i my me you your we our he she his her have has had been
being than so
的 了 是 在 和 与 或 及 等 也 就 都 而 着 之 其 吗 呢 吧 啊 呀 么 什么 怎么 怎么办 怎样 如何
哪些 哪个 为什么 多少 是否 可以 应该 需要 有 没有 一个 这个 那个 这些 那些 我 你 他 她 我们
患者 请问
"""
STOP_EN = frozenset(word for word in _STOP_WORDS.split() if word.isascii())
STOP_ZH = frozenset(word for word in _STOP_WORDS.split() if not word.isascii())
# A single process reads below this; above it the chunks are shared among processes.
PARALLEL_CHARS = 4_000_000


@functools.cache
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@functools.cache
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    """The search terms of one text, in order (repeats kept: BM25 counts them)."""
    out: list[str] = []
    english: list[str] = []
    for run in _RUNS.findall(text):
        if _CJK.match(run):
            out += (w for w in _jieba().cut_for_search(run, HMM=False) if w not in STOP_ZH)
        elif run[0].isdigit():
            out.append(run)
        else:
            word = run.lower()
            if word not in STOP_EN:
                english.append(word)
                out.append("\0")  # its place, filled with the stem below
    if english:  # stem all of a text's English words in one call (the C stemmer's batch)
        stems = iter(_stemmer().stemWords(english))
        out = [next(stems) if term == "\0" else term for term in out]
    # One object per distinct term: 100k passages hold some 50 million terms, and a
    # string each would take gigabytes (pickle then also sends each once per batch).
    return [sys.intern(term) for term in out]


def _terms_of(texts: list[str]) -> list[list[str]]:
    return [terms(text) for text in texts]


def terms_of_all(texts: list[str], workers: int | None = None) -> list[list[str]]:
    """`terms` of every text; several processes when there is much to read (jieba is
    pure Python, about 0.25 M characters a second on one core)."""
    workers = workers or os.cpu_count() or 1
    if workers < 2 or sum(map(len, texts)) < PARALLEL_CHARS:
        return _terms_of(texts)
    size = max(1, len(texts) // (workers * 8))
    batches = [texts[i : i + size] for i in range(0, len(texts), size)]
    with ProcessPoolExecutor(workers) as pool:
        return [row for batch in pool.map(_terms_of, batches) for row in batch]
