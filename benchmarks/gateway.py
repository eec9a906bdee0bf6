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
ROUNDS = 3
REQUESTS_PER_STREAM = 4
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


async def level(url: str, streams: int) -> tuple[float, float]:
    """(TTFT p50 in s, output chunks per second) for `streams` concurrent streams."""
    results: list = []
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(
            *(one_stream(client, url, f"bench-{i}", results) for i in range(streams))
        )
        wall = time.perf_counter() - start
    return statistics.median(t for t, _ in results), sum(n for _, n in results) / wall


def main() -> None:
    model = paths.cache_dir() / "tiny-model"
    folder = Path(tempfile.mkdtemp(prefix="medfactory-bench-gateway-"))
    spec = ServerSpec(
        python=paths.vllm_python(), model=model, port=free_port(), served_model_name="tiny",
        max_model_len=2048,
    )  # fmt: skip
    with Server(spec, folder / "vllm.log").start():
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
            asyncio.run(level(spec.base_url, 2))  # warm both paths up
            asyncio.run(level(gateway_url, 2))
            print(f"{'streams':>7}  {'TTFT p50 direct':>15}  {'via gateway':>11}  {'added':>8}  "
                  f"{'tok/s direct':>12}  {'via gateway':>11}  {'ratio':>6}")  # fmt: skip
            for streams in LEVELS:
                direct, through = [], []
                for _ in range(ROUNDS):  # interleaved, so drift hits both alike
                    direct.append(asyncio.run(level(spec.base_url, streams)))
                    through.append(asyncio.run(level(gateway_url, streams)))
                ttft_d = statistics.median(t for t, _ in direct)
                ttft_g = statistics.median(t for t, _ in through)
                tps_d = statistics.median(r for _, r in direct)
                tps_g = statistics.median(r for _, r in through)
                print(
                    f"{streams:>7}  {ttft_d * 1000:>12.1f} ms  {ttft_g * 1000:>8.1f} ms  "
                    f"{(ttft_g - ttft_d) * 1000:>+5.1f} ms  {tps_d:>12.0f}  {tps_g:>11.0f}  "
                    f"{tps_g / tps_d:>6.3f}"
                )
            print("goal: TTFT p50 added <= 5 ms, throughput ratio >= 0.95")
        finally:
            stop_group(gateway.pid, grace=10, reap=gateway.poll)


if __name__ == "__main__":
    main()
