"""`make rl` on the tiny model: a reward model trained on `make abtest`'s DPO pairs, the
reward server scoring with it (`--verifier model`), and PPO through LLaMA-Factory (in
.venv-rl) posting its answers to that server; the reward of each logged step.

Each stage is the command a user runs (`medfactory train`, `medfactory reward serve`),
so the run is recorded and its recipes are the checked-in ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from deploy.process import port_in_use
from medfactory import paths
from medfactory.recipes.run import CommandFailed, read_recipe

RECIPES = paths.PROJECT_ROOT / "llamafactory_configs" / "tiny"


def medfactory_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "medfactory", *args]


def run_medfactory(argv: list[str]) -> None:
    """Run a medfactory command as a user types it, in the project; CommandFailed if it fails."""
    done = subprocess.run(argv, cwd=paths.PROJECT_ROOT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise CommandFailed(f"`{' '.join(argv[2:])}` failed (exit {done.returncode})")


def start_reward_server(verifier: list[str], port: int, log: Path) -> subprocess.Popen:
    """`medfactory reward serve VERIFIER...` on `port`, its output in `log`, once it answers
    /stats; CommandFailed when the port is taken (another server would answer for ours),
    or the server stops or is late."""
    if port_in_use("127.0.0.1", port):
        raise CommandFailed(f"port {port} is already in use; pass another --port")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        server = subprocess.Popen(
            medfactory_command("reward", "serve", *verifier, "--port", str(port)),
            cwd=paths.PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CommandFailed(f"the reward server stopped (exit {server.returncode}); see {log}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/stats", timeout=2).ok:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise CommandFailed(f"the reward server did not answer on port {port} in 180 s; see {log}")


def logged_rewards(output_dir: Path) -> list[tuple[int, float]]:
    """(step, mean reward) of each logged PPO step, from LLaMA-Factory's trainer_log.jsonl."""
    log = Path(output_dir) / "trainer_log.jsonl"
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
    steps = [(row["current_steps"], row["reward"]) for row in rows if "reward" in row]
    # an earlier run's rows stay in the file: this run's start where the steps start again
    starts = [i for i in range(1, len(steps)) if steps[i][0] <= steps[i - 1][0]]
    return steps[starts[-1] :] if starts else steps


def run_rl(port: int = 8300, say: Callable[[str], None] = print) -> dict:
    """Reward model, reward server, PPO; what each logged step was rewarded and the
    server's counts."""
    rm_recipe, ppo_recipe = RECIPES / "rm_lora.yaml", RECIPES / "ppo_lora.yaml"
    reward_model = paths.PROJECT_ROOT / read_recipe(rm_recipe)["output_dir"]
    url = f"http://127.0.0.1:{port}"
    say(f"1/3 reward model on the clinicians' pairs: {rm_recipe.name}")
    run_medfactory(medfactory_command("train", str(rm_recipe)))
    say(f"2/3 reward server ({reward_model.relative_to(paths.PROJECT_ROOT)}) on {url}")
    server = start_reward_server(
        ["--verifier", "model", "--reward-model", str(reward_model)], port,
        paths.cache_dir() / "rl" / "reward-server.log",
    )  # fmt: skip
    try:
        say(f"3/3 PPO against it: {ppo_recipe.name} (in .venv-rl)")
        run_medfactory(medfactory_command("train", str(ppo_recipe), f"reward_model={url}/score"))
        stats = requests.get(f"{url}/stats", timeout=10).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    rewards = logged_rewards(paths.PROJECT_ROOT / read_recipe(ppo_recipe)["output_dir"])
    half = max(1, len(rewards) // 2)
    first, last = rewards[:half], rewards[half:] or rewards[-1:]
    return {
        "reward_model": str(reward_model),
        "rewards": rewards,
        "first_half_mean": sum(r for _, r in first) / len(first) if rewards else None,
        "second_half_mean": sum(r for _, r in last) / len(last) if rewards else None,
        "scored": stats.get("scored"),
    }
