"""PPO on a verifiable exam, and what it changed on questions it never saw.

The bundled exam (dataset_info/samples/medical_exam_sample.csv) is asked with its right
option moved to A, so the answer key is always A: a behaviour the tiny random-weight model
can be rewarded into (answer "A"), which is all a PPO run of a few dozen steps can show on
it. `data convert exam` splits it into training prompts (whose key the reward server
holds) and held-out ones; PPO (LLaMA-Factory in .venv-rl, `medfactory train`) continues the
SFT adapter against `reward serve --verifier choice`; then both adapters answer each
held-out question several times in .venv-rl (the environment PPO trained in), the same
verifier scores the answers, and the mean rewards are compared with bootstrap intervals
over questions.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from converters.formats import dataset_entry
from converters.registry import register
from medfactory import paths
from medfactory.dev.rl import logged_rewards, start_reward_server
from medfactory.recipes.run import CommandFailed, llamafactory_command, rl_cli
from medfactory.reporting import write_jsonl

EXAM = paths.PROJECT_ROOT / "dataset_info" / "samples" / "medical_exam_sample.csv"
RECIPES = paths.PROJECT_ROOT / "llamafactory_configs" / "tiny"
NAME = "rl_exam"
LETTERS = "ABCDEFGH"
# `reward serve` logs each score: "reward choice=+1.000 prompt=7 outcome=right"
SCORE_LINE = re.compile(r"reward (\w+)=([-+]\d+\.\d+) prompt=(\S+) outcome=(\w+)")
# PPO samples with the recipe's top_k 0 and top_p 0.9; the held-out answers are sampled alike
SAMPLING = {"do_sample": True, "top_k": 0, "top_p": 0.9, "max_new_tokens": 16}


def fixed_letter_exam(source: Path, target: Path) -> int:
    """`source`'s questions with the right option first: every key is A. Returns the count."""
    with source.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    exam = []
    for row in rows:
        options = [row[letter] for letter in LETTERS if row.get(letter)]
        right = row[row["answer"]]
        ordered = [right] + [option for option in options if option != right]
        exam.append({"id": row["id"], "subject": row.get("subject", ""),
                     "question": row["question"], **dict(zip(LETTERS, ordered, strict=False)),
                     "answer": "A"})  # fmt: skip
    write_jsonl(target, exam)
    return len(exam)


def prepare_prompt_set(work: Path, held_out: float, samples: int) -> dict:
    """The prompt set in work/data (its own registry), and NAME_heldout: each held-out
    prompt `samples` times, for sampled answers to it."""
    from medfactory.rewards.prompt_sets import PromptSetOptions, convert_prompt_set

    data = work / "data"
    exam = work / "exam_answer_a.jsonl"
    fixed_letter_exam(EXAM, exam)
    options = PromptSetOptions(NAME, data, held_out=held_out, force=True)
    summary = convert_prompt_set("exam", exam, options)
    test = (data / f"{NAME}_test.jsonl").read_text(encoding="utf-8").splitlines()
    repeated = [json.loads(line) for line in test for _ in range(samples)]

    def move_files() -> None:
        write_jsonl(data / f"{NAME}_heldout.jsonl", repeated)

    entry = {f"{NAME}_heldout": dataset_entry("sharegpt", f"{NAME}_heldout.jsonl", False)}
    register(data, entry, force=True, before_write=move_files)
    return {"data": data, "summary": summary, "heldout_rows": repeated,
            "answers": data / f"{NAME}.answers.jsonl",
            "heldout_key": data / f"{NAME}.heldout.jsonl"}  # fmt: skip


def start_choice_server(answers: Path, port: int, log: Path) -> subprocess.Popen:
    """`medfactory reward serve --verifier choice` with the exam's key."""
    return start_reward_server(["--verifier", "choice", "--answers", str(answers)], port, log)


