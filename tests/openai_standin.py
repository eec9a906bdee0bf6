"""A local stand-in for a hosted OpenAI-compatible model: it answers by a script.

The hosted judges and models our users call cannot be reached from the test
machine; this stands at that network boundary, so the real client code
(EvalScope's, ours) runs unchanged up to it. `reply(body)` returns the
assistant's text for one chat-completions request (a list of texts: one choice each, as
for vLLM's `n`); every request is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandIn:
    def __init__(self, reply: Callable[[dict], str], model: str = "stand-in"):
        self.reply, self.model, self.requests = reply, model, []
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": standin.model}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with standin._lock:
                    standin.requests.append(body)
                text = standin.reply(body)
                texts = text if isinstance(text, list) else [text]  # a list: `n` choices
                self._send(200, {
                    "id": f"chatcmpl-{len(standin.requests)}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", standin.model),
                    "choices": [{
                        "index": index, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    } for index, text in enumerate(texts)],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })  # fmt: skip

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> StandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def last_user_text(body: dict) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
