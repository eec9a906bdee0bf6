"""A local OpenAI-compatible relay that puts retrieved passages into every chat request
before passing it on, for a client medfactory does not drive itself: EvalScope in
`eval exam --rag`.

It listens on 127.0.0.1 on a free port for as long as the `with` block runs.
POST /v1/chat/completions has its last user turn rewritten by `augment` (the same
code as `eval endpoint --rag` and a gateway arm with `rag=`), and the passages given
for each question are kept; every other request, and the reply (streamed or not),
passes through unchanged.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from medfactory.rag import Augment
from medfactory.rag.prompt import question_of

HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}


class Relay:
    """`with Relay(upstream, augment) as relay:` point the client at `relay.url`; after
    it, `relay.given` holds {"question", "passages"} per augmented request."""

    def __init__(self, upstream: str, augment: Augment, timeout: float = 600.0):
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.augment, self.given = augment, []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> Relay:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def rewrite(self, body: bytes) -> bytes:
        """The request with its passages, when it is a chat request with a question."""
        try:
            request = json.loads(body)
            _, question = question_of(request["messages"])
        except (ValueError, KeyError, TypeError):
            return body  # not a chat request with a question: the server says what is wrong
        messages, sources = self.augment(request["messages"])
        with self._lock:
            self.given.append({"question": question, "passages": sources})
        return json.dumps({**request, "messages": messages}, ensure_ascii=False).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _refuse(self, error: Exception) -> None:
                message = json.dumps({"error": {"message": f"relay: {error}"}}).encode()
                self.send_response(502)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)

            def _pass(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    if method == "POST" and self.path.rstrip("/").endswith("/chat/completions"):
                        body = relay.rewrite(body)  # an index or embeddings server may fail
                    reply = relay._client.send(
                        relay._client.build_request(
                            method, relay.upstream + self.path, headers=headers, content=body
                        ),
                        stream=True,
                    )
                except Exception as error:
                    self._refuse(error)
                    return
                try:
                    self.send_response(reply.status_code)
                    for key, value in reply.headers.items():
                        if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                            self.send_header(key, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in reply.iter_bytes():  # decoded: content-encoding dropped
                        if chunk:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                finally:
                    reply.close()

            def do_GET(self) -> None:
                self._pass("GET")

            def do_POST(self) -> None:
                self._pass("POST")

        return Handler
