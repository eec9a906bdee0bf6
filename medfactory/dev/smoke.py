"""The environment smoke run: proof that both environments work end to end.

LoRA-trains the tiny model a few steps with `llamafactory-cli train` in `.venv`
and gets one chat answer for it from a vLLM server in `.venv-vllm`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from converters.formats import dataset_entry, to_alpaca
from converters.records import Dialogue
from converters.registry import read_registry, register
from deploy.client import Endpoint
from deploy.process import free_port
from deploy.server import Server, ServerSpec
from medfactory import paths
from medfactory.recipes.render import render
from medfactory.recipes.run import run_recipe

SMOKE_DATASET = "medfactory_smoke"


@dataclass
class SmokeResult:
    adapter_dir: Path
    losses: list[float]
    train_seconds: float
    answer: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    serve_seconds: float
    server_pid: int


def write_smoke_dataset(dataset_dir: Path, source: Path) -> int:
    """Alpaca records from the real medical-o1 records; registered for LLaMA-Factory."""
    records = json.loads(source.read_text(encoding="utf-8"))
    return write_alpaca_dataset(dataset_dir, [(r["Question"], r["Response"]) for r in records])


def write_alpaca_dataset(dataset_dir: Path, pairs: list[tuple[str, str]]) -> int:
    """(question, answer) pairs as the SMOKE_DATASET train split, written and registered
    as `data convert` writes Alpaca data."""
    rows = [to_alpaca(Dialogue(((question, answer),))) for question, answer in pairs]
    dataset_dir.mkdir(parents=True, exist_ok=True)
    file_name = f"{SMOKE_DATASET}_train.json"
    (dataset_dir / file_name).write_text(
        json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    entry = dataset_entry("alpaca", file_name, with_system=False)
    register(dataset_dir, {f"{SMOKE_DATASET}_train": entry}, force=True)
    return len(rows)


def smoke_recipe(
    preset: str,
    method: str,
    model_dir: Path,
    dataset_dir: Path,
    output_dir: Path,
    steps: int,
    **overrides: object,
) -> str:
    """The preset's training recipe as `recipe render` writes it, pointed at a short run.

    Only where things are and how long it runs change (and `overrides`); LoRA
    settings, quantisation and precision stay what users train with.
    """
    values = {
        "model_name_or_path": str(model_dir),
        "dataset_dir": str(dataset_dir),
        "output_dir": str(output_dir),
        "max_steps": steps,
        "logging_steps": 1,
        "save_strategy": "no",
        "overwrite_cache": True,
        "seed": 42,
        **overrides,
    }
    registry = read_registry(dataset_dir)
    return render(preset, method, "train", [SMOKE_DATASET], values, registry=registry)


def read_losses(output_dir: Path) -> list[float]:
    """The per-step training losses LLaMA-Factory logged."""
    log = output_dir / "trainer_log.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e["loss"] for e in entries if "loss" in e]


def run_smoke(
    work_dir: Path,
    model_dir: Path,
    steps: int = 3,
    say: Callable[[str], None] = print,
) -> SmokeResult:
    work_dir = Path(work_dir)
    dataset_dir, output_dir = work_dir / "data", work_dir / "lora"
    source = paths.fixtures_dir() / "medical_o1" / "medical_o1_sft_en_first2.json"
    count = write_smoke_dataset(dataset_dir, source)
    say(f"dataset: {count} medical-o1 records -> {dataset_dir}")

    recipe_path = work_dir / "train_lora.yaml"
    recipe_path.write_text(smoke_recipe("tiny", "lora", model_dir, dataset_dir, output_dir, steps))
    say(f"training: llamafactory-cli train {recipe_path} ({steps} LoRA steps on CPU)")
    started = time.monotonic()
    run_recipe("train", recipe_path, log_path=work_dir / "train.log", echo=False)
    train_seconds = time.monotonic() - started
    losses = read_losses(output_dir)
    if not losses or not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"training logged no finite loss; see {work_dir / 'train.log'}")
    say(f"trained in {train_seconds:.0f} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    spec = ServerSpec(
        python=paths.vllm_python(),
        model=model_dir,
        port=free_port(),
        served_model_name="tiny",
        max_model_len=1024,
        enforce_eager=True,  # compiling the tiny model takes longer than it saves
    )
    say(f"serving: vLLM on {spec.base_url} from {paths.vllm_venv()}")
    started = time.monotonic()
    with Server(spec, work_dir / "vllm.log") as server, Console().status("") as status:
        server.start(
            timeout=600,
            on_wait=lambda waited: status.update(
                f"waiting for vLLM to load the model: {waited:.0f} s"
            ),
        )
        server_pid = server.process.pid
        serve_seconds = time.monotonic() - started
        endpoint = Endpoint(spec.base_url, model=spec.model_name)
        question = [{"role": "user", "content": "头痛三天，伴有发热，应该怎么办？"}]
        reply = endpoint.chat(question, max_tokens=32, temperature=0.0)
    choice = reply["choices"][0]
    say(f"server answered after {serve_seconds:.0f} s start-up; server stopped")
    return SmokeResult(
        adapter_dir=output_dir,
        losses=losses,
        train_seconds=train_seconds,
        answer=choice["message"]["content"],
        finish_reason=choice["finish_reason"],
        prompt_tokens=reply["usage"]["prompt_tokens"],
        completion_tokens=reply["usage"]["completion_tokens"],
        serve_seconds=serve_seconds,
        server_pid=server_pid,
    )
