"""What the A/B gateway adds in front of vLLM, on the tiny model.

The same streamed requests (fixed length: `ignore_eos`) straight to vLLM and
through `medfactory gateway` (a separate process, recording into SQLite), at
1, 4 and 16 concurrent streams, the two interleaved round by round. Prints
TTFT p50 added (goal: <= 5 ms) and output throughput through the gateway
against straight (goal: >= 0.95).

    python benchmarks/gateway.py          # needs `make tiny-model` first
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from deploy.process import free_port, healthy, stop_group
from deploy.server import Server, ServerSpec
from medfactory import paths

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 4, 16)
ROUNDS = 5
REQUESTS_PER_STREAM = 3
MAX_TOKENS = 64
QUESTION = [{"role": "user", "content": "头痛三天，伴有恶心，需要做哪些检查？"}]


async def one_stream(client: httpx.AsyncClient, url: str, user: str, out: list) -> None:
    for _ in range(REQUESTS_PER_STREAM):
        body = {
            "model": "tiny", "messages": QUESTION, "max_tokens": MAX_TOKENS, "stream": True,
            "ignore_eos": True, "temperature": 0, "user": user,
        }  # fmt: skip
        start = time.perf_counter()
        first, chunks = None, 0
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as reply:
            async for line in reply.aiter_lines():
                if not line.startswith("data:") or line.endswith("[DONE]"):
                    continue
                chunk = json.loads(line[5:])
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    first = first or time.perf_counter()
                    chunks += 1
        out.append((first - start, chunks))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children, so far."""
    import psutil

    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


async def level(url: str, streams: int, pid: int) -> tuple[float, float, float]:
    """(TTFT p50 in s, output chunks per second, CPU ms of process `pid` per chunk) for
    `streams` concurrent streams."""
    results: list = []
    limits = httpx.Limits(max_connections=None)
    cpu = cpu_seconds(pid)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(
            *(one_stream(client, url, f"bench-{i}", results) for i in range(streams))
        )
        wall = time.perf_counter() - start
    chunks = sum(n for _, n in results)
    cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / chunks
    return statistics.median(t for t, _ in results), chunks / wall, cpu_ms


def main() -> None:
    model = paths.cache_dir() / "tiny-model"
    folder = Path(tempfile.mkdtemp(prefix="medfactory-bench-gateway-"))
    spec = ServerSpec(
        python=paths.vllm_python(), model=model, port=free_port(), served_model_name="tiny",
        max_model_len=2048,
    )  # fmt: skip
    with Server(spec, folder / "vllm.log").start() as server:
        vllm_pid = server.process.pid
        port = free_port()
        gateway = subprocess.Popen(
            [sys.executable, "-m", "medfactory", "gateway", "--arm",
             f"bench={spec.base_url},model=tiny", "--port", str(port),
             "--db", f"sqlite:///{folder / 'ab.db'}"],
            cwd=REPO, stdout=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        gateway_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while not healthy(gateway_url) and time.monotonic() < deadline:
                time.sleep(0.2)
            asyncio.run(level(spec.base_url, 2, vllm_pid))  # warm both paths up
            asyncio.run(level(gateway_url, 2, gateway.pid))
            print(f"{'streams':>7}  {'TTFT p50 direct':>15}  {'via gateway':>11}  {'added':>8}  "
                  f"{'tok/s direct':>12}  {'via gateway':>11}  {'ratio':>6}  "
                  f"{'CPU/token: vLLM':>15}  {'gateway':>8}")  # fmt: skip
            for streams in LEVELS:
                direct, through = [], []
                for _ in range(ROUNDS):  # interleaved, so drift hits both alike
                    direct.append(asyncio.run(level(spec.base_url, streams, vllm_pid)))
                    through.append(asyncio.run(level(gateway_url, streams, gateway.pid)))
                ttft_d = statistics.median(r[0] for r in direct)
                ttft_g = statistics.median(r[0] for r in through)
                tps_d = statistics.median(r[1] for r in direct)
                tps_g = statistics.median(r[1] for r in through)
                cpu_vllm = statistics.median(r[2] for r in direct)
                cpu_gateway = statistics.median(r[2] for r in through)
                print(
                    f"{streams:>7}  {ttft_d * 1000:>12.1f} ms  {ttft_g * 1000:>8.1f} ms  "
                    f"{(ttft_g - ttft_d) * 1000:>+5.1f} ms  {tps_d:>12.0f}  {tps_g:>11.0f}  "
                    f"{tps_g / tps_d:>6.3f}  {cpu_vllm:>12.2f} ms  {cpu_gateway:>5.2f} ms"
                )
            print(
                "goal: TTFT p50 added <= 5 ms, throughput ratio >= 0.95. On a machine with few "
                "cores the gateway's CPU is taken from vLLM's: its CPU per token is the cost."
            )
        finally:
            stop_group(gateway.pid, grace=10, reap=gateway.poll)


if __name__ == "__main__":
    main()