def logged_scores(log: Path) -> list[dict]:
    """Each score the reward server logged: verifier, score, prompt id, outcome."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    return [
        {"verifier": m[1], "score": float(m[2]), "prompt": m[3], "outcome": m[4]}
        for m in SCORE_LINE.finditer(text)
    ]


def predict_in_rl_env(adapter: Path, data: Path, out: Path, seed: int) -> Path:
    """Sampled answers to NAME_heldout with `adapter`, by .venv-rl's LLaMA-Factory (the
    transformers PPO trained with): its generated_predictions.jsonl."""
    overrides = {"adapter_name_or_path": str(adapter), "eval_dataset": f"{NAME}_heldout",
                 "dataset_dir": str(data), "output_dir": str(out), "max_samples": 100000,
                 "seed": seed, **SAMPLING}  # fmt: skip
    argv = llamafactory_command("train", RECIPES / "predict_lora.yaml", overrides, rl_cli())
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as file:
        done = subprocess.run(argv, cwd=paths.PROJECT_ROOT, stdin=subprocess.DEVNULL,
                              stdout=file, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        raise CommandFailed(f"held-out predictions with {adapter} failed; see {log}")
    return out / "generated_predictions.jsonl"


def score_heldout(predictions: Path, rows: list[dict], key: Path) -> dict:
    """Each held-out answer scored by the choice verifier (the texts built as the PPO
    trainer sends them); the mean reward per question and the outcome counts."""
    from medfactory.rewards.text import chat_text
    from medfactory.rewards.verifiers import build_verifier

    answers = [json.loads(line)["predict"] for line in predictions.read_text().splitlines()]
    if len(answers) != len(rows):
        raise CommandFailed(f"{predictions}: {len(answers)} answers for {len(rows)} prompts")
    texts = [
        chat_text([{"role": "user", "content": row["conversations"][0]["value"]}], answer)
        for row, answer in zip(rows, answers, strict=True)
    ]
    scored = build_verifier("choice", key).score_all(texts)
    per_prompt: dict[str, list[float]] = {}
    for result in scored:
        per_prompt.setdefault(result.prompt_id, []).append(result.score)
    return {"per_prompt": {p: float(np.mean(s)) for p, s in per_prompt.items()},
            "outcomes": dict(Counter(r.outcome for r in scored)), "answers": len(scored),
            "examples": answers[:3]}  # fmt: skip


def compare(sft: dict, ppo: dict) -> dict:
    """Mean held-out reward of each, with 95 % bootstrap intervals over questions, and
    the paired difference PPO - SFT."""
    from medfactory.stats.bootstrap import bootstrap_interval, paired_bootstrap

    prompts = sorted(sft["per_prompt"])
    before = np.array([sft["per_prompt"][p] for p in prompts])
    after = np.array([ppo["per_prompt"][p] for p in prompts])
    return {
        "questions": len(prompts),
        "sft": {"mean": float(before.mean()), "interval": bootstrap_interval(before)},
        "ppo": {"mean": float(after.mean()), "interval": bootstrap_interval(after)},
        "difference": {"mean": float((after - before).mean()),
                       "interval": list(paired_bootstrap(before, after))},
    }  # fmt: skip


def run_exam_rl(
    adapter: Path,
    port: int = 8300,
    epochs: float = 4.0,
    samples: int = 4,
    held_out: float = 0.3,
    seed: int = 42,
    say: Callable[[str], None] = print,
) -> dict:
    """Prompt set, reward server, PPO from `adapter`, held-out comparison; the report,
    also written to .cache/rl/report.json."""
    rl_cli()  # before anything starts
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise CommandFailed(f"{adapter}: no LoRA adapter there; train one with `make train`")
    work = paths.cache_dir() / "rl"
    ppo_dir = paths.PROJECT_ROOT / "saves" / "tiny" / "rl" / "ppo"
    started = time.monotonic()
    prompt_set = prepare_prompt_set(work, held_out, samples)
    written = prompt_set["summary"]["written"]
    say(f"1/4 prompt set {NAME}: {written['train']} training questions, {written['test']} held "
        f"out (key: always A), in {prompt_set['data']}")  # fmt: skip
    server_log = work / "reward-server.log"
    server = start_choice_server(prompt_set["answers"], port, server_log)
    url = f"http://127.0.0.1:{port}/score"
    say(f"2/4 reward server (choice) on {url}; log {server_log}")
    try:
        say(f"3/4 PPO from {adapter} ({epochs:g} epochs, .venv-rl)")
        # LLaMA-Factory's PPO appends to an earlier run's trainer_log.jsonl
        shutil.rmtree(ppo_dir, ignore_errors=True)
        ppo_started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "medfactory", "train", str(RECIPES / "ppo_lora.yaml"),
             f"reward_model={url}", f"dataset={NAME}_train",
             f"dataset_dir={prompt_set['data']}", f"adapter_name_or_path={adapter}",
             f"output_dir={ppo_dir}", f"num_train_epochs={epochs}", "logging_steps=2",
             "save_steps=100000", f"seed={seed}"],
            cwd=paths.PROJECT_ROOT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise CommandFailed(f"PPO failed (exit {done.returncode})")
        ppo_seconds = time.monotonic() - ppo_started
    finally:
        server.terminate()
        server.wait(timeout=30)
    scores = logged_scores(server_log)
    say(f"4/4 {samples} sampled answers to each held-out question, SFT and PPO adapters")
    results = {}
    for label, weights in (("sft", adapter), ("ppo", ppo_dir)):
        predictions = predict_in_rl_env(weights, prompt_set["data"], work / f"heldout-{label}",
                                        seed)  # fmt: skip
        results[label] = score_heldout(predictions, prompt_set["heldout_rows"],
                                       prompt_set["heldout_key"])  # fmt: skip
    report = {
        "adapter": str(adapter), "ppo_adapter": str(ppo_dir), "epochs": epochs,
        "rewards": logged_rewards(ppo_dir),
        "server": {"scored": len(scores), "outcomes": dict(Counter(s["outcome"] for s in scores)),
                   "prompts": len({s["prompt"] for s in scores})},
        "heldout": compare(results["sft"], results["ppo"]),
        "outcomes": {label: r["outcomes"] for label, r in results.items()},
        "examples": {label: r["examples"] for label, r in results.items()},
        "seconds": {"ppo": round(ppo_seconds, 1), "total": round(time.monotonic() - started, 1)},
    }  # fmt: skip
    (work / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    report["report"] = str(work / "report.json")
    return report
