"""Locust users for an OpenAI-compatible chat server, timed the way LLM serving is judged.

Each request streams (`stream=True`, `stream_options.include_usage`) and is
timed chunk by chunk: TTFT to the first chunk with non-empty content (answer
or reasoning), the gaps between later content chunks (ITL), end-to-end
latency (E2EL), and the server's own prompt/completion token counts from the
final `usage` chunk. Locust gets the request (its response time is the E2EL)
and two extra entries, `TTFT chat` and `TPOT chat`, so its web UI and CSVs
show them; every request is also appended to a JSON-lines file for the report.

Configured by environment variables (`medfactory loadtest` sets them):
  MEDFACTORY_LT_PROMPTS  JSON-lines file, one `{"messages": [...]}` per line
  MEDFACTORY_LT_RECORDS  where per-request records are appended
  MEDFACTORY_LT_MODEL, _MAX_TOKENS, _IGNORE_EOS, _TEMPERATURE, _API_KEY
"""

from __future__ import annotations

import itertools
import json
import os
import time

from locust import HttpUser, events, task

from deploy.loadtest import tpot

with open(os.environ["MEDFACTORY_LT_PROMPTS"], encoding="utf-8") as lines:
    PROMPTS = [json.loads(line)["messages"] for line in lines if line.strip()]
_next_prompt = itertools.cycle(range(len(PROMPTS)))
# Open for the whole run; line-buffered so a killed run keeps every finished request.
RECORDS = open(os.environ["MEDFACTORY_LT_RECORDS"], "a", encoding="utf-8", buffering=1)  # noqa: SIM115
MAX_TOKENS = int(os.environ.get("MEDFACTORY_LT_MAX_TOKENS", "128"))
IGNORE_EOS = os.environ.get("MEDFACTORY_LT_IGNORE_EOS", "1") == "1"
API_KEY = os.environ.get("MEDFACTORY_LT_API_KEY")
TEMPERATURE = float(os.environ.get("MEDFACTORY_LT_TEMPERATURE", "0"))


def stream_chunks(response):
    """The JSON payloads of a server-sent-events stream, up to `[DONE]`."""
    for line in response.iter_lines():
        if not line or not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            return
        yield json.loads(data)


class ChatUser(HttpUser):
    """One simulated client: sends the next prompt as soon as its last answer ends."""

    @task
    def chat(self) -> None:
        messages = PROMPTS[next(_next_prompt)]
        body = {
            "model": os.environ["MEDFACTORY_LT_MODEL"],
            "messages": messages,
            "max_tokens": MAX_TOKENS,
            "temperature": TEMPERATURE,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if IGNORE_EOS:
            body["ignore_eos"] = True  # fixed output length, as `vllm bench serve --ignore-eos`
        headers = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}
        record = {"start": time.time(), "ok": False}
        started = time.perf_counter()
        last = None
        itl, usage = [], {}
        with self.client.post(
            "/v1/chat/completions", json=body, headers=headers, stream=True,
            catch_response=True, name="chat",
        ) as response:  # fmt: skip
            try:
                if response.status_code == 0:  # no response: the connection failed
                    error = response.error
                    record["error_type"] = type(error).__name__
                    raise RuntimeError(str(error))
                if response.status_code != 200:
                    record["error_type"] = f"HTTP {response.status_code}"
                    raise RuntimeError(response.text[:200])
                for chunk in stream_chunks(response):
                    usage = chunk.get("usage") or usage
                    delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
                    if (
                        delta.get("content")
                        or delta.get("reasoning_content")
                        or delta.get("reasoning")
                    ):
                        now = time.perf_counter()
                        if last is None:
                            record["ttft"] = now - started
                        else:
                            itl.append(now - last)
                        last = now
                record["e2el"] = time.perf_counter() - started
                if last is None:
                    raise RuntimeError("the stream ended without any content")
                if not usage:
                    raise RuntimeError("the stream carried no usage (stream_options ignored?)")
            except Exception as error:  # every failure is counted by its type, never raised
                record.setdefault("error_type", type(error).__name__)
                record["error"] = f"{record['error_type']}: {error}"[:300]
                response.failure(record["error"])
            else:
                record.update(
                    ok=True,
                    itl=itl,
                    prompt_tokens=usage.get("prompt_tokens"),
                    completion_tokens=usage.get("completion_tokens"),
                )
                # Locust's response time for a streamed request is the whole stream.
                response.request_meta["response_time"] = record["e2el"] * 1000
                response.success()
        RECORDS.write(json.dumps(record) + "\n")
        if record["ok"]:
            self._fire("TTFT", record["ttft"])
            per_token = tpot(record["e2el"], record["ttft"], record["completion_tokens"] or 0)
            if per_token is not None:
                self._fire("TPOT", per_token)

    def _fire(self, kind: str, seconds: float) -> None:
        events.request.fire(
            request_type=kind, name="chat", response_time=seconds * 1000, response_length=0,
            exception=None, context={},
        )  # fmt: skip
