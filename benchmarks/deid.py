"""De-identification: quality on labelled snippets, and speed of `data convert table`.

Quality -- precision and recall per entity type, scored on what leaks (see
converters/deid/evaluation.py), on the project's generated labelled set (600
Chinese and English snippets, medfactory/dev/deid_samples.py), on 600 snippets
with Faker's names, addresses and numbers (medfactory/dev/deid_faker_set.py), on
300 with rare surnames (medfactory/dev/deid_rare_surnames.py), on
the hand-written held-out set in tests/data, and on any labelled file given with
--labelled.
Goals: recall >= 0.99 for phone, ID and record numbers, >= 0.95 for names and
addresses, precision >= 0.9, no medical number changed.

Speed -- `medfactory data convert table` on a CSV of --mb megabytes
(consultation records; one row in five carries an identifier), with --deid
basic and --deid strict, all cores, the median of --repeat runs each taken by
turns. Goal: strict >= 10 MB/s on 2 cores.

    python benchmarks/deid.py [--mb 100] [--repeat 3] [--labelled FILE.jsonl] [--no-speed]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from converters.deid.engine import Deidentifier
from converters.deid.evaluation import score
from medfactory.dev.deid_faker_set import faker_set
from medfactory.dev.deid_rare_surnames import rare_surname_set
from medfactory.dev.deid_samples import labelled_set, parse_marked
from medfactory.dev.samples import huatuo_dialogue

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".cache" / "bench"
HELDOUT = REPO / "tests" / "data" / "deid_heldout.txt"
RECALL_GOALS = {
    "PHONE": 0.99,
    "ID_NUMBER": 0.99,
    "RECORD_NO": 0.99,
    "NAME": 0.95,
    "ADDRESS": 0.95,
}
PRECISION_GOAL, SPEED_GOAL = 0.9, 10.0


def quality(name: str, items: list[dict], engine: Deidentifier) -> bool:
    result = score(items, engine)
    print(f"\n{name}: {result['items']} snippets")
    print(f"  {'entity':15s} {'labelled':>8s} {'recall':>7s} {'replaced':>8s} {'precision':>9s}")
    met = True
    for entity, row in result["entities"].items():
        recall, precision = row["recall"], row["precision"]
        goal = RECALL_GOALS.get(entity)
        ok = (recall is None or goal is None or recall >= goal) and (
            precision is None or precision >= PRECISION_GOAL
        )
        met &= ok
        print(
            f"  {entity:15s} {row['labelled']:8d} {_f(recall):>7s} {row['replaced']:8d} "
            f"{_f(precision):>9s}  {'' if ok else 'BELOW GOAL'}"
        )
    changed = len(result["medical_numbers_changed"])
    met &= changed == 0
    print(f"  overall recall {_f(result['recall'])}, precision {_f(result['precision'])}, "
          f"medical numbers changed: {changed}")  # fmt: skip
    for miss in result["misses"][:5]:
        print(f"  missed {miss['entity']}: {miss['text']!r} in {miss['in']!r}")
    for alarm in result["false_alarms"][:5]:
        print(f"  false alarm {alarm['entity']}: {alarm['text']!r} in {alarm['in']!r}")
    return met


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_table(path: Path, megabytes: float) -> int:
    """A consultation export: question, answer; one row in five with an identifier."""
    target = int(megabytes * 1e6)
    if path.exists() and path.stat().st_size >= target * 0.98:
        return sum(1 for _ in open(path, encoding="utf-8")) - 1
    rng = random.Random(11)
    snippets = [item["text"] for item in labelled_set(2000, seed=11)]
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["编号", "患者提问", "医生回答"])
        while out.tell() < target:
            data = huatuo_dialogue(rng)["data"]
            question, answer = data[0][2:].strip(), data[1][2:].strip()
            if rng.random() < 0.2:
                question = f"{question}{rng.choice(snippets)}"
            writer.writerow([rows, f"{question}（{rows}）", answer])
            rows += 1
    return rows


def speed(megabytes: float, repeat: int) -> bool:
    table = WORK / f"consultations_{megabytes:g}mb.csv"
    rows = write_table(table, megabytes)
    size = table.stat().st_size / 1e6
    print(f"\nspeed: {table.name}, {size:.0f} MB, {rows:,} rows, {repeat} runs each, by turns")
    seconds: dict[str, list[float]] = {"basic": [], "strict": []}
    for _ in range(repeat):  # by turns: a slow spell of a shared machine hits both
        for level in seconds:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "medfactory", "data", "convert", "table", str(table),
                 "--column", "question=患者提问", "--column", "answer=医生回答", "--name",
                 f"bench_{level}", "--dataset-dir", str(WORK / "datasets"), "--deid", level,
                 "--force", "--json"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            seconds[level].append(time.perf_counter() - started)
    rates = {level: size / statistics.median(runs) for level, runs in seconds.items()}
    for level, runs in seconds.items():
        shown = ", ".join(f"{s:.1f}" for s in runs)
        print(f"  --deid {level:6s} median {size / rates[level]:5.1f} s ({shown})  "
              f"{rates[level]:5.1f} MB/s")  # fmt: skip
    met = rates["strict"] >= SPEED_GOAL
    print(f"  strict / basic: {rates['strict'] / rates['basic']:.2f}x; goal strict >= "
          f"{SPEED_GOAL:g} MB/s: {'met' if met else 'NOT met'}")  # fmt: skip
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument(
        "--labelled", type=Path, help="another labelled file to score (JSONL or a JSON array)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each mode")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    engine = Deidentifier()
    met = quality("generated set", labelled_set(600, seed=7), engine)
    met &= quality("Faker set", faker_set(600, seed=3), engine)
    met &= quality("rare-surname set", rare_surname_set(300, seed=5), engine)
    heldout = [parse_marked(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]
    met &= quality("hand-written held-out set", [h for h in heldout if h], engine)
    if args.labelled:
        text = args.labelled.read_text(encoding="utf-8-sig")
        items = (
            json.loads(text)
            if text.lstrip().startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )  # a JSON array or JSON lines
        met &= quality(str(args.labelled), items, engine)
    if not args.no_speed:
        met &= speed(args.mb, args.repeat)
    print(f"\ngoals {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
