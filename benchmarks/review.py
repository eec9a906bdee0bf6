"""The review page and report at a large study's size, on the embedded SQLite store.

A study of 10,000 items, 5 raters and 2 ratings an item: measures a rater's
page load (GET of an item) and a submission (POST, its redirect not followed)
over the real HTTP server, p50 and p95 of each, then fills every rating and
times the report. Goals on a 2-core machine: page load and submit p95 under
100 ms, the report under 5 s; printed as the ratio to each goal (below 1 is met).

    python benchmarks/review.py [--items 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from deploy.process import free_port, stop_group
from medfactory.review.report import write_report
from medfactory.review.studies import StudySpec, create_study
from medfactory.store.db import Assignment, Rating, open_store

RATERS = ["d1", "d2", "d3", "d4", "d5"]
AXES = ("accuracy", "safety", "completeness", "communication")
GOALS = {"page load p95": 0.100, "submit p95": 0.100, "report": 5.0}


def prediction_files(folder: Path, items: int) -> list[Path]:
    paths = []
    for name in ("base", "lora"):
        path = folder / name / "generated_predictions.jsonl"
        path.parent.mkdir(parents=True)
        rows = (
            {"prompt": f"<|im_start|>user\n患者{i}：头痛三天，伴有低热，要做什么检查？<|im_end|>\n",
             "predict": f"{name}：建议先测体温和血压，必要时查血常规。" * 8, "label": "参考"}
            for i in range(items)
        )  # fmt: skip
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        paths.append(path)
    return paths


def serve(url: str) -> tuple[subprocess.Popen, str, dict[str, str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "medfactory", "review", "serve", "bench", "--db", url,
         "--port", str(port)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    links = {}
    for line in process.stdout:
        if "Ctrl-C" in line:
            break
        if match := re.match(r"\s*(\S+)\s+(http://\S+)", line):
            links[match[1]] = match[2]
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(f"{base}/healthz", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    return process, base, links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="medfactory-review-bench-"))
    url = f"sqlite:///{work / 'review.db'}"
    store = open_store(url)
    started = time.perf_counter()
    spec = StudySpec("bench", prediction_files(work, args.items), RATERS, arbiter="boss", seed=1)
    create_study(store, spec)
    took = time.perf_counter() - started
    print(f"study: {args.items} items, {len(RATERS)} raters, 2 each, made in {took:.1f} s")

    process, base, links = serve(url)
    loads, submits = [], []
    try:
        rater = requests.Session()
        rater.get(links["d1"], timeout=30)
        html = rater.get(base, timeout=30).text
        for _ in range(args.requests):
            position = int(re.search(r'action="/item/(\d+)"', html)[1])
            begun = time.perf_counter()
            html = rater.get(f"{base}/item/{position}", timeout=30).text
            loads.append(time.perf_counter() - begun)
            form = dict(re.findall(r'name="(csrf|submit_key|started)" value="([^"]*)"', html))
            form |= {"verdict": "1"} | {f"{a}_{n}": "4" for a in AXES for n in (1, 2)}
            begun = time.perf_counter()
            reply = rater.post(
                f"{base}/item/{position}", data=form, allow_redirects=False, timeout=30
            )
            submits.append(time.perf_counter() - begun)
            assert reply.status_code == 303, reply.text[:300]
            html = rater.get(base, timeout=30).text  # the next item
    finally:
        stop_group(process.pid, grace=5, reap=process.poll)

    rng = random.Random(0)
    with store.session() as session:
        rated = {a for (a,) in session.query(Rating.assignment_id)}
        session.add_all(
            Rating(assignment_id=a.id, verdict=rng.choice(["left", "right", "tie", "both_bad"]),
                   scores={x: [rng.randint(1, 5), rng.randint(1, 5)] for x in AXES},
                   seconds=rng.uniform(20, 200), source="page")
            for a in session.query(Assignment) if a.id not in rated
        )  # fmt: skip
    begun = time.perf_counter()
    report = write_report(store, "bench", work / "report")
    took = time.perf_counter() - begun

    measured = {
        "page load p95": float(np.percentile(loads, 95)),
        "submit p95": float(np.percentile(submits, 95)),
        "report": took,
    }
    load, sent = 1000 * np.median(loads), 1000 * np.median(submits)
    print(f"page load p50 {load:.1f} ms, submit p50 {sent:.1f} ms")
    print(f"report over {report['ratings']:,} ratings")
    for name, value in measured.items():
        unit = f"{1000 * value:.1f} ms" if value < 1 else f"{value:.2f} s"
        print(f"{name:16} {unit:>10}   goal {GOALS[name]:g} s   ratio {value / GOALS[name]:.2f}")


if __name__ == "__main__":
    main()
