"""Replicas behind one gateway arm, on the tiny model: two vLLM servers against one.

The same streamed requests (fixed length: `ignore_eos`) at 8 concurrent users
through a gateway whose arm has one replica and through one whose arm has two,
interleaved round by round. Prints the output throughput ratio (two against
one) and, at one stream, the TTFT the gateway adds over straight vLLM with one
replica and with two (goal: the same, within noise).

On this 2-core machine the two CPU replicas share the same cores, so the ratio
says what routing costs and whether it spreads the load, not what a second GPU
server buys: on GPUs each replica has its own device and the ratio approaches 2.

    python benchmarks/gateway_replicas.py     # needs `make tiny-model` first
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from gateway import level  # benchmarks/gateway.py: one level of concurrent streams

from deploy.process import free_port, healthy, stop_group
from deploy.server import Server, ServerSpec
from medfactory import paths

REPO = Path(__file__).resolve().parents[1]
USERS = 8
ROUNDS = 4


def start_gateway(arm: str, folder: Path, name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "medfactory", "gateway", "--arm", arm, "--port", str(port),
         "--db", f"sqlite:///{folder / f'{name}.db'}"],
        cwd=REPO, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not healthy(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    return process, url


def main() -> None:
    model = paths.cache_dir() / "tiny-model"
    folder = Path(tempfile.mkdtemp(prefix="medfactory-bench-replicas-"))
    specs = [
        ServerSpec(
            python=paths.vllm_python(), model=model, port=free_port(), served_model_name="tiny",
            max_model_len=2048, enforce_eager=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    with ExitStack() as stack:
        servers = [stack.enter_context(Server(s, folder / f"{s.port}.log").start()) for s in specs]
        urls = [s.spec.base_url for s in servers]
        one, one_url = start_gateway(f"bench={urls[0]},model=tiny", folder, "one")
        two, two_url = start_gateway(f"bench={urls[0]}+{urls[1]},model=tiny", folder, "two")
        try:
            for url, pid in ((one_url, one.pid), (two_url, two.pid)):  # warm up
                asyncio.run(level(url, 2, pid))
            rounds = {"one": [], "two": []}
            for _ in range(ROUNDS):
                rounds["one"].append(asyncio.run(level(one_url, USERS, one.pid)))
                rounds["two"].append(asyncio.run(level(two_url, USERS, two.pid)))
            single = {"direct": [], "one": [], "two": []}
            for _ in range(ROUNDS * 2):
                single["direct"].append(asyncio.run(level(urls[0], 1, servers[0].process.pid)))
                single["one"].append(asyncio.run(level(one_url, 1, one.pid)))
                single["two"].append(asyncio.run(level(two_url, 1, two.pid)))
        finally:
            for process in (one, two):
                stop_group(process.pid, grace=10, reap=process.poll)

    throughput = {k: statistics.median(r[1] for r in v) for k, v in rounds.items()}
    ttft = {k: statistics.median(r[0] for r in v) for k, v in single.items()}
    print(f"{USERS} users, tok/s: 1 replica {throughput['one']:.0f}, 2 replicas "
          f"{throughput['two']:.0f}, ratio {throughput['two'] / throughput['one']:.2f} "
          "(the two CPU replicas share this machine's cores)")  # fmt: skip
    print(f"TTFT p50 at 1 stream: vLLM {ttft['direct'] * 1000:.1f} ms; the gateway adds "
          f"{(ttft['one'] - ttft['direct']) * 1000:+.1f} ms with 1 replica, "
          f"{(ttft['two'] - ttft['direct']) * 1000:+.1f} ms with 2")  # fmt: skip
    print("goal: the gateway adds the same time per request with replicas as without")


if __name__ == "__main__":
    main()
