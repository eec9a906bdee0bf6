"""BM25 retrieval at scale: build time, query latency and memory over 100k chunks.

Generates Markdown guidelines of Chinese prose (words drawn by frequency from
jieba's own dictionary, so the cutting costs what real text costs) with one
English sentence in ten and a heading every passage: --chunks passages of about
--chars characters (default 100,000 x 1,000: 100 MB of text). Then
`medfactory rag index`'s own function builds the index (read, chunk, scrub,
cut, BM25, save), and `Retriever.search` answers --queries questions.

Prints build seconds against the goal (< 60 s for 100 MB), the median and 95th
percentile query time against the goal (< 20 ms), peak memory of the build,
memory of the opened index and its size on disk.

    python benchmarks/rag.py [--chunks 100000] [--chars 1000] [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

BUILD_GOAL_S = 60.0  # for 100 MB of text
QUERY_GOAL_MS = 20.0
DOCUMENT_PASSAGES = 1000  # passages per generated file
ENGLISH = [
    "Inhaled corticosteroids are the basis of long-term asthma control",
    "Check inhaler technique and adherence at every review",
    "Metformin is the first-line drug for type 2 diabetes without contraindications",
    "Blood pressure above 180/110 mmHg with chest pain needs emergency care",
]


def dictionary_words() -> tuple[list[str], list[int]]:
    """jieba's dictionary: (words, frequencies) of the Chinese words in it."""
    import jieba

    words, weights = [], []
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as lines:
        for line in lines:
            word, freq, *_ = line.split()
            if "\u4e00" <= word[0] <= "\u9fff" and int(freq) > 2:
                words.append(word)
                weights.append(int(freq))
    return words, weights


def generate(folder: Path, chunks: int, chars: int, seed: int = 7) -> tuple[int, list[str]]:
    """Markdown files of `chunks` sections of about `chars` characters; (characters
    written, a sample of sentences to ask about)."""
    rng = random.Random(seed)
    words, weights = dictionary_words()
    cumulative = []
    total = 0
    for weight in weights:
        total += weight
        cumulative.append(total)
    written, samples = 0, []
    for number in range(0, chunks, DOCUMENT_PASSAGES):
        parts = [f"# 指南 {number // DOCUMENT_PASSAGES}\n"]
        for section in range(number, min(chunks, number + DOCUMENT_PASSAGES)):
            parts.append(
                f"\n## 第{section}节 {''.join(rng.choices(words, cum_weights=cumulative, k=2))}\n\n"
            )
            body = []
            length = 0
            while length < chars:
                if rng.random() < 0.1:
                    sentence = rng.choice(ENGLISH) + ". "
                else:
                    picked = rng.choices(words, cum_weights=cumulative, k=rng.randint(6, 14))
                    sentence = "".join(picked) + rng.choice("，。；")
                body.append(sentence)
                length += len(sentence)
            parts.append("".join(body) + "\n")
            if rng.random() < 0.002:
                samples.append(body[rng.randrange(len(body))])
        text = "".join(parts)
        (folder / f"guide{number // DOCUMENT_PASSAGES:04d}.md").write_text(text, encoding="utf-8")
        written += len(text)
    return written, samples


def cpu_seconds() -> float:
    """CPU time of this process and its finished workers: on a shared machine the wall
    time says more about the neighbours than about the build."""
    own, workers = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--chars", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    from medfactory.rag.build import IndexOptions, build_index
    from medfactory.rag.search import Retriever

    with tempfile.TemporaryDirectory() as scratch:
        docs, index_dir = Path(scratch) / "docs", Path(scratch) / "rag"
        docs.mkdir()
        started = time.perf_counter()
        characters, samples = generate(docs, args.chunks, args.chars)
        print(f"generated {characters / 1e6:.1f} M characters in {args.chunks:,} passages "
              f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip

        before = rss_mib()
        cpu = cpu_seconds()
        started = time.perf_counter()
        summary = build_index([docs], IndexOptions("bench", index_dir, chunk_chars=args.chars + 200,
                                                   overlap=0), print)  # fmt: skip
        build_s = time.perf_counter() - started
        build_cpu = cpu_seconds() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size = sum(p.stat().st_size for p in (index_dir / "bench").rglob("*") if p.is_file())

        base = rss_mib()
        retriever = Retriever.open("bench", index_dir)
        opened = rss_mib() - base
        rng = random.Random(11)
        questions = [rng.choice(samples)[:30] for _ in range(args.queries)]
        retriever.search(questions[0], 3)  # the first query loads jieba's dictionary
        times = []
        for question in questions:
            start = time.perf_counter()
            retriever.search(question, 3)
            times.append((time.perf_counter() - start) * 1000)

    goal_s = BUILD_GOAL_S * characters / 100e6  # the goal scaled to the text built
    p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[18]
    print(f"\nindex: {summary['chunks']:,} chunks, {size / 2**20:.0f} MiB on disk")
    print(f"build: {build_s:.1f} s for {characters / 1e6:.0f} M characters "
          f"(goal < {goal_s:.0f} s: ratio {build_s / goal_s:.2f}), {build_cpu:.0f} CPU-seconds "
          f"on {os.cpu_count()} cores; peak memory "
          f"{peak:.0f} MiB in the building process (RSS {before:.0f} MiB before), "
          f"{children:.0f} MiB in the largest worker")  # fmt: skip
    print(f"query: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(times)} questions "
          f"(goal < {QUERY_GOAL_MS:.0f} ms: ratio {p50 / QUERY_GOAL_MS:.2f} at p50, "
          f"{p95 / QUERY_GOAL_MS:.2f} at p95)")  # fmt: skip
    print(f"memory: the opened index takes {opened:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
