"""Benchmark BLEU-4 / ROUGE scoring: LLaMA-Factory's implementation vs ours.

1,000 prediction/label pairs with medical-o1-like lengths (500-3,000
characters, reasoning included), built from the bundled samples. Both sides
use every core: the baseline runs LLaMA-Factory's per-sample code
(`scripts/eval_bleu_rouge.py`: jieba + rouge-chinese + nltk) in a process
pool as that script does with `num_proc`; ours is `medfactory.evaluation.metrics`.
Checks that every per-sample score is identical, prints both wall times and
the ratio. Goal on a 2-core machine: >= 20x faster.

    python benchmarks/metrics.py [--pairs 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from medfactory.evaluation.metrics import score_pairs

REPO = Path(__file__).resolve().parents[1]


def llamafactory_scores(pair: tuple[str, str]) -> dict:
    """LLaMA-Factory's per-sample scoring (scripts/eval_bleu_rouge.py, compute_metrics)."""
    import jieba
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    jieba.setLogLevel(logging.WARNING)
    predict, label = pair
    hypothesis = list(jieba.cut(predict))
    reference = list(jieba.cut(label))
    bleu_score = sentence_bleu(
        [list(label)], list(predict), smoothing_function=SmoothingFunction().method3
    )
    if len(" ".join(hypothesis).split()) == 0 or len(" ".join(reference).split()) == 0:
        result = {"rouge-1": {"f": 0.0}, "rouge-2": {"f": 0.0}, "rouge-l": {"f": 0.0}}
    else:
        result = Rouge().get_scores(" ".join(hypothesis), " ".join(reference))[0]
    scores = {k: round(v["f"] * 100, 4) for k, v in result.items()}
    scores["bleu-4"] = round(bleu_score * 100, 4)
    return scores


def medical_pairs(count: int, seed: int = 3) -> list[tuple[str, str]]:
    """Labels of 500-3,000 characters (thought + answer); predictions that half-agree."""
    records = json.loads((REPO / "dataset_info/samples/medical_o1_sample.json").read_text())
    paragraphs = [
        p
        for r in records
        if isinstance(r, dict) and isinstance(r.get("Complex_CoT"), str)
        for p in r["Complex_CoT"].split("\n\n") + [r["Response"]]
        if isinstance(p, str) and 0 < len(p) < 400
    ]
    rng = random.Random(seed)

    def text(length: int) -> str:
        parts = []
        while sum(map(len, parts)) < length:
            parts.append(rng.choice(paragraphs))
        return "\n\n".join(parts)[:length]

    pairs = []
    for _ in range(count):
        length = rng.randint(500, 3000)
        label = text(length)
        kept = [p for p in label.split("\n\n") if rng.random() < 0.6]
        predict = "\n\n".join(kept + [text(length // 3)])[:length]
        pairs.append((predict, label))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args()
    pairs = medical_pairs(args.pairs)
    cores = os.cpu_count() or 1
    chars = sum(len(p) + len(label) for p, label in pairs)
    print(f"{len(pairs)} pairs, {chars / len(pairs) / 2:,.0f} characters per text, {cores} cores")

    started = time.perf_counter()
    ours = score_pairs(pairs, workers=cores)
    ours_s = time.perf_counter() - started
    print(f"medfactory:    {ours_s:8.1f} s")

    started = time.perf_counter()
    with ProcessPoolExecutor(cores) as pool:
        theirs = list(pool.map(llamafactory_scores, pairs, chunksize=4))
    theirs_s = time.perf_counter() - started
    print(f"LLaMA-Factory: {theirs_s:8.1f} s")

    different = sum(1 for a, b in zip(ours, theirs, strict=True) if a != b)
    print(f"per-sample scores identical: {len(pairs) - different}/{len(pairs)}")
    print(f"speed-up: {theirs_s / ours_s:.1f}x (goal >= 20x)")
    if different:
        sys.exit(1)


if __name__ == "__main__":
    main()
