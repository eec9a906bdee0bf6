"""PPO for real against the real reward server: `medfactory train` of the checked-in tiny
PPO recipe runs LLaMA-Factory's PPO trainer in .venv-rl on the exam prompt set of `make
rl-exam`; `medfactory reward serve --verifier choice` logs each answer it scored with its
question's id, and the rewards LLaMA-Factory logged are those scores, step by step."""

from __future__ import annotations

import json
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


def test_ppo_posts_each_answer_to_the_reward_server_and_learns(tiny_model, tmp_path):
    prompt_set = prepare_prompt_set(tmp_path / "rl", held_out=0.3, samples=1)
    key_ids = [json.loads(line)["id"] for line in prompt_set["answers"].read_text().splitlines()]
    port, log, out = free_port(), tmp_path / "reward-server.log", tmp_path / "ppo"
    server = start_choice_server(prompt_set["answers"], port, log)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "medfactory", "train", str(RECIPE), "--no-tracking",
             f"reward_model=http://127.0.0.1:{port}/score", f"dataset={NAME}_train",
             f"dataset_dir={prompt_set['data']}", f"model_name_or_path={tiny_model}",
             f"output_dir={out}", f"max_samples={STEPS}", "logging_steps=1",
             "save_steps=1000"],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
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
