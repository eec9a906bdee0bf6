"""Run a recipe with `llamafactory-cli` from `.venv`: argument list, streamed log, clear failure.

Training goes through LLaMA-Factory's own torchrun path for several GPUs or
nodes (`FORCE_TORCHRUN`, `NNODES`, `NODE_RANK`, `NPROC_PER_NODE`, `MASTER_ADDR`,
`MASTER_PORT`), and reuses the tokenized dataset of an earlier run with the same
data, tokenizer and template (`tokenized_path`).

A finished `train`, `predict` or `export` is recorded on MLflow and the model it made
registered as a version (medfactory/tracking); a store that does not answer costs one
warning, never the run, unless tracking is required (then it is checked before the start).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from converters.registry import INFO_FILE, read_registry
from deploy.process import log_tail
from medfactory import paths
from medfactory.recipes.render import yaml_value
from medfactory.tracking.errors import TrackingError
from medfactory.tracking.settings import Tracking

# Recipe keys that change what tokenisation produces.
TOKENIZATION_KEYS = (
    "model_name_or_path", "template", "cutoff_len", "max_samples", "dataset", "eval_dataset",
    "dataset_dir", "enable_thinking", "train_on_prompt", "mask_history", "packing", "val_size",
)  # fmt: skip


class CommandFailed(RuntimeError):
    """llamafactory-cli exited non-zero; the message carries the log's last lines."""


@dataclass(frozen=True)
class Distributed:
    nproc: int | None = None
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None

    def env(self) -> dict[str, str]:
        """The variables LLaMA-Factory's launcher reads to start torchrun."""
        if self.nproc is None and self.nnodes == 1:
            return {}
        env = {
            "FORCE_TORCHRUN": "1",
            "NNODES": str(self.nnodes),
            "NODE_RANK": str(self.node_rank),
            "MASTER_ADDR": self.master_addr,
        }
        if self.nproc is not None:
            env["NPROC_PER_NODE"] = str(self.nproc)
        if self.master_port is not None:
            env["MASTER_PORT"] = str(self.master_port)
        return env


