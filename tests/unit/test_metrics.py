"""Our BLEU-4 / ROUGE equal LLaMA-Factory's, sample for sample.

The oracle is LLaMA-Factory's own scoring code path (`ComputeSimilarity`,
`scripts/eval_bleu_rouge.py`): jieba + rouge-chinese + nltk, called for real.
"""

import json
import logging
import random
from pathlib import Path

import jieba
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_chinese import Rouge
from rouge_chinese.rouge_score import _len_lcs

from medfactory.evaluation.metrics import lcs_length, mean_scores, score_pair, score_pairs

REPO = Path(__file__).resolve().parents[2]
jieba.setLogLevel(logging.WARNING)


def llamafactory_scores(predict: str, label: str) -> dict:
    """LLaMA-Factory's per-sample scoring, line for line."""
    hypothesis = list(jieba.cut(predict))
    reference = list(jieba.cut(label))
    if len(" ".join(hypothesis).split()) == 0 or len(" ".join(reference).split()) == 0:
        result = {"rouge-1": {"f": 0.0}, "rouge-2": {"f": 0.0}, "rouge-l": {"f": 0.0}}
    else:
        result = Rouge().get_scores(" ".join(hypothesis), " ".join(reference))[0]
    scores = {k: round(v["f"] * 100, 4) for k, v in result.items()}
    smoothing = SmoothingFunction().method3
    bleu = sentence_bleu([list(label)], list(predict), smoothing_function=smoothing)
    scores["bleu-4"] = round(bleu * 100, 4)
    return scores


def texts() -> tuple[list[str], list[str]]:
    chinese = []
    for line in (REPO / "dataset_info/samples/huatuo_sample.jsonl").read_bytes().splitlines():
        try:
            turns = json.loads(line)["data"]
        except (ValueError, KeyError, TypeError):
            continue
        chinese += [t[2:] for t in turns if isinstance(t, str) and len(t) > 2]
    records = json.loads((REPO / "dataset_info/samples/medical_o1_sample.json").read_text())
    for r in records:
        if isinstance(r, dict) and isinstance(r.get("Complex_CoT"), str):
            chinese.append(f"<think>\n{r['Complex_CoT']}\n</think>\n\n{r['Response']}")
    english_file = REPO.parent / "shared/fixtures/medical_o1/medical_o1_sft_en_first2.json"
    english = []
    for r in json.loads(english_file.read_text()):
        english += [r["Question"], r["Response"]] + r["Complex_CoT"].split("\n\n")
    # The samples hold one deliberately over-long record; the oracle's O(n*m) LCS
    # would take minutes on it.
    return [t for t in chinese if len(t) < 1500], english


def mutate(text: str, rng: random.Random) -> str:
    """A plausible model answer: parts kept, dropped, repeated, reordered."""
    pieces = [p for p in text.replace("。", "。|").replace(". ", ". |").split("|") if p]
    kept = [p for p in pieces if rng.random() < 0.7] or pieces[:1]
    if rng.random() < 0.3:
        rng.shuffle(kept)
    if rng.random() < 0.3:
        kept.append(rng.choice(pieces))
    return "".join(kept)


def pairs() -> list[tuple[str, str]]:
    rng = random.Random(7)
    chinese, english = texts()
    cases = [
        ("", ""), ("", "答案"), ("答案", ""), ("   ", "答案"), ("答案", " \n "),
        ("。。。", "，，"), ("！？", "！？"), ("...", "..."), ("a", "a"), ("好", "好"),
        ("你好。\n\n再见", "你好。 \n 再见！"), ("“好。”他说。", "好。”"), ("……好……", "好"),
        ("<think>\n先想一想\n</think>\n\n结论", "<think>\n\n</think>\n\n结论"),
        ("<think>\nunfinished reasoning", "final answer"), ("Hb 8.2 g/dL", "Hb 8.2 g/dL."),
    ]  # fmt: skip
    for _ in range(150):
        label = rng.choice(chinese)
        cases.append((mutate(label, rng), label))
    for _ in range(40):
        cases.append((rng.choice(chinese), rng.choice(chinese)))  # unrelated answers
    for _ in range(60):
        label = rng.choice(english)
        cases.append((mutate(label, rng), label))
    for _ in range(20):  # long medical-o1-like answers
        label = "".join(rng.choice(chinese) for _ in range(6))[:1200]
        cases.append((mutate(label, rng), label))
    return cases


PAIRS = pairs()


def test_every_sample_scores_exactly_as_llamafactory():
    assert len(PAIRS) > 280
    ours = score_pairs(PAIRS, workers=1)
    mismatches = [
        (p[:40], label[:40], mine, theirs)
        for (p, label), mine in zip(PAIRS, ours, strict=True)
        if mine != (theirs := llamafactory_scores(p, label))
    ]
    assert not mismatches, mismatches[:3]
    # The table is not degenerate: it spans zero, partial and perfect scores.
    rouge_l = {round(s["rouge-l"]) for s in ours}
    assert 0 in rouge_l and 100 in rouge_l and len(rouge_l) > 30


def test_scoring_on_several_processes_keeps_input_order():
    assert score_pairs(PAIRS, workers=2) == [score_pair(p, label) for p, label in PAIRS]


def test_means_are_the_means_of_the_rounded_sample_scores():
    per_sample = score_pairs(PAIRS[:50], workers=1)
    means = mean_scores(per_sample)
    for metric, value in means.items():
        assert value == pytest.approx(sum(s[metric] for s in per_sample) / 50, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 6), max_size=70),
    st.lists(st.integers(0, 6), max_size=70),
)
def test_bit_parallel_lcs_equals_the_dynamic_programming_table(a, b):
    assert lcs_length(a, b) == _len_lcs(a, b)
