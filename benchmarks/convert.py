"""Benchmark `data convert huatuo` on a HuatuoGPT-shaped file of the real size.

Prints, in one run, our wall time and peak RSS next to two baselines:
  floor  -- the same file read with orjson and written back, nothing else;
  naive  -- the same job (prefixes, PII, near-duplicates, split) written the usual way:
            stdlib json, the whole file in memory, one regex at a time, json.dump at the end.
Targets on a 2-core machine: ours <= 2.0x the floor, >= 5x faster than naive,
peak RSS <= 300 MB and flat as the input grows (1x and 3x the real size).
Floor and ours run by turns and the ratio is the median of the pairs: on a
shared VM a slow spell otherwise lands on one of them only. Ours is the default,
the safety lint included; its twin with --lint off shows what the lint costs.

    python benchmarks/convert.py [--scale 1.0] [--repeat 5] [--no-naive]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

from medfactory.dev.samples import CONDITIONS, huatuo_dialogue

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".cache" / "bench"
REAL_LINES, REAL_BYTES = 226_042, 333_326_040

FILLER = [c[1] for c in CONDITIONS] + [c[3] for c in CONDITIONS]


def generate(path: Path, lines: int, target_bytes: int) -> None:
    """A HuatuoGPT-shaped file: real mean line length, unique dialogues, a few PII and bad lines."""
    if path.exists() and path.stat().st_size >= target_bytes * 0.95:
        return
    rng = random.Random(7)
    mean_extra = target_bytes / lines - 520  # a composed dialogue is ~520 bytes before padding
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for i in range(lines):
            record = huatuo_dialogue(rng)
            pad = "".join(
                rng.choice(FILLER) + "。"
                for _ in range(int(rng.expovariate(1 / (mean_extra / 45))))
            )
            record["data"][1] += f"病例{i}：{pad}"
            if i % 997 == 0:
                record["data"][0] += "电话13812345678"
            line = json.dumps(record, ensure_ascii=False).encode()
            out.write((b"{bad json" if i % 5003 == 0 else line) + b"\n")


FLOOR = """
import orjson, sys
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    for line in src:
        try:
            dst.write(orjson.dumps(orjson.loads(line)) + b"\\n")
        except orjson.JSONDecodeError:
            pass
"""

NAIVE = """
import json, random, re, sys, unicodedata
# The same job, written the usual way: whole file in memory, one pattern at a time.
PATTERNS = [
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}"), "[EMAIL]"),
    (re.compile(r"(?:https?://|www\\.)\\S+"), "[URL]"),
    (re.compile(r"(?<!\\d)[1-9]\\d{16}[0-9Xx](?!\\d)"), "[ID_NUMBER]"),
    (re.compile(r"(?<!\\d)1[3-9]\\d{9}(?!\\d)"), "[PHONE]"),
    (re.compile(r"(?<!\\d)0\\d{2,3}-\\d{7,8}(?!\\d)"), "[PHONE]"),
]
with open(sys.argv[1], encoding="utf-8", errors="replace") as src:
    lines = src.readlines()
records = []
for line in lines:
    try:
        records.append(json.loads(line))
    except json.JSONDecodeError:
        continue
random.seed(42)
seen, splits = set(), {"train": [], "val": [], "test": []}
for record in records:
    turns = [t[2:].strip() for t in record["data"]]
    if len(turns) % 2:
        turns = turns[:-1]
    for pattern, placeholder in PATTERNS:
        turns = [pattern.sub(placeholder, t) for t in turns]
    key = re.sub(r"[\\W_]+", "", unicodedata.normalize("NFKC", "".join(turns)).lower())
    if key in seen:
        continue
    seen.add(key)
    conversation = [
        {"from": "human" if i % 2 == 0 else "gpt", "value": text} for i, text in enumerate(turns)
    ]
    r = random.random()
    split = "train" if r < 0.7 else "val" if r < 0.9 else "test"
    splits[split].append({"conversations": conversation})
for split, rows in splits.items():
    with open(f"{sys.argv[2]}_{split}.json", "w", encoding="utf-8") as dst:
        json.dump(rows, dst, ensure_ascii=False, indent=2)