def read_recipe(recipe: Path) -> dict:
    if not Path(recipe).is_file():
        raise FileNotFoundError(
            f"{recipe}: no such recipe; render one with `medfactory recipe render`"
        )
    try:
        data = yaml.safe_load(Path(recipe).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CommandFailed(f"{recipe}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise CommandFailed(f"{recipe}: expected a mapping of LLaMA-Factory arguments")
    return data


def tokenized_cache(recipe: dict, overrides: dict, root: Path) -> Path:
    """A cache folder keyed by everything tokenisation depends on, data contents included."""
    merged = {**recipe, **overrides}
    digest = hashlib.sha256(json.dumps({k: merged.get(k) for k in TOKENIZATION_KEYS}).encode())
    dataset_dir = root / str(merged.get("dataset_dir", "data"))
    registry = read_registry(dataset_dir)
    names = f"{merged.get('dataset') or ''},{merged.get('eval_dataset') or ''}".split(",")
    for name in filter(None, (n.strip() for n in names)):
        file_name = registry.get(name, {}).get("file_name", "")
        data_file = dataset_dir / file_name
        digest.update(name.encode())
        if file_name and data_file.is_file():
            digest.update(hashlib.sha256(data_file.read_bytes()).digest())
    return paths.cache_dir() / "tokenized" / digest.hexdigest()[:16]


def keep_tokenized(written: Path, cache: Path, succeeded: bool) -> None:
    """A run tokenizes into a folder of its own and it becomes the cache once the run
    succeeded: LLaMA-Factory reads any non-empty folder as a finished one, so two runs
    of the same data at once must never see each other's half-written files."""
    if succeeded and written.is_dir():
        try:
            written.rename(cache)
            return
        except OSError:  # another run's folder got there first; it holds the same data
            pass
    shutil.rmtree(written, ignore_errors=True)


def llamafactory_command(
    command: str, recipe: Path, overrides: dict[str, object], cli: Path | None = None
) -> list[str]:
    argv = [str(cli or paths.llamafactory_cli()), command, str(recipe)]
    return argv + [f"{key}={yaml_value(value)}" for key, value in overrides.items()]


def rl_cli() -> Path:
    """.venv-rl's llamafactory-cli; CommandFailed naming `make rl-env` when it is missing."""
    cli = paths.rl_venv() / "bin" / "llamafactory-cli"
    if not cli.is_file():
        raise CommandFailed(
            f"{cli} does not exist: PPO runs in .venv-rl (LLaMA-Factory 0.9.3 with trl 0.9.6, "
            "the only trl its PPO trainer runs with); build it with `make rl-env`"
        )
    return cli


def ppo_environment(data: dict, overrides: dict) -> Path:
    """PPO's llamafactory-cli (.venv-rl) and what its older transformers needs: a warmup
    given as a ratio (`warmup_steps: 0.1`) becomes `warmup_ratio`, and a model saved by
    .venv gets the RoPE keys that transformers reads."""
    cli = rl_cli()
    arguments = {**data, **overrides}
    warmup = arguments.get("warmup_steps")
    if isinstance(warmup, float) and 0 < warmup < 1:
        overrides.update(warmup_steps=0, warmup_ratio=warmup)
    models = [arguments.get("model_name_or_path"), arguments.get("ref_model")]
    if arguments.get("reward_model_type") == "full":
        models.append(arguments.get("reward_model"))
    for model in filter(None, models):
        config = paths.PROJECT_ROOT / str(model) / "config.json"
        if config.is_file() and (added := add_legacy_rope_keys(config)):
            print(f"medfactory: added {added} to {config} for .venv-rl's transformers",
                  file=sys.stderr)  # fmt: skip
    return cli


def add_legacy_rope_keys(config_file: Path) -> str:
    """transformers 5 (.venv: a full fine-tune, a merged export, the tiny model) saves a
    model's RoPE settings only as `rope_parameters`; .venv-rl's transformers 4.52 reads
    `rope_theta` and `rope_scaling`, and without them would silently rotate at 10,000
    instead of the model's own base. Writes them beside it; what it added, or ""."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_theta" in config or "rope_theta" not in rope:
        return ""
    config["rope_theta"] = rope["rope_theta"]
    added = f"rope_theta {rope['rope_theta']:g}"
    if rope.get("rope_type", "default") != "default" and "rope_scaling" not in config:
        config["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
        added += f" and rope_scaling ({rope['rope_type']})"
    partial = config_file.with_name(f".{config_file.name}.{os.getpid()}")
    partial.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(config_file)  # readers see the old file or the new one, never half
    return added


def run_recipe(
    command: str,
    recipe: Path,
    overrides: dict[str, object] | None = None,
    distributed: Distributed | None = None,
    log_path: Path | None = None,
    echo: bool = True,
) -> Path:
    """Run `llamafactory-cli COMMAND RECIPE`, streaming its output; returns the log path."""
    recipe = Path(recipe).resolve()
    data = read_recipe(recipe)
    overrides = dict(overrides or {})
    if command == "train":  # the data it names, before anything reads it
        check_datasets(recipe, {**data, **overrides})
    ppo = command == "train" and {**data, **overrides}.get("stage") == "ppo"
    cli = ppo_environment(data, overrides) if ppo else None
    # .venv-rl's older datasets cannot read .venv's tokenized cache
    cache = written = None
    if command == "train" and data.get("do_train") and "tokenized_path" not in data and not ppo:
        cache = tokenized_cache(data, overrides, paths.PROJECT_ROOT)
        written = cache if cache.is_dir() else cache.with_name(f"{cache.name}.{uuid.uuid4().hex}")
        overrides.setdefault("tokenized_path", str(written))
    preflight(recipe, {**data, **overrides}, needs_device=command == "train")
    merged = {**data, **overrides}
    if ppo and merged.get("finetuning_type") == "full" and "save_safetensors" not in merged:
        # 0.9.3's PPO saves its value-head wrapper with safetensors, which refuses the tied
        # embeddings of small Qwen models after the whole run; set after the check above,
        # whose transformers (.venv) no longer knows the key .venv-rl's reads
        overrides["save_safetensors"] = False
    distributed = distributed or Distributed()
    env = {**os.environ, **distributed.env()}
    # torchrun, which LLaMA-Factory starts by name for distributed runs, lives in .venv/bin.
    env["PATH"] = f"{paths.train_venv() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if _hub_model_id({**data, **overrides}):  # presets' models come from ModelScope by default
        env.setdefault("USE_MODELSCOPE_HUB", "1")
    node = f"-node{distributed.node_rank}" if distributed.nnodes > 1 else ""
    log_path = Path(log_path or paths.cache_dir() / "logs" / f"{command}-{recipe.stem}{node}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = llamafactory_command(command, recipe, overrides, cli)
    if not Path(argv[0]).is_file():
        raise CommandFailed(f"{argv[0]} does not exist; run `make install` first")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=paths.PROJECT_ROOT,  # recipes name paths relative to the repository
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        try:
            while chunk := os.read(process.stdout.fileno(), 65536):
                log.write(chunk)
                if echo:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
        finally:
            code = process.wait()
            if cache and written != cache:
                keep_tokenized(written, cache, code == 0)
    if code != 0:
        raise CommandFailed(
            f"llamafactory-cli {command} failed (exit {code}) for recipe {recipe}; "
            f"last lines of {log_path}:\n{log_tail(log_path)}"
        )
    return log_path


@dataclass
class Finished:
    """A run that finished: its log, where it was recorded, what could not be recorded."""

    log: Path
    recorded: object = None  # medfactory.tracking.record.Recorded
    warnings: list[str] = field(default_factory=list)


def run_and_record(
    command: str,
    recipe: Path,
    overrides: dict[str, object] | None = None,
    distributed: Distributed | None = None,
    tracking: Tracking | None = None,
) -> Finished:
    """`run_recipe`, then the run recorded and its model registered (tracking on)."""
    tracking = tracking or Tracking(enabled=False)
    if tracking.enabled and tracking.required:  # before hours of training, not after
        from medfactory.tracking.client import open_client

        open_client(tracking.resolved_uri)
    started = time.time()
    overrides = dict(overrides or {})
    records = tracking.enabled and not (distributed and distributed.node_rank != 0)
    if records and not tracking.required:  # MLflow's import, while the run works
        from medfactory.tracking.client import preload

        preload(tracking.resolved_uri)
    log = run_recipe(command, recipe, overrides, distributed=distributed)
    finished = Finished(log)
    if not records:
        return finished  # one node records a distributed run: rank 0, which saves it
    arguments = {**read_recipe(recipe), **overrides}
    try:
        from medfactory.tracking.record import record_run

        finished.recorded = record_run(
            command, Path(recipe).resolve(), arguments, tracking, started
        )
        finished.warnings += finished.recorded.warnings
    except TrackingError as error:
        if tracking.required:
            raise
        finished.warnings.append(f"{error}; the run's output is kept, not recorded")
    except Exception as error:  # noqa: BLE001 - a finished run is never lost to its record
        if tracking.required:
            raise
        finished.warnings.append(
            f"recording the run failed ({type(error).__name__}: {error}); its output is kept"
        )
    return finished


def preflight(recipe: Path, arguments: dict, needs_device: bool = False) -> None:
    """`recipe check`'s parse with LLaMA-Factory's own parser, before anything starts:
    a misspelled key is one line naming it and its closest known key, not a traceback.
    With `needs_device` (train, predict), a recipe for a GPU on a machine without one is
    one line too, and so is a PPO recipe's reward server that does not answer."""
    if needs_device:
        check_reward_server(recipe, arguments)
        check_full_reward_model(recipe, arguments)
    try:
        from medfactory.recipes.check import cuda_available, llamafactory_problems

        with contextlib.chdir(paths.PROJECT_ROOT):  # where llamafactory-cli resolves paths
            problems = llamafactory_problems(recipe, arguments)
    except ImportError:  # no LLaMA-Factory here: the launch below says to install it
        return
    if problems:
        raise CommandFailed("\n".join(problems) + "\nfix the recipe; nothing was started")
    # torch is imported by the parse above, so asking it costs a few milliseconds; the
    # nvidia-smi binary would be quicker but misses CUDA_VISIBLE_DEVICES="" and broken drivers.
    if needs_device and (keys := gpu_only_keys(arguments)) and not cuda_available():
        raise CommandFailed(cpu_hint(recipe, keys))


def check_reward_server(recipe: Path, arguments: dict, timeout: float = 10.0) -> None:
    """A PPO recipe's `reward_model` URL (`reward_model_type: api`) answers a reward
    request, before the models load: LLaMA-Factory would post to it only after loading
    them, and fail with a traceback. The request is an empty batch, `{"model": "model",
    "messages": []}`, which scores nothing and must come back as `{"scores": [...]}`."""
    if arguments.get("stage") != "ppo" or arguments.get("reward_model_type") != "api":
        return
    import requests

    url = str(arguments.get("reward_model") or "")
    try:
        reply = requests.post(url, json={"model": "model", "messages": []}, timeout=timeout)
        problem = None if reply.ok else f"it answered HTTP {reply.status_code}"
        if problem is None and not isinstance(reply.json().get("scores"), list):
            problem = 'its answer has no "scores" list'
    except requests.ConnectionError:
        problem = "nothing answers there"
    except requests.Timeout:
        problem = f"no answer in {timeout:g} s"
    except (requests.RequestException, ValueError, AttributeError) as error:
        problem = f"not a reward server ({type(error).__name__})"
    if problem:
        raise CommandFailed(
            f"{recipe}: reward_model {url} does not answer a reward request ({problem}); "
            "start the reward server (`medfactory reward serve --port PORT --verifier ...`) "
            "or fix reward_model; nothing was started"
        )


def ties_embeddings(model: str) -> bool:
    """Whether `model` (a local folder's config.json, else a preset's model id) shares
    its input embeddings with its output layer; False when neither says."""
    folder = paths.PROJECT_ROOT / model
    if (folder / "config.json").is_file():
        from transformers import AutoConfig

        try:  # the model class's default when config.json leaves the key out (GPT-2, Gemma)
            return bool(getattr(AutoConfig.from_pretrained(folder), "tie_word_embeddings", False))
        except (OSError, ValueError, KeyError):  # remote code, say: the key as written
            try:
                raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                return bool(raw.get("tie_word_embeddings"))
            except (OSError, ValueError):
                return False  # LLaMA-Factory names an unreadable config itself
    from medfactory.recipes.presets import load_presets

    return any(p.model == model and p.architecture.tie_word_embeddings
               for p in load_presets().values())  # fmt: skip


def check_full_reward_model(recipe: Path, arguments: dict) -> None:
    """A reward model trained with all weights (`stage: rm`, `finetuning_type: full` or
    `freeze`) of a model with tied embeddings (Qwen2.5 up to 3B, the tiny model) fails
    after its last step: LLaMA-Factory saves the value-head wrapper with safetensors, which
    refuses the shared tensors (its pull request #10824). Refused before it starts."""
    if arguments.get("stage") != "rm" or arguments.get("finetuning_type") not in ("full", "freeze"):
        return
    model = str(arguments.get("model_name_or_path") or "")
    if ties_embeddings(model):
        raise CommandFailed(
            f"{recipe}: a {arguments['finetuning_type']} reward model of {model}, whose "
            "embeddings are tied (tie_word_embeddings), cannot be saved by LLaMA-Factory: "
            "the run would fail after its last step; train it with `finetuning_type=lora` "
            "(`medfactory recipe render ... --method lora --stage rm`); nothing was started"
        )


# Recipe keys that only work on a CUDA GPU, and the override that turns each off.
GPU_ONLY = {
    "bf16": "bf16=false", "pure_bf16": "pure_bf16=false", "fp16": "fp16=false",
    "quantization_bit": "quantization_bit=null", "deepspeed": "deepspeed=null",
}  # fmt: skip


def gpu_only_keys(arguments: dict) -> dict[str, object]:
    """The keys of `arguments` set to what needs a GPU. bf16 runs on a CPU when the
    recipe says `use_cpu: true` (transformers' CPU autocast); fp16, bitsandbytes
    quantization and DeepSpeed never do."""
    keys = {key: arguments[key] for key in GPU_ONLY if arguments.get(key) not in (None, False)}
    if arguments.get("use_cpu"):
        keys = {k: v for k, v in keys.items() if k not in ("bf16", "pure_bf16")}
    return keys


def cpu_hint(recipe: Path, keys: dict[str, object]) -> str:
    named = ", ".join(f"{key}: {yaml_value(value)}" for key, value in keys.items())
    overrides = " ".join(GPU_ONLY[key] for key in keys)
    return (
        f"{recipe}: needs a CUDA GPU ({named}) and this machine has none; run it where "
        f"there is one, or on this CPU with the overrides `{overrides}` (`medfactory train "
        f"{recipe} {overrides}`, or render a CPU recipe with `medfactory recipe render ... "
        f"{overrides}`); nothing was started"
    )


def check_datasets(recipe: Path, arguments: dict) -> None:
    """Every `dataset` and `eval_dataset` is in the registry the run will read
    (DATASET_DIR/dataset_info.json, relative to the project, as llamafactory-cli sees it):
    one line naming the missing ones and the registry, not LLaMA-Factory's traceback."""
    dataset_dir = str(arguments.get("dataset_dir") or "data")
    if dataset_dir == "ONLINE" or dataset_dir.startswith("REMOTE:"):
        return  # names on a hub: LLaMA-Factory resolves them
    wanted = {
        key: [n.strip() for n in str(arguments.get(key) or "").split(",") if n.strip()]
        for key in ("dataset", "eval_dataset")
    }
    if not any(wanted.values()):
        return
    registry_dir = paths.PROJECT_ROOT / dataset_dir
    registry_file = registry_dir / INFO_FILE
    registry = read_registry(registry_dir)
    missing = [
        f"{key} {name!r}" for key, names in wanted.items() for name in names if name not in registry
    ]
    if not missing:
        return
    if not registry_file.is_file():
        where = f"{registry_file} does not exist"
    else:
        known = sorted(registry)
        listed = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
        where = f"{registry_file} has {listed or 'no dataset'}"
    raise CommandFailed(
        f"{recipe}: {', '.join(missing)} not registered: {where}; convert the data with "
        "`medfactory data convert ... --dataset-dir DIR`, or fix the name or dataset_dir; "
        "nothing was started"
    )


def _hub_model_id(data: dict) -> bool:
    """True for an `owner/name` model id, False for a local folder."""
    model = str(data.get("model_name_or_path", ""))
    local = model.startswith((".", "/")) or (paths.PROJECT_ROOT / model).exists()
    return model.count("/") == 1 and not local
