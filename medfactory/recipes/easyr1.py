"""`recipe easyr1`: GRPO with EasyR1 on a medfactory prompt set, rewarded by medfactory's
verifiers.

LLaMA-Factory 0.9.5 has no GRPO; its maintainers point to EasyR1 (Ray, vLLM and FSDP
on GPUs). From the same inputs as a PPO recipe (a preset, a prompt set made by `data
convert medical-o1-verifiable|exam`, the reward server's URL) this writes:

- DATASET_DIR/NAME.easyr1_train.jsonl and NAME.easyr1_test.jsonl: {"prompt", "key"}
  per question, the prompt as the PPO data asks it and the key the question the
  server's answer key is found by (the answers stay with the server);
- llamafactory_configs/PRESET/easyr1/grpo_NAME.yaml: EasyR1's config
  (templates/easyr1/grpo.yaml.j2), its reward function
  medfactory/rewards/easyr1_reward.py posting to the server.

Paths are relative to the checkout: EasyR1 runs from its root.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import jinja2

from medfactory.paths import PROJECT_ROOT
from medfactory.recipes.presets import TEMPLATES, RecipeError, get_preset
from medfactory.recipes.render import DATASET_DIR, HEADER, RECIPES
from medfactory.reporting import write_jsonl

REWARD_FUNCTION = "medfactory/rewards/easyr1_reward.py:compute_score"


def prompt_of(row: dict) -> str:
    """The question a LLaMA-Factory row asks (ShareGPT's first user turn, or Alpaca's
    instruction and input)."""
    if isinstance(row.get("conversations"), list):
        return next(turn["value"] for turn in row["conversations"]
                    if turn.get("from") in ("human", "user"))  # fmt: skip
    return "\n".join(part for part in (row.get("instruction"), row.get("input")) if part)


def easyr1_rows(dataset_dir: Path, name: str, split: str, keys: str) -> list[dict]:
    """{"prompt", "key"} for each prompt of NAME_SPLIT.jsonl, paired in order with the
    answer key's rows (NAME.answers.jsonl for train, NAME.heldout.jsonl for test)."""
    prompts_path, keys_path = dataset_dir / f"{name}_{split}.jsonl", dataset_dir / keys
    if not prompts_path.is_file() or not keys_path.is_file():
        missing = keys_path if prompts_path.is_file() else prompts_path
        raise RecipeError(
            f"{missing}: not found; --dataset names a prompt set, made with `medfactory data "
            f"convert medical-o1-verifiable|exam FILE --name {name}`"
        )
    prompts = [json.loads(line) for line in prompts_path.read_text(encoding="utf-8").splitlines()]
    answers = [json.loads(line) for line in keys_path.read_text(encoding="utf-8").splitlines()]
    if len(prompts) != len(answers):
        raise RecipeError(
            f"{prompts_path} has {len(prompts)} prompts and {keys_path} {len(answers)} keys; "
            f"convert the prompt set again"
        )
    return [{"prompt": prompt_of(row), "key": key["question"]}
            for row, key in zip(prompts, answers, strict=True)]  # fmt: skip


def write_easyr1(
    preset_name: str, dataset: str, reward: str, gpus: int = 8, lora_rank: int = 0,
    rollout_n: int = 8, model_path: str | None = None,
    dataset_dir: Path = PROJECT_ROOT / DATASET_DIR,
) -> dict:  # fmt: skip
    """The EasyR1 data and config for `dataset`; what was written, and how to run it."""
    preset = get_preset(preset_name)
    if gpus < 1 or lora_rank < 0 or rollout_n < 2:
        raise RecipeError("--gpus is 1 or more, --lora-rank 0 or more, --rollout-n 2 or more "
                          "(GRPO compares each answer with its group's)")  # fmt: skip
    dataset_dir = Path(dataset_dir)
    files = {split: dataset_dir / f"{dataset}.easyr1_{split}.jsonl" for split in ("train", "test")}
    rows = {
        "train": easyr1_rows(dataset_dir, dataset, "train", f"{dataset}.answers.jsonl"),
        "test": easyr1_rows(dataset_dir, dataset, "test", f"{dataset}.heldout.jsonl")
        if (dataset_dir / f"{dataset}_test.jsonl").is_file() else [],
    }  # fmt: skip
    config = RECIPES / preset_name / "easyr1" / f"grpo_{dataset}.yaml"
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES / "easyr1"), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    ).get_template("grpo.yaml.j2")  # fmt: skip
    text = template.render(
        train_file=_relative(files["train"]),
        val_file=_relative(files["test"] if rows["test"] else files["train"]),
        model_path=model_path or preset.model, lora_rank=lora_rank, rollout_n=rollout_n,
        tensor_parallel_size=min(gpus, 2), gpus=gpus, reward=reward,
        reward_function=REWARD_FUNCTION, max_response_length=2048 if preset.reasoning else 1024,
        experiment=f"{preset_name}-grpo-{dataset}",
        save_path=f"saves/{preset_name}/easyr1/grpo_{dataset}",
    )  # fmt: skip
    command = ["medfactory", "recipe", "easyr1", "--model", preset_name, "--dataset", dataset,
               "--reward", reward, "--gpus", str(gpus), "--lora-rank", str(lora_rank),
               "--rollout-n", str(rollout_n)]  # fmt: skip
    command += ["--model-path", model_path] if model_path else []
    for split, path in files.items():
        if rows[split]:
            write_jsonl(path, rows[split])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"{HEADER}{shlex.join(command)}\n{text}", encoding="utf-8")
    return {
        "config": _relative(config),
        "data": {split: _relative(path) for split, path in files.items() if rows[split]},
        "prompts": {split: len(found) for split, found in rows.items()},
        "run": f"python3 -m verl.trainer.main config={_relative(config)}",
    }


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)
