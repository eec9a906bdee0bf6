"""`serve`: start a server with the training chat template, prove it, keep or stop it.

Start -> wait for health -> verify token parity -> on FAIL stop it and say so
-> otherwise record it (background) or wait on it (foreground). The command
line only gathers the options; everything that runs is here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from deploy import instances
from deploy.chat_templates import chat_template_path, reasoning_parser
from deploy.client import Endpoint
from deploy.process import ServerStartError
from deploy.server import Server, ServerSpec
from deploy.verify import verify_each


class ParityFailed(ServerStartError):
    """The server started but does not build the prompts the model was trained on."""


@dataclass(frozen=True)
class Served:
    spec: ServerSpec
    pid: int
    log: Path


def serving_spec(spec: ServerSpec) -> ServerSpec:
    """Fill in what follows from the training template: vLLM's chat template and reasoning
    parser (LLaMA-Factory's api applies its own template); check an adapter folder."""
    for name, path in spec.adapters:
        if not (Path(path) / "adapter_config.json").is_file():
            raise ServerStartError(
                f"--adapter {name}={path}: not a LoRA adapter (adapter_config.json missing); "
                "pass the output_dir of a LoRA training run, or serve a merged model with "
                "--model alone"
            )
    if spec.backend != "vllm":
        return spec
    return replace(
        spec,
        chat_template=spec.chat_template or chat_template_path(spec.template),
        reasoning_parser=reasoning_parser(spec.template),
    )


def serve(
    spec: ServerSpec,
    state_dir: Path,
    check_parity: bool = True,
    foreground: bool = False,
    timeout: float = 900,
    on_wait: Callable[[float], None] | None = None,
    say: Callable[[str], None] = print,
) -> Served:
    """Start the server and verify it; returns once it runs detached (or, in the
    foreground, once it has stopped). A failed parity check stops it: ParityFailed."""
    spec = serving_spec(spec)
    log = state_dir / f"{spec.backend}-{spec.port}.log"
    server = Server(spec, log)
    server.start(timeout=timeout, on_wait=on_wait)
    served = Served(spec, server.process.pid, log)
    say(f"serving {spec.model_name} at {spec.base_url}/v1 (pid {served.pid}, log {log})")
    try:
        if check_parity:
            thinking = spec.enable_thinking is not False
            reports = verify_each(
                Endpoint(spec.base_url, api_key=spec.api_key), Path(spec.model), spec.template,
                thinking, spec.served_names, say=say,
            )  # fmt: skip
            if not all(report.passed for report in reports.values()):
                raise ParityFailed(
                    "the server does not build the prompts the model was trained on; "
                    f"stopped it. Serve with --template {spec.template} and without "
                    "--chat-template, or fix the template the failures point at"
                )
    except BaseException:
        server.stop()
        raise
    if foreground:
        say("Ctrl-C stops the server")
        try:
            server.process.wait()
        finally:
            server.stop()
        return served
    instances.record(state_dir, spec, served.pid, log)
    server.process = None  # detach: the server outlives this command
    say(f"stop it with: medfactory serve stop --port {spec.port}")
    return served
