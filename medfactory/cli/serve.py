"""`medfactory serve|verify`: serve with the training chat template, and prove it."""

from __future__ import annotations

import time
from pathlib import Path

import click

from medfactory.cli.common import (
    ExampleGroup,
    server_client,
    unwind_on_termination,
    with_example,
)

POSITIVE = click.IntRange(min=1)
THINKING = click.option(
    "--thinking/--no-thinking",
    default=None,
    help="Reasoning templates: the recipe's enable_thinking [default: on].",
)
API_KEY = click.option("--api-key", envvar="MEDFACTORY_API_KEY", help="Require this API key.")


def _state_dir() -> Path:
    from medfactory import paths

    return paths.cache_dir() / "serve"


@click.group(cls=ExampleGroup, invoke_without_command=True)
@click.option(
    "--model", type=click.Path(path_type=Path),
    help="Model folder (merged or base), or a recorded version: models:/NAME@ALIAS, "
    "models:/NAME/VERSION (an adapter is served on its base, under NAME).",
)  # fmt: skip
@click.option("--tracking-uri", help="MLflow store of models:/ versions [default: as train's].")
@click.option(
    "--adapter", multiple=True, metavar="NAME=PATH",
    help="Also serve this LoRA adapter as model NAME (repeatable; a bare PATH is MODEL-lora).",
)  # fmt: skip
@click.option("--template", help="The recipe's LLaMA-Factory template, e.g. qwen, deepseekr1.")
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@API_KEY
@click.option("--served-model-name", help="[default: the model folder's name]")
@click.option("--max-model-len", type=int)
@click.option("--gpu-memory-utilization", type=float)
@click.option(
    "--tensor-parallel-size",
    type=POSITIVE,
    metavar="N",
    help="vLLM: split each layer over N GPUs (one node; N divides the attention heads).",
)
@click.option(
    "--pipeline-parallel-size",
    type=POSITIVE,
    metavar="M",
    help="vLLM: split the layers into M stages on M GPU groups (across nodes: see the README).",
)
@click.option(
    "--data-parallel-size",
    type=POSITIVE,
    metavar="D",
    help="vLLM: D copies of the engine behind one port; uses N x M x D GPUs.",
)
@click.option(
    "--max-num-seqs",
    type=POSITIVE,
    metavar="S",
    help="vLLM: most sequences in one batch (the KV cache `vram --serve` counts).",
)
@click.option("--backend", type=click.Choice(["vllm", "llamafactory"]), default="vllm")
@click.option(
    "--enforce-eager", is_flag=True,
    help="vLLM without torch.compile or CUDA graphs: a small model starts ~40 s sooner on CPU.",
)  # fmt: skip
@click.option(
    "--chat-template",
    type=click.Path(path_type=Path),
    help="Serve this jinja file instead of templates/chat/TEMPLATE.jinja (verify checks it).",
)
@THINKING
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops the server.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check after start-up.")
@click.option("--timeout", default=900, show_default=True, help="Seconds to wait for health.")
@click.pass_context
def serve(ctx, **options) -> None:
    """Serve a model with vLLM and the chat template it was trained with.

    Starts the server in the background, waits for it, checks with `verify`
    that it builds the prompts the model was trained on, and returns. Stop it
    with `medfactory serve stop`.
    """
    if ctx.invoked_subcommand is not None:
        return
    options = _from_version(options)
    missing = [name for name in ("model", "template") if not options[name]]
    if missing:
        raise click.UsageError(
            f"missing --{' and --'.join(missing)}; e.g. medfactory serve "
            "--model saves/tiny/lora/merged --template qwen"
        )
    _serve(**options)


def _from_version(options: dict) -> dict:
    """--model models:/...: the version's folders, name and template (unless given)."""
    uri = options.pop("tracking_uri")
    if not str(options["model"]).startswith("models:/"):
        return options
    from medfactory.tracking.serving import served  # MLflow: only for a version

    version = served(str(options["model"]), uri)
    adapter = f" with adapter {version.adapter}" if version.adapter else ""
    click.echo(f"serving {version.version}: {version.model}{adapter}", err=True)
    options["model"] = Path(version.model)
    options["template"] = options["template"] or version.template
    if version.adapter is None:
        options["served_model_name"] = options["served_model_name"] or version.name
    else:
        options["adapter"] = (f"{version.name}={version.adapter}", *options["adapter"])
    return options


