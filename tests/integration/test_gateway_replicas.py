"""Three vLLM replicas of the tiny model behind one gateway arm: affinity, a replica killed
and restarted, nothing lost but the stream that was cut."""

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from ab_helpers import BACKEND_KEY, Gateway, ask

from deploy.monitor import scrape
from deploy.process import free_port
from deploy.server import Server, ServerSpec
from medfactory import paths
from medfactory.ab.recorder import exchanges_since
from medfactory.store.db import open_store

PROBE_INTERVAL = 2.0


def replica_spec(tiny_model, port: int) -> ServerSpec:
    return ServerSpec(
        python=paths.vllm_python(), model=tiny_model, port=port, served_model_name="tiny",
        max_model_len=2048, api_key=BACKEND_KEY, enforce_eager=True,
    )  # fmt: skip


def healthy(url: str, replica: str) -> float:
    samples = scrape(url)
    return samples.get(
        ("medfactory_gateway_replica_healthy", (("arm", "r"), ("replica", replica))), -1.0
    )


def turn(url: str, user: str, history: list[dict], number: int, stream: bool) -> dict:
    messages = [*history, {"role": "user", "content": f"{user} 第{number}问：头痛要做什么检查？"}]
    result = ask(url, user, messages, stream=stream, max_tokens=4)
    history[:] = [*messages, {"role": "assistant", "content": result.get("text") or "好"}]
    return result


def test_three_replicas_keep_conversations_survive_a_kill_and_take_the_replica_back(
    ab_server, tiny_model, tmp_path
):
    # Two replicas of their own (this test kills one), the shared server the third.
    victim_port, other_port = free_port(), free_port()
    with ThreadPoolExecutor(2) as pool:
        started = list(pool.map(
            lambda port: Server(replica_spec(tiny_model, port), tmp_path / f"{port}.log").start(),
            (victim_port, other_port),
        ))  # fmt: skip
    victim, other = started
    victim_url, shared_url = victim.spec.base_url, ab_server.spec.base_url
    replicas = [victim_url, other.spec.base_url, shared_url]
    store_url = f"sqlite:///{tmp_path / 'ab.db'}"
    try:
        with Gateway([f"r={'+'.join(replicas)},model=tiny"], store_url, tmp_path / "gw.log",
                     "--probe-interval", str(PROBE_INTERVAL)) as gateway:  # fmt: skip
            users = [f"clinician-{i:02d}" for i in range(30)]
            histories = {user: [] for user in users}

            def turns(number: int) -> list[dict]:
                with ThreadPoolExecutor(6) as pool:
                    return list(pool.map(
                        lambda u: turn(gateway.url, u, histories[u], number, stream=number == 2),
                        users,
                    ))  # fmt: skip

            first = turns(1)
            store = open_store(store_url)
            first_rows = exchanges_since(store, "ab")
            on_victim = {r["user"] for r in first_rows if r["replica"] == victim_url}
            assert on_victim and set(r["replica"] for r in first_rows) == set(replicas)

            # A long answer streaming from the victim when it is SIGKILLed.
            doomed_user = sorted(on_victim)[0]
            reply = requests.post(
                f"{gateway.url}/v1/chat/completions", stream=True, timeout=120,
                json={"user": doomed_user, "messages": histories[doomed_user] + [
                    {"role": "user", "content": "请详细说明。"}],
                    "stream": True, "max_tokens": 1500, "ignore_eos": True},
            )  # fmt: skip
            events = []
            for line in reply.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(line[5:].strip())
                    if len(events) == 4:
                        os.killpg(victim.process.pid, signal.SIGKILL)
            victim.stop()

            second, third = turns(2), turns(3)  # streamed, then whole
            newcomers = [ask(gateway.url, f"late-{i}", [{"role": "user", "content": "咳嗽"}])
                         for i in range(6)]  # fmt: skip

            # The victim comes back on its port: within the probe interval it is healthy
            # again, and the next new conversations go to it (it is the least busy).
            back = Server(replica_spec(tiny_model, victim_port), tmp_path / "back.log").start()
            try:
                time.sleep(PROBE_INTERVAL + 1)
                assert healthy(gateway.url, victim_url) == 1.0
                returned = [ask(gateway.url, f"again-{i}", [{"role": "user", "content": "发烧"}])
                            for i in range(3)]  # fmt: skip
            finally:
                back.stop()
            errors = scrape(gateway.url).get(("medfactory_gateway_errors_total", (("arm", "r"),)))
    finally:
        victim.stop()
        other.stop()

    assert all(r["status"] == 200 and "error" not in r for r in first + second + third + newcomers)
    assert events[-1] == "[DONE]" and "error" in json.loads(events[-2])  # the cut stream ends

    rows = exchanges_since(open_store(store_url), "ab")
    failed = [r for r in rows if r["error"]]
    assert len(failed) == 1 and failed[0]["user"] == doomed_user  # only the stream cut
    assert errors == 1.0
    by_user: dict[str, list[str]] = {}
    for row in rows:
        if not row["error"]:
            by_user.setdefault(row["user"], []).append(row["replica"])
    for user in users:
        kept = by_user[user]
        if user in on_victim:  # moved once, then kept
            assert kept[0] == victim_url and len(set(kept[1:])) == 1 and kept[1] != victim_url
        else:  # every turn on one replica
            assert len(set(kept)) == 1, (user, kept)
    late = [by_user[f"late-{i}"][0] for i in range(6)]
    assert victim_url not in late
    assert [r["status"] for r in returned] == [200] * 3
    assert by_user["again-0"] == [victim_url]
