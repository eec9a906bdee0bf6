"""PPO on a verifiable exam, and what it changed on questions it never saw.

The bundled exam (dataset_info/samples/medical_exam_sample.csv) is asked with its right
option moved to A, so the answer key is always A: a behaviour the tiny random-weight model
can be rewarded into (answer "A"), which is all a PPO run of a few dozen steps can show on
it. `data convert exam` splits it into training prompts (whose key the reward server
holds) and held-out ones. As HuatuoGPT-o1 and every R1-style recipe do, SFT comes first
and teaches the answer's form: the tiny model is fully fine-tuned on the training prompts
answered "答案：X" once with each of their letters, so it answers in the form but with no
preference for the right letter (LoRA alone cannot: the random model's frozen embeddings
and norms keep every token's probability near 1/150,000). PPO (LLaMA-Factory in .venv-rl,
`medfactory train`, all weights too) continues that SFT model against `reward serve
--verifier choice`; then both answer each held-out question several times in .venv-rl (the
environment PPO trained in), the same verifier scores the answers, and the mean rewards
are compared with bootstrap intervals over questions.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from converters.formats import dataset_entry
from converters.registry import register
from medfactory import paths
from medfactory.dev.rl import (
    PPO,
    compare,
    logged_rewards,
    predict_in_rl_env,
    start_reward_server,
    train,
)
from medfactory.recipes.run import CommandFailed, rl_cli
from medfactory.reporting import write_jsonl

EXAM = paths.PROJECT_ROOT / "dataset_info" / "samples" / "medical_exam_sample.csv"
NAME = "rl_exam"
LETTERS = "ABCDEFGH"
# `reward serve` logs each score: "reward choice=+1.000 prompt=7 outcome=right"
SCORE_LINE = re.compile(r"reward (\w+)=([-+]\d+\.\d+) prompt=(\S+) outcome=(\w+)")
# answers as long as "答案：A" needs
NEW_TOKENS = 8


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


def format_rows(prompts: list[dict], key: list[dict], seed: int) -> list[dict]:
    """Each training prompt answered "答案：X" once with each of its option letters, in a
    seeded order: SFT on these teaches the answer's form and no preference for a letter."""
    rng = random.Random(seed)
    rows = []
    for prompt, entry in zip(prompts, key, strict=True):
        question = prompt["conversations"][0]["value"]
        if entry["question"] not in question:
            raise CommandFailed(f"the answer key's question {entry['id']} is not its prompt's")
        for letter in (letter for letter in LETTERS if entry.get(letter)):
            answer = {"from": "gpt", "value": f"答案：{letter}"}
            rows.append({"conversations": [{"from": "human", "value": question}, answer]})
    rng.shuffle(rows)
    return rows


def prepare_prompt_set(work: Path, held_out: float, samples: int, seed: int = 42) -> dict:
    """The prompt set in work/data (its own registry); NAME_format, the answer-form SFT
    set; and NAME_heldout: each held-out prompt `samples` times, for sampled answers."""
    from medfactory.rewards.prompt_sets import PromptSetOptions, convert_prompt_set

    data = work / "data"
    exam = work / "exam_answer_a.jsonl"
    fixed_letter_exam(EXAM, exam)
    options = PromptSetOptions(NAME, data, held_out=held_out, force=True)
    summary = convert_prompt_set("exam", exam, options)
    test = (data / f"{NAME}_test.jsonl").read_text(encoding="utf-8").splitlines()
    repeated = [json.loads(line) for line in test for _ in range(samples)]
    formatted = format_rows(
        [json.loads(line) for line in (data / f"{NAME}_train.jsonl").read_text().splitlines()],
        [json.loads(line) for line in (data / f"{NAME}.answers.jsonl").read_text().splitlines()],
        seed,
    )  # fmt: skip

    def move_files() -> None:
        write_jsonl(data / f"{NAME}_heldout.jsonl", repeated)
        write_jsonl(data / f"{NAME}_format.jsonl", formatted)

    entry = {
        f"{NAME}_{part}": dataset_entry("sharegpt", f"{NAME}_{part}.jsonl", False)
        for part in ("heldout", "format")
    }
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


def score_heldout(answers: list[str], rows: list[dict], key: Path) -> dict:
    """Each held-out answer scored by the choice verifier (the texts built as the PPO
    trainer sends them); the mean reward per question and the outcome counts."""
    from medfactory.rewards.text import chat_text
    from medfactory.rewards.verifiers import build_verifier

    if len(answers) != len(rows):
        raise CommandFailed(f"{len(answers)} held-out answers for {len(rows)} prompts")
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