def _serve(
    model, adapter, template, port, host, api_key, served_model_name, max_model_len,
    gpu_memory_utilization, tensor_parallel_size, pipeline_parallel_size, data_parallel_size,
    max_num_seqs, backend, enforce_eager, chat_template, thinking, foreground, no_verify, timeout,
) -> None:  # fmt: skip
    from deploy.server import ServerSpec, parse_adapters
    from deploy.serving import serve as start_serving
    from medfactory import paths

    unwind_on_termination()  # the server it starts is stopped, not orphaned
    python = paths.vllm_python() if backend == "vllm" else paths.llamafactory_cli()
    adapters = parse_adapters(adapter, served_model_name or Path(model).name)
    spec = ServerSpec(
        python=python, model=Path(model), port=port, host=host, backend=backend,
        served_model_name=served_model_name, max_model_len=max_model_len,
        chat_template=chat_template, template=template, enable_thinking=thinking,
        adapters=adapters, api_key=api_key, gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size, pipeline_parallel_size=pipeline_parallel_size,
        data_parallel_size=data_parallel_size, max_num_seqs=max_num_seqs,
        enforce_eager=enforce_eager,
    )  # fmt: skip
    spinner = _Spinner(f"starting {backend} on {spec.base_url} (log in {_state_dir()})")
    with spinner:
        start_serving(
            spec, _state_dir(), check_parity=not no_verify, foreground=foreground,
            timeout=timeout, on_wait=spinner.waited, say=spinner.say,
        )  # fmt: skip


class _Spinner:
    """A spinner with the seconds waited while the server loads; gone at the first line."""

    def __init__(self, text: str):
        from rich.console import Console

        self.status = Console(stderr=True).status(text)
        self.text = text

    def waited(self, seconds: float) -> None:
        self.status.update(f"{self.text}  {seconds:.0f} s")

    def say(self, line: str) -> None:
        self.status.stop()
        click.echo(line)

    def __enter__(self):
        self.status.start()
        return self

    def __exit__(self, *exc):
        self.status.stop()


@with_example("medfactory serve stop --port 8000")
@serve.command()
@click.option("--port", type=int, help="The server's port [default: the only one running].")
@click.option("--all", "stop_all", is_flag=True, help="Stop every server started by serve.")
def stop(port, stop_all) -> None:
    """Stop a server started by `medfactory serve` (its whole process tree)."""
    from deploy import instances

    chosen = instances.choose(instances.running(_state_dir()), port, stop_all)
    if not chosen:
        click.echo("no server is running")
    for instance in chosen:
        instances.stop(_state_dir(), instance)
        click.echo(f"stopped {instance.backend} on {instance.url} (pid {instance.pid})")


@with_example("medfactory serve status")
@serve.command()
def status() -> None:
    """List the servers started by `medfactory serve`."""
    from deploy import instances

    running = instances.running(_state_dir())
    if not running:
        click.echo("no server is running")
    for i in running:
        health = "ok" if instances.is_healthy(i) else "not answering"
        up = (time.time() - i.started) / 60
        click.echo(
            f"{i.url}  {i.backend}  model={i.served_model_name}  template={i.template}  "
            f"health={health}  up={up:.0f} min  pid={i.pid}  log={i.log}"
        )


@with_example("medfactory verify --endpoint URL --model DIR --template qwen")
@click.command()
@server_client
@click.option("--model", required=True, type=click.Path(path_type=Path), help="Its model folder.")
@click.option("--template", required=True, help="The recipe's LLaMA-Factory template.")
@THINKING
@click.option("--max-tokens", default=64, show_default=True, help="For the chat checks.")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Also write it as JSON."
)
def verify_command(
    endpoint, model, template, api_key, model_name, thinking, max_tokens, report
) -> None:
    """Check token for token that a server builds the prompts the model was trained on.

    Compares the server's /tokenize ids with LLaMA-Factory's training encoding
    over single-turn, multi-turn, system-prompt, Chinese/English and reasoning
    conversations; then checks that two chats complete and stop. Every served
    model (the base and each LoRA adapter) is checked, or --model-name alone.
    """
    from deploy.client import Endpoint
    from deploy.verify import verify_server

    server = Endpoint(endpoint, api_key=api_key, model=model_name)
    if not verify_server(server, model, template, thinking is not False, max_tokens, report):
        raise SystemExit(1)