"""

OURS = """
import sys
from pathlib import Path
from converters.convert import ConvertOptions, convert
options = ConvertOptions("sharegpt", "bench", Path(sys.argv[2]), lint=LINT)
summary = convert("huatuo", [Path(sys.argv[1])], options)
print("read", summary.read, "written", sum(summary.written.values()), file=sys.stderr)
"""
# The default (the safety lint counting what breaks a rule) and its twin without it.
OURS_NO_LINT = OURS.replace("LINT", '"off"')
OURS = OURS.replace("LINT", '"flag"')

MEASURE = """
import resource, runpy, sys, time
code = sys.argv[1]
sys.argv = sys.argv[1:]
start = time.perf_counter()
exec(compile(code, "<bench>", "exec"), {"__name__": "__main__"})
wall = time.perf_counter() - start
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"MEASURE {wall} {me} {kids}")
"""


def run(code: str, src: Path, dst: Path) -> tuple[float, float]:
    """One run: (wall seconds, peak RSS in MB of the process + its largest worker)."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, code, str(src), str(dst)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("MEASURE"))
    _, wall, me, kids = line.split()
    return float(wall), (int(me) + int(kids)) / 1024


def paired(src: Path, repeat: int) -> tuple[list, list, list]:
    """Floor, ours and ours without the lint run by turns, so a slow spell of a shared
    machine hits them alike."""
    floor, ours, no_lint = [], [], []
    for _ in range(repeat):
        floor.append(run(FLOOR, src, WORK / "floor.jsonl"))
        ours.append(run(OURS, src, WORK / "ours_1x"))
        no_lint.append(run(OURS_NO_LINT, src, WORK / "ours_no_lint"))
    return floor, ours, no_lint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size relative to the real file")
    parser.add_argument("--no-naive", action="store_true", help="skip the slow naive baseline")
    parser.add_argument("--repeat", type=int, default=5, help="paired runs of floor and ours")
    args = parser.parse_args()

    size_1x, size_3x = args.scale, 3 * args.scale
    src = WORK / f"huatuo_1x_{args.scale}.jsonl"
    print(f"[1x] generating {src.name} ({REAL_BYTES * size_1x / 1e6:.0f} MB)...", flush=True)
    generate(src, int(REAL_LINES * size_1x), int(REAL_BYTES * size_1x))
    size_mb = src.stat().st_size / 1e6
    floor, ours, no_lint = paired(src, args.repeat)
    best = {"floor": min(floor), "ours": min(ours), "no-lint": min(no_lint)}
    if not args.no_naive:
        best["naive"] = run(NAIVE, src, WORK / "naive.jsonl")
    for name, (wall, rss) in best.items():
        print(f"[1x] {name:7s} {wall:7.1f} s  {size_mb / wall:6.1f} MB/s  peak RSS {rss:6.0f} MB")

    src_3x = WORK / f"huatuo_3x_{args.scale}.jsonl"
    print(f"[3x] generating {src_3x.name} ({REAL_BYTES * size_3x / 1e6:.0f} MB)...", flush=True)
    generate(src_3x, int(REAL_LINES * size_3x), int(REAL_BYTES * size_3x))
    wall_3x, rss_3x = run(OURS, src_3x, WORK / "ours_3x")
    print(f"[3x] ours  {wall_3x:7.1f} s  {src_3x.stat().st_size / 1e6 / wall_3x:6.1f} MB/s  "
          f"peak RSS {rss_3x:6.0f} MB")  # fmt: skip

    ratios = sorted(o[0] / f[0] for f, o in zip(floor, ours, strict=True))
    print()
    print(
        f"ours / floor (wall)        : {statistics.median(ratios):.2f}x   (target <= 2.0; "
        f"median of {len(ratios)} paired runs, {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )
    lint = sorted(o[0] / n[0] for o, n in zip(ours, no_lint, strict=True))
    print(
        f"ours / ours --lint off     : {statistics.median(lint):.2f}x   (what the safety lint "
        f"costs; median of {len(lint)} paired runs)"
    )
    if "naive" in best:
        speedup = best["naive"][0] / best["ours"][0]
        print(f"naive / ours (wall)        : {speedup:.2f}x   (target >= 5)")
    rss_1x = max(rss for _, rss in ours)
    print(
        f"peak RSS 1x -> 3x (ours)   : {rss_1x:.0f} MB -> {rss_3x:.0f} MB   (target <= 300, flat)"
    )


if __name__ == "__main__":
    main()
