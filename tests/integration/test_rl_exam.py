"""PPO for real against the real reward server: `medfactory train` of the checked-in tiny
PPO recipe runs LLaMA-Factory's PPO trainer in .venv-rl on the exam prompt set of `make
rl-exam`; `medfactory reward serve --verifier choice` logs each answer it scored with its
question's id, and the rewards LLaMA-Factory logged are those scores, step by step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.numpy import load_file

from deploy.process import free_port
from medfactory.dev.rl_exam import (
    NAME,
    logged_rewards,
    logged_scores,
    prepare_prompt_set,
    start_choice_server,
)

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "llamafactory_configs" / "tiny" / "ppo_lora.yaml"
STEPS = 3


def train_ppo(model: Path, folder: Path, *overrides: str) -> tuple:
    """`medfactory train` of the tiny PPO recipe on the exam's training prompts against a
    real `reward serve --verifier choice`: the prompt set, the server's log, the output."""
    prompt_set = prepare_prompt_set(folder / "rl", held_out=0.3, samples=1)
    port, log, out = free_port(), folder / "reward-server.log", folder / "ppo"
    server = start_choice_server(prompt_set["answers"], port, log)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "medfactory", "train", str(RECIPE), "--no-tracking",
             f"reward_model=http://127.0.0.1:{port}/score", f"dataset={NAME}_train",
             f"dataset_dir={prompt_set['data']}", f"model_name_or_path={model}",
             f"output_dir={out}", "logging_steps=1", "save_steps=1000", *overrides],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return prompt_set, log, out, run


def test_ppo_posts_each_answer_to_the_reward_server_and_learns(tiny_model, tmp_path):
    prompt_set, log, out, _ = train_ppo(tiny_model, tmp_path, f"max_samples={STEPS}")
    key_ids = [json.loads(line)["id"] for line in prompt_set["answers"].read_text().splitlines()]
    scores = logged_scores(log)
    # one answer a step, each to one of the first STEPS training questions, scored by choice
    assert len(scores) == STEPS
    assert {s["prompt"] for s in scores} <= set(key_ids[:STEPS]) and all(
        s["verifier"] == "choice" and s["score"] in (-1.0, 0.0, 1.0) for s in scores
    )
    # batch size 1: the reward LLaMA-Factory logged for a step is the server's score
    assert [reward for _, reward in logged_rewards(out)] == [s["score"] for s in scores]
    weights = load_file(str(out / "adapter_model.safetensors"))
    learnt = [name for name, tensor in weights.items() if "lora_B" in name and tensor.any()]
    assert learnt  # LoRA B starts at zero: PPO's updates moved it


def test_full_ppo_of_a_model_with_tied_embeddings_saves_a_model_that_loads(tiny_model, tmp_path):
    # `make rl-exam`'s PPO: all weights, four answers a step. The tiny model ties its
    # embeddings, as the small Qwen2.5 models do: LLaMA-Factory 0.9.3 saved them only
    # after `medfactory train` set save_safetensors off for it.
    import torch

    from medfactory.dev.rl import PPO

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    del config["rope_theta"]  # as transformers 5 (.venv) saves a full fine-tune
    (model / "config.json").write_text(json.dumps(config))
    # one step: a warmup would keep its learning rate at zero
    _, log, out, run = train_ppo(model, tmp_path, "max_samples=4", "warmup_steps=0",
                                 "max_new_tokens=8",
                                 *(f"{key}={value}" for key, value in PPO.items()))  # fmt: skip
    assert f"added rope_theta 1e+06 to {model / 'config.json'}" in run.stderr
    scores = [s["score"] for s in logged_scores(log)]
    [(step, reward)] = logged_rewards(out)
    assert step == 1 and 1 <= len(scores) <= 4  # identical answers are scored once
    assert min(scores) <= reward <= max(scores)
    trained = torch.load(out / "pytorch_model.bin", map_location="cpu", weights_only=True)
    start = load_file(str(tiny_model / "model.safetensors"))
    moved = [k for k, v in start.items() if not torch.equal(trained[k], torch.from_numpy(v))]
    assert moved  # PPO changed the weights, and saved them where the next stage loads them
