"""`data convert sql` from PostgreSQL: rows per second and peak memory, against the floor.

A PostgreSQL server of its own (Debian's, in a temporary folder, as the tests start it)
holds --rows consultations (one in five with an identifier). The same query is read
twice, by turns, --repeat times:

- the floor: `COPY (query) TO STDOUT`, every byte read by psycopg and dropped;
- `medfactory data convert sql ... --deid basic` on all cores, its peak memory summed
  over its processes (sampled every 50 ms);
- for reference, `data convert table` on the same rows exported to a CSV file: what the
  conversion costs without a database.

Goal: memory flat in the size of the table (within 20 % between 100k and 1M rows: run
once with --rows 1000000 to see it).

    python benchmarks/sql.py [--rows 100000] [--repeat 1] [--chunk-rows 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".cache" / "bench"
QUERY = "SELECT 问题, 回答, 科室 FROM 问诊记录 WHERE 科室 <> '测试'"


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        sys.exit(f"PostgreSQL's {name} not found; `make install` installs Debian's postgresql")
    return str(found[-1])


@contextlib.contextmanager
def postgres():
    """A PostgreSQL server on a free loopback port; its URL."""
    from deploy.process import free_port

    folder = Path(tempfile.mkdtemp(prefix="medfactory-bench-pg-"))
    as_user = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, _pg_bin("initdb"), "-D", str(folder / "data"), "-A", "trust", "-U",
         "medfactory", "--no-sync"], check=True, capture_output=True,
    )  # fmt: skip
    options = f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off"
    subprocess.run(
        [*as_user, _pg_bin("pg_ctl"), "-D", str(folder / "data"), "-o", options, "-l",
         str(folder / "server.log"), "-w", "start"], check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://medfactory@127.0.0.1:{port}/postgres"
    finally:
        stop = [_pg_bin("pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"]
        subprocess.run([*as_user, *stop], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def fill(url: str, rows: int) -> int:
    """The consultation table, written with COPY FROM; its size in bytes."""
    import psycopg

    from medfactory.dev.deid_samples import labelled_set
    from medfactory.dev.samples import huatuo_dialogue

    rng = random.Random(11)
    snippets = [item["text"] for item in labelled_set(2000, seed=11)]
    dialogues = [huatuo_dialogue(rng)["data"] for _ in range(500)]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE 问诊记录 (编号 BIGINT PRIMARY KEY, 问题 TEXT, 回答 TEXT, 科室 TEXT)"
        )
        with connection.cursor() as cursor, cursor.copy("COPY 问诊记录 FROM STDIN") as copy:
            for i in range(rows):
                data = dialogues[i % len(dialogues)]
                question = f"{data[0][2:].strip()}（{i}）"
                if rng.random() < 0.2:
                    question += rng.choice(snippets)
                copy.write_row((i, question, data[1][2:].strip(), "心内科"))
        return connection.execute("SELECT pg_total_relation_size('问诊记录')").fetchone()[0]


def copy_floor(url: str, csv_file: Path | None = None) -> float:
    """Seconds to read the query's rows with COPY TO STDOUT, doing nothing with them (or,
    given `csv_file`, writing them there as CSV with a header)."""
    import psycopg

    started = time.perf_counter()
    shape = " WITH (FORMAT csv, HEADER)" if csv_file else ""
    with (
        psycopg.connect(url) as connection,
        connection.cursor() as cursor,
        cursor.copy(f"COPY ({QUERY}) TO STDOUT{shape}") as copy,
        open(csv_file or os.devnull, "wb") as out,
    ):
        for block in copy:
            if csv_file:
                out.write(block)
    return time.perf_counter() - started


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text().splitlines()
            total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total * 1024  # VmRSS is in kB


def convert(source: list[str], out: Path) -> tuple[float, int]:
    """Seconds and peak memory (bytes, all processes) of `data convert SOURCE --deid basic`."""
    command = [
        sys.executable, "-m", "medfactory", "data", "convert", *source,
        "--column", "question=问题", "--column", "answer=回答", "--deid", "basic",
        "--name", "bench_sql", "--dataset-dir", str(out), "--force", "--json",
    ]  # fmt: skip
    peak, done = [0], threading.Event()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, errors = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode:
        sys.exit(f"data convert failed: {errors.decode(errors='replace')[-2000:]}")
    return seconds, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="e.g. 1000000 (minutes)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, by turns")
    parser.add_argument("--chunk-rows", type=int, default=2000)
    args = parser.parse_args()
    with postgres() as url:
        started = time.perf_counter()
        size, filled = fill(url, args.rows), time.perf_counter() - started
        print(f"sql: {args.rows:,} rows from PostgreSQL ({size / 1e6:.0f} MB on disk, written "
              f"in {filled:.1f} s), {args.repeat} run(s) each, by turns")  # fmt: skip
        csv_file = WORK / "sql" / "consultations.csv"
        csv_file.parent.mkdir(parents=True, exist_ok=True)
        copy_floor(url, csv_file)
        sql = ["sql", url, "--query", QUERY, "--chunk-rows", str(args.chunk_rows)]
        runs: dict[str, list] = {"copy": [], "sql": [], "table": []}
        for _ in range(args.repeat):  # by turns: a slow spell of a shared machine hits all
            runs["copy"].append((copy_floor(url), 0))
            runs["sql"].append(convert(sql, WORK / "sql"))
            runs["table"].append(convert(["table", str(csv_file)], WORK / "sql"))
    floor = statistics.median(s for s, _ in runs["copy"])
    for label, kind in (
        ("COPY (query) TO STDOUT", "copy"),
        ("data convert sql (basic)", "sql"),
        ("data convert table (the CSV)", "table"),
    ):
        seconds = statistics.median(s for s, _ in runs[kind])
        peak = max(p for _, p in runs[kind])
        memory = f"  peak {peak / 2**20:5.0f} MiB" if peak else ""
        print(f"  {label:30s} {seconds:6.1f} s {args.rows / seconds:10,.0f} rows/s  "
              f"{seconds / floor:5.1f}x the floor{memory}")  # fmt: skip
    print(f"  (peak memory: all processes of the conversion; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
