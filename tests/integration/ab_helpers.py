"""The A/B gateway as a user runs it: `medfactory gateway` in its own process group."""

import json
import subprocess
import sys
import time
from pathlib import Path

import requests

from deploy.process import free_port, stop_group

REPO = Path(__file__).resolve().parents[2]
BACKEND_KEY = "test-key"  # the shared server's


class Gateway:
    def __init__(self, arms: list[str], store_url: str, log: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        argv = [sys.executable, "-m", "medfactory", "gateway", "--port", str(self.port),
                "--db", store_url, "--backend-api-key", BACKEND_KEY, *extra]  # fmt: skip
        for arm in arms:
            argv += ["--arm", arm]
        with log.open("w") as out:
            self.process = subprocess.Popen(
                argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(log.read_text())
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(log.read_text())

    def stop(self) -> None:
        stop_group(self.process.pid, grace=10, reap=self.process.poll)
        self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def ask(url: str, user: str, messages: list[dict], stream: bool = False, key: str | None = None,
        max_tokens: int = 8, **extra) -> dict:  # fmt: skip
    """One chat through the gateway: its arm, completion id, text, model and any error."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": "anything", "messages": messages, "user": user, "max_tokens": max_tokens,
            "temperature": 0, "stream": stream, **extra}  # fmt: skip
    reply = requests.post(
        f"{url}/v1/chat/completions", json=body, headers=headers, stream=stream, timeout=120
    )
    result = {"arm": reply.headers.get("X-Medfactory-Arm"), "status": reply.status_code}
    if not stream:
        data = reply.json()
        if reply.status_code != 200:
            return result | {"error": data["error"]["message"]}
        return result | {"id": data["id"], "text": data["choices"][0]["message"]["content"],
                         "model": data["model"], "usage": data["usage"]}  # fmt: skip
    text, events = "", []
    for line in reply.iter_lines(decode_unicode=True):
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        events.append(payload)
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        if "error" in chunk:
            result["error"] = chunk["error"]["message"]
            continue
        result.setdefault("id", chunk["id"])
        result["model"] = chunk["model"]
        for choice in chunk["choices"]:
            text += choice["delta"].get("content") or ""
        if chunk.get("usage"):
            result["usage"] = chunk["usage"]
    return result | {"text": text, "events": events}
