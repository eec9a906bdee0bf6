"""`make rl` on the tiny model: SFT, a reward model on the clinicians' pairs (`make
abtest`'s DPO export), PPO against the reward server scoring with it (`--verifier
model`), and what PPO changed on prompts it never saw.

As InstructGPT and LLaMA-Factory's own examples do, the reward model starts from the SFT
model, and PPO continues it: the SFT model (the tiny model fully fine-tuned on the
HuatuoGPT sample) has representations of the answers' form, which a reward model on a
random base lacks (its scores barely follow the answer). Both answer each held-out prompt
(huatuo_sample_test) several times in .venv-rl, the environment PPO trained in; the same
server scores the answers; the mean rewards are compared with bootstrap intervals over
prompts. The stages are the commands a user runs (`medfactory train`, `medfactory reward
serve`), so each run is recorded and its recipes are the checked-in ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests

from converters.formats import dataset_entry
from converters.registry import register
from deploy.process import port_in_use
from medfactory import paths
from medfactory.recipes.render import yaml_value
from medfactory.recipes.run import CommandFailed, llamafactory_command, read_recipe, rl_cli
from medfactory.reporting import write_jsonl

RECIPES = paths.PROJECT_ROOT / "llamafactory_configs" / "tiny"
SFT_DATA, HELDOUT_DATA = "huatuo_sample_train", "huatuo_sample_test"
# PPO samples with the recipe's top_k 0 and top_p 0.9; the held-out answers are sampled alike
SAMPLING = {"do_sample": True, "top_k": 0, "top_p": 0.9}
# The tiny model's PPO: all weights (in a few dozen steps LoRA barely moved the tiny
# model's answers) and four answers a step (one answer's advantages cannot be whitened).
PPO = {"finetuning_type": "full", "learning_rate": 5e-4, "per_device_train_batch_size": 4}


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


def train(recipe: str, overrides: dict[str, object]) -> float:
    """`medfactory train RECIPE KEY=VALUE...` as a user runs it; its seconds."""
    started = time.monotonic()
    settings = [f"{key}={yaml_value(value)}" for key, value in overrides.items()]
    run_medfactory(medfactory_command("train", str(RECIPES / recipe), *settings))
    return time.monotonic() - started


def predict_in_rl_env(
    model: Path, dataset: str, data: Path, out: Path, seed: int, max_new_tokens: int
) -> list[str]:
    """`model`'s sampled answers to `dataset` (registered in `data`), by .venv-rl's
    LLaMA-Factory (the transformers PPO trained with), in order."""
    overrides = {"model_name_or_path": str(model), "adapter_name_or_path": None,
                 "eval_dataset": dataset, "dataset_dir": str(data), "output_dir": str(out),
                 "max_samples": 100000, "seed": seed, "max_new_tokens": max_new_tokens,
                 **SAMPLING}  # fmt: skip
    argv = llamafactory_command("train", RECIPES / "predict_lora.yaml", overrides, rl_cli())
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as file:
        done = subprocess.run(argv, cwd=paths.PROJECT_ROOT, stdin=subprocess.DEVNULL,
                              stdout=file, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        raise CommandFailed(f"held-out predictions of {model} failed; see {log}")
    predictions = (out / "generated_predictions.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["predict"] for line in predictions.splitlines() if line]


def compare(sft: dict[str, float], ppo: dict[str, float]) -> dict:
    """Mean held-out reward per prompt of each, with 95 % bootstrap intervals over
    prompts, and the paired difference PPO - SFT."""
    from medfactory.stats.bootstrap import bootstrap_interval, paired_bootstrap

    prompts = sorted(sft)
    before = np.array([sft[p] for p in prompts])
    after = np.array([ppo[p] for p in prompts])
    return {
        "questions": len(prompts),
        "sft": {"mean": float(before.mean()), "interval": bootstrap_interval(before)},
        "ppo": {"mean": float(after.mean()), "interval": bootstrap_interval(after)},
        "difference": {"mean": float((after - before).mean()),
                       "interval": list(paired_bootstrap(before, after))},
    }  # fmt: skip


def user_messages(source: Path) -> set[str]:
    """Every user message of a ShareGPT file's conversations."""
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    return {m["value"] for row in rows for m in row["conversations"] if m["from"] == "human"}