def run_exam_rl(
    model: Path,
    port: int = 8300,
    epochs: float = 10.0,
    samples: int = 4,
    held_out: float = 0.3,
    seed: int = 42,
    format_epochs: float = 3.0,
    say: Callable[[str], None] = print,
) -> dict:
    """Prompt set, answer-form SFT of `model`, reward server, PPO from that SFT model,
    held-out comparison of the two; the report, also in .cache/rl/report.json."""
    rl_cli()  # before anything starts
    model = paths.PROJECT_ROOT / model  # as `medfactory train` reads it; absolute stays
    if not (model / "config.json").is_file():
        raise CommandFailed(f"{model}: no model there (config.json); `make tiny-model` builds it")
    work = paths.cache_dir() / "rl"
    sft_dir = paths.PROJECT_ROOT / "saves" / "tiny" / "rl" / "sft"
    ppo_dir = paths.PROJECT_ROOT / "saves" / "tiny" / "rl" / "ppo"
    started = time.monotonic()
    prompt_set = prepare_prompt_set(work, held_out, samples, seed)
    data = prompt_set["data"]
    written = prompt_set["summary"]["written"]
    say(f"1/5 prompt set {NAME}: {written['train']} training questions, {written['test']} held "
        f"out (key: always A), in {data}")  # fmt: skip
    say(f"2/5 SFT of {model} on the answer's form (each letter once per question), full")
    # transformers reads an earlier LoRA run's README.md there as a PEFT model's, and fails
    shutil.rmtree(sft_dir, ignore_errors=True)
    sft_seconds = train("train_lora.yaml", {
        "model_name_or_path": str(model), "finetuning_type": "full", "learning_rate": 1e-3,
        "dataset": f"{NAME}_format", "dataset_dir": str(data), "eval_dataset": None,
        "eval_strategy": "no", "output_dir": str(sft_dir), "num_train_epochs": format_epochs,
        "max_samples": 100000, "save_steps": 100000, "seed": seed,
    })  # fmt: skip
    server_log = work / "reward-server.log"
    server = start_choice_server(prompt_set["answers"], port, server_log)
    url = f"http://127.0.0.1:{port}/score"
    say(f"3/5 reward server (choice) on {url}; log {server_log}")
    try:
        say(f"4/5 PPO from {sft_dir.relative_to(paths.PROJECT_ROOT)} ({epochs:g} epochs, "
            ".venv-rl)")  # fmt: skip
        # LLaMA-Factory's PPO appends to an earlier run's trainer_log.jsonl
        shutil.rmtree(ppo_dir, ignore_errors=True)
        ppo_seconds = train("ppo_lora.yaml", {
            "reward_model": url, "dataset": f"{NAME}_train", "dataset_dir": str(data),
            "model_name_or_path": str(sft_dir), "output_dir": str(ppo_dir), **PPO,
            "max_new_tokens": NEW_TOKENS,
            "num_train_epochs": epochs, "logging_steps": 1, "save_steps": 100000, "seed": seed,
        })  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    scores = logged_scores(server_log)
    say(f"5/5 {samples} sampled answers to each held-out question, SFT and PPO models")
    results = {}
    for label, trained in (("sft", sft_dir), ("ppo", ppo_dir)):
        answers = predict_in_rl_env(trained, f"{NAME}_heldout", data, work / f"heldout-{label}",
                                    seed, NEW_TOKENS)  # fmt: skip
        results[label] = score_heldout(answers, prompt_set["heldout_rows"],
                                       prompt_set["heldout_key"])  # fmt: skip
    report = {
        "model": str(model), "sft_model": str(sft_dir), "ppo_model": str(ppo_dir),
        "epochs": epochs, "format_epochs": format_epochs, "rewards": logged_rewards(ppo_dir),
        "server": {"scored": len(scores), "outcomes": dict(Counter(s["outcome"] for s in scores)),
                   "prompts": len({s["prompt"] for s in scores})},
        "heldout": compare(results["sft"]["per_prompt"], results["ppo"]["per_prompt"]),
        "outcomes": {label: r["outcomes"] for label, r in results.items()},
        "examples": {label: r["examples"] for label, r in results.items()},
        "seconds": {"sft": round(sft_seconds, 1), "ppo": round(ppo_seconds, 1),
                    "total": round(time.monotonic() - started, 1)},
    }  # fmt: skip
    (work / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    report["report"] = str(work / "report.json")
    return report