def heldout_prompts(work: Path, samples: int, source: Path, seen: set[str]) -> dict:
    """The rows of `source` that share no user message with `seen` (the reward model's
    pairs), each `samples` times, registered in work/data (their own registry) for
    prediction; each repeated row's chat before its answer, and the row it repeats."""
    if not source.is_file():
        raise CommandFailed(f"{source}: not there; `make data` converts the bundled samples")
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    kept = [r for r in rows if not seen & {m["value"] for m in r["conversations"]}]
    repeated = [row for row in kept for _ in range(samples)]
    data, name = work / "data", f"{source.stem}_x{samples}"
    register(data, {name: dataset_entry("sharegpt", f"{name}.jsonl", False)}, force=True,
             before_write=lambda: write_jsonl(data / f"{name}.jsonl", repeated))  # fmt: skip
    roles = {"human": "user", "gpt": "assistant"}
    chats = [[{"role": roles[m["from"]], "content": m["value"]} for m in row["conversations"][:-1]]
             for row in repeated]  # fmt: skip
    return {"data": data, "dataset": name, "chats": chats, "dropped": len(rows) - len(kept),
            "prompt_of": [i // samples for i in range(len(repeated))]}  # fmt: skip


def ppo_texts(model: Path, template: str, chats: list[list[dict]], answers: list[str]) -> list[str]:
    """Each answer to its chat as LLaMA-Factory's PPO trainer posts it: the prompt encoded
    with the recipe's template (its default system included), the answer, the eos."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    if len(answers) != len(chats):
        raise CommandFailed(f"{len(answers)} held-out answers for {len(chats)} prompts")
    tokenizer = AutoTokenizer.from_pretrained(model)
    chat = get_template_and_fix_tokenizer(tokenizer, DataArguments(template=template))
    texts = []
    for messages, answer in zip(chats, answers, strict=True):
        query, _ = chat.encode_oneturn(tokenizer, [*messages, {"role": "assistant", "content": ""}])
        texts.append(tokenizer.decode(query) + answer + tokenizer.eos_token)
    return texts


def score_on_server(url: str, texts: list[str], prompt_of: list[int]) -> dict[str, float]:
    """The reward server's scores of `texts`; the mean of each prompt's answers."""
    reply = requests.post(url, json={"model": "policy", "messages": texts}, timeout=600)
    reply.raise_for_status()
    per_prompt: dict[str, list[float]] = {}
    for prompt, score in zip(prompt_of, reply.json()["scores"], strict=True):
        per_prompt.setdefault(str(prompt), []).append(score)
    return {prompt: float(np.mean(scores)) for prompt, scores in per_prompt.items()}


def run_rl(
    port: int = 8300,
    ppo_prompts: int = 128,
    samples: int = 4,
    rm_epochs: float = 10.0,
    seed: int = 42,
    say: Callable[[str], None] = print,
) -> dict:
    """SFT, reward model, reward server, PPO from the SFT model, held-out comparison;
    the report, also in .cache/rl-chat/report.json."""
    rl_cli()  # before anything starts
    rm_recipe, ppo_recipe = RECIPES / "rm_lora.yaml", RECIPES / "ppo_lora.yaml"
    rm, ppo = read_recipe(rm_recipe), read_recipe(ppo_recipe)
    reward_model = paths.PROJECT_ROOT / rm["output_dir"]
    tiny = paths.PROJECT_ROOT / ppo["model_name_or_path"]
    registry = paths.PROJECT_ROOT / ppo["dataset_dir"]
    work = paths.cache_dir() / "rl-chat"
    sft_dir = paths.PROJECT_ROOT / "saves" / "tiny" / "rl" / "chat-sft"
    ppo_dir = paths.PROJECT_ROOT / "saves" / "tiny" / "rl" / "chat-ppo"
    url = f"http://127.0.0.1:{port}/score"
    if port_in_use("127.0.0.1", port):  # before the training runs, not after them
        raise CommandFailed(f"port {port} is already in use; pass another --port")
    started, seconds = time.monotonic(), {}
    say(f"1/5 SFT of {tiny.relative_to(paths.PROJECT_ROOT)} on {SFT_DATA}, all weights")
    shutil.rmtree(sft_dir, ignore_errors=True)  # an earlier LoRA run's README.md breaks it
    seconds["sft"] = train("train_lora.yaml", {
        "model_name_or_path": str(tiny), "finetuning_type": "full", "learning_rate": 1e-3,
        "dataset": SFT_DATA, "eval_dataset": None, "eval_strategy": "no",
        "output_dir": str(sft_dir), "num_train_epochs": 2.0, "max_samples": 100000,
        "per_device_train_batch_size": 4, "save_steps": 100000, "seed": seed,
    })  # fmt: skip
    say(f"2/5 reward model from the SFT model on the clinicians' pairs: {rm_recipe.name}")
    seconds["rm"] = train(
        rm_recipe.name,
        {"model_name_or_path": str(sft_dir), "num_train_epochs": rm_epochs, "seed": seed},
    )
    log = work / "reward-server.log"
    say(f"3/5 reward server (model: {reward_model.relative_to(paths.PROJECT_ROOT)}) on {url}")
    server = start_reward_server(
        ["--verifier", "model", "--reward-model", str(reward_model), "--template", rm["template"]],
        port, log,
    )  # fmt: skip
    try:
        say(f"4/5 PPO from the SFT model against it: {ppo_recipe.name} (in .venv-rl)")
        shutil.rmtree(ppo_dir, ignore_errors=True)  # PPO appends to an old trainer_log.jsonl
        seconds["ppo"] = train(ppo_recipe.name, {
            "reward_model": url, "model_name_or_path": str(sft_dir), "output_dir": str(ppo_dir),
            **PPO, "max_samples": ppo_prompts, "logging_steps": 1, "save_steps": 100000,
            "seed": seed,
        })  # fmt: skip
        stats = requests.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()  # PPO's
        # prompts the reward model was trained on are not held out from it
        seen = user_messages(registry / f"{rm['dataset']}.jsonl")
        heldout = heldout_prompts(work, samples, registry / f"{HELDOUT_DATA}.jsonl", seen)
        say(f"5/5 {samples} sampled answers to each {HELDOUT_DATA} prompt, SFT and PPO models "
            f"({heldout['dropped']} left out: the reward model's pairs ask them)")  # fmt: skip
        means = {}
        for label, model in (("sft", sft_dir), ("ppo", ppo_dir)):
            out = work / f"heldout-{label}"
            answers = predict_in_rl_env(model, heldout["dataset"], heldout["data"], out, seed,
                                        ppo["max_new_tokens"])  # fmt: skip
            texts = ppo_texts(model, ppo["template"], heldout["chats"], answers)
            means[label] = score_on_server(url, texts, heldout["prompt_of"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    rewards = logged_rewards(ppo_dir)
    if not rewards:
        raise CommandFailed(f"{ppo_dir / 'trainer_log.jsonl'}: PPO logged no reward")
    quarter = max(1, len(rewards) // 4)
    report = {
        "sft_model": str(sft_dir), "reward_model": str(reward_model), "ppo_model": str(ppo_dir),
        "rewards": rewards,
        "first_quarter_mean": float(np.mean([r for _, r in rewards[:quarter]])),
        "last_quarter_mean": float(np.mean([r for _, r in rewards[-quarter:]])),
        "scored": stats.get("scored"), "heldout": compare(means["sft"], means["ppo"]),
        "heldout_left_out": heldout["dropped"],
        "seconds": {**{k: round(v, 1) for k, v in seconds.items()},
                    "total": round(time.monotonic() - started, 1)},
    }  # fmt: skip
    (work / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    report["report"] = str(work / "report.json")
    return report
