"""`medfactory demo`: the whole pipeline on the bundled samples and the tiny model.

Each stage is the `medfactory` command a user would type, run as its own
process group with its output in `.cache/demo/logs/`, so a failure shows that
stage's log and an interrupt (Ctrl-C, SIGTERM) stops exactly what is running
-- the server included -- before the demo exits. The summary is read back
from the files the stages wrote, never from their console output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.registry import read_registry
from deploy.process import free_port, log_tail, port_in_use, stop_group
from medfactory import paths
from medfactory.evaluation.metrics import METRICS
from medfactory.recipes.run import read_recipe

SAMPLES = "dataset_info/samples"
DEFAULT_PORT = 8000  # where `make serve` serves, and `make verify` / `make loadtest` look
TINY_MODEL = ".cache/tiny-model"
RECIPES = "llamafactory_configs/tiny"
DATASETS = ("huatuo_sample", "medical_o1_sample")
CLINIC = "clinic_sample"  # the hospital table, de-identified with Presidio
LOADTEST_DATASET = "huatuo_sample_test"
LOADTEST_OUT = "saves/loadtest"
DEMO_OUT = "saves/demo"
COMPARE_OUT = f"{DEMO_OUT}/compare"
SAFETY_OUT = f"{DEMO_OUT}/safety"
EXAM_OUT = f"{DEMO_OUT}/exam"
EXAM_FILE = f"{SAMPLES}/medical_exam_sample.csv"  # a small exam with known answers
# The base model's answers to the same test splits: the predict recipe without its adapter.
BASE_PREDICT = "saves/tiny/base/predict"
SPLITS = ("train", "val", "test")
STAGE_NAMES = (
    "convert-huatuo", "convert-medical-o1", "convert-clinic", "tiny-model", "recipes", "train",
    "predict",
    "predict-base", "eval", "compare", "safety", "export", "serve", "verify", "exam", "loadtest",
)  # fmt: skip


class DemoFailed(RuntimeError):
    """A stage failed; the message names it and carries its log's last lines."""


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    args: tuple[str, ...]  # after `medfactory`


@dataclass(frozen=True)
class Outputs:
    """Where the stages write, read from the checked-in recipes."""

    adapter: Path
    predictions: Path
    merged: Path
    template: str

    @classmethod
    def from_recipes(cls, root: Path) -> Outputs:
        train = read_recipe(root / RECIPES / "train_lora.yaml")
        predict = read_recipe(root / RECIPES / "predict_lora.yaml")
        export = read_recipe(root / RECIPES / "export_lora.yaml")
        return cls(
            adapter=Path(train["output_dir"]),
            predictions=Path(predict["output_dir"]) / "generated_predictions.jsonl",
            merged=Path(export["export_dir"]),
            template=str(train["template"]),
        )


def plan(port: int, sweep: str, duration: str, out: Outputs) -> list[Stage]:
    endpoint = f"http://127.0.0.1:{port}"
    return [
        Stage("convert-huatuo", "convert + register HuatuoGPT samples (ShareGPT)", (
            "data", "convert", "huatuo", f"{SAMPLES}/huatuo_sample.jsonl", "--format", "sharegpt",
            "--name", "huatuo_sample",
        )),
        Stage("convert-medical-o1", "convert + register medical-o1 samples (Alpaca, <think>)", (
            "data", "convert", "medical-o1", f"{SAMPLES}/medical_o1_sample.json",
            "--format", "alpaca", "--cot", "think", "--name", "medical_o1_sample",
        )),
        Stage("convert-clinic", "convert + de-identify a hospital table (GBK CSV, Presidio)", (
            "data", "convert", "table", f"{SAMPLES}/clinic_sample.csv", "--column",
            "question=患者提问", "--column", "answer=医生回答", "--format", "alpaca",
            "--name", "clinic_sample",
        )),
        Stage("tiny-model", "build the tiny model", ("dev", "tiny-model", TINY_MODEL)),
        Stage("recipes", "render and check the recipes", ("recipe", "check")),
        Stage("train", "LoRA training", ("train", f"{RECIPES}/train_lora.yaml")),
        Stage("predict", "predict on the test splits", ("predict", f"{RECIPES}/predict_lora.yaml")),
        Stage("predict-base", "predict with the base model (no adapter)", (
            "predict", f"{RECIPES}/predict_lora.yaml", "adapter_name_or_path=null",
            f"output_dir={BASE_PREDICT}",
        )),
        Stage("eval", "score BLEU-4 / ROUGE", ("eval", "predictions", str(out.predictions))),
        Stage("compare", "base against tuned, paired 95 % intervals", (
            "eval", "compare", f"{BASE_PREDICT}/generated_predictions.jsonl",
            str(out.predictions), "--names", "base,tuned", "--out", COMPARE_OUT,
        )),
        Stage("safety", "safety lint of the tuned answers", (
            "eval", "safety", str(out.predictions), "--out", SAFETY_OUT,
        )),
        Stage("export", "merge the LoRA adapter", ("export", f"{RECIPES}/export_lora.yaml")),
        # Eager: compiling the tiny model would take vLLM longer than the whole demo serves it.
        Stage("serve", f"serve with vLLM on {endpoint}", (
            "serve", "--model", str(out.merged), "--template", out.template, "--port", str(port),
            "--served-model-name", "tiny-lora", "--no-verify", "--enforce-eager",
        )),
        Stage("verify", "verify token parity with training", (
            "verify", "--endpoint", endpoint, "--model", str(out.merged),
            "--template", out.template, "--report", f"{DEMO_OUT}/verify.json",
        )),
        Stage("exam", "multiple-choice exam through EvalScope", (
            "eval", "exam", "--endpoint", endpoint, "--benchmark", EXAM_FILE,
            "--max-tokens", "32", "--out", EXAM_OUT,
        )),
        Stage("loadtest", f"load test ({sweep} users, {duration} each)", (
            "loadtest", "--endpoint", endpoint, "--dataset", LOADTEST_DATASET, "--sweep", sweep,
            "--duration", duration, "--max-tokens", "64", "--out", LOADTEST_OUT,
        )),
    ]  # fmt: skip


def run_demo(
    root: Path = paths.PROJECT_ROOT,
    port: int | None = None,
    sweep: str = "1,2,4",
    duration: str = "10s",
    start_at: str | None = None,
    only: tuple[str, ...] = (),
    keep_serving: bool = False,
    on_stage: Callable[[Stage, int, int], None] = lambda *_: None,
    on_done: Callable[[Stage, float], None] = lambda *_: None,
    echo: bool = False,
) -> dict | None:
    """Run the stages in order; return the summary (None with `only`).

    A server this run starts is stopped when the run ends -- whatever happens,
    unless `keep_serving` and every stage passed. `echo` also shows each
    stage's output as it runs.
    """
    out = Outputs.from_recipes(root)
    selected = select_stages(start_at, only)
    starts_server = "serve" in selected
    # A free port when this run starts the server; else the one it was started on.
    port = port or (free_port() if starts_server else DEFAULT_PORT)
    stages = [stage for stage in plan(port, sweep, duration, out) if stage.name in selected]
    if starts_server and port_in_use("127.0.0.1", port):
        raise DemoFailed(f"port {port} is already in use; pass another --port")
    logs = root / ".cache" / "demo" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.monotonic()
    serving, finished = False, False
    try:
        for number, stage in enumerate(stages, 1):
            on_stage(stage, number, len(stages))
            serving = serving or stage.name == "serve"
            log = logs / f"{STAGE_NAMES.index(stage.name) + 1:02d}-{stage.name}.log"
            timings[stage.name] = _run_stage(stage, root, log, echo=echo)
            on_done(stage, timings[stage.name])
        finished = True
    finally:
        if serving and not (keep_serving and finished):
            _run_stage(Stage("stop", "stop the server", ("serve", "stop", "--port", str(port))),
                       root, logs / "stop.log", check=False)  # fmt: skip
    if only:
        return None
    summary = collect(root, out)
    summary["endpoint"] = f"http://127.0.0.1:{port}"
    summary["stage_seconds"] = timings
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    summary["logs"] = str(logs.relative_to(root))
    path = root / DEMO_OUT / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    return summary


def select_stages(start_at: str | None = None, only: tuple[str, ...] = ()) -> list[str]:
    """Exactly the `only` stages, or the stages from `start_at` on -- with the server
    first when they talk to it; in pipeline order."""
    for name in (*only, *([start_at] if start_at else [])):
        if name not in STAGE_NAMES:
            raise DemoFailed(f"unknown stage {name!r}; the stages: {', '.join(STAGE_NAMES)}")
    if only:
        return [name for name in STAGE_NAMES if name in only]
    start = STAGE_NAMES.index(start_at) if start_at else 0
    serve = STAGE_NAMES.index("serve")
    # verify, exam and loadtest talk to the server this run starts.
    return (["serve"] if start > serve else []) + list(STAGE_NAMES[start:])


def _run_stage(
    stage: Stage, root: Path, log: Path, check: bool = True, echo: bool = False
) -> float:
    """One `medfactory` command in its own process group; on interrupt, stop that group."""
    begun = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "medfactory", *stage.args], cwd=root,
            stdout=subprocess.PIPE if echo else sink, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            while echo and (chunk := os.read(process.stdout.fileno(), 65536)):
                sink.write(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            code = process.wait()
        except BaseException:
            # SIGTERM lets the command unwind (stop a server it is starting) before SIGKILL.
            stop_group(process.pid, grace=30, reap=process.poll)
            raise
    if code != 0 and check:
        command = "medfactory " + " ".join(stage.args)
        raise DemoFailed(
            f"stage {stage.name!r} failed (exit {code}): {command}\n"
            f"last lines of {log}:\n{log_tail(log)}\n"
            f"Fix it, then resume with: medfactory demo --from {stage.name}"
        )
    return round(time.monotonic() - begun, 1)


def collect(root: Path, out: Outputs) -> dict:
    """The headline numbers, each read from the artefact that holds it."""
    data_dir = paths.dataset_dir()
    registry = read_registry(data_dir)

    def counts(name: str) -> dict:
        found = {}
        for split in SPLITS:
            found[split] = _count_lines(data_dir / registry[f"{name}_{split}"]["file_name"])
        rejects = data_dir / f"{name}.rejects.jsonl"
        found["rejected"] = _count_lines(rejects) if rejects.exists() else 0
        return found

    data = {name: counts(name) for name in DATASETS}
    audit = json.loads((data_dir / f"{CLINIC}.deid-audit.json").read_text(encoding="utf-8"))
    train = json.loads((root / out.adapter / "all_results.json").read_text())
    scores = json.loads((root / out.predictions).with_name("scores.json").read_text())
    compared = json.loads((root / COMPARE_OUT / "comparison.json").read_text())
    verify = json.loads((root / DEMO_OUT / "verify.json").read_text())
    safety = json.loads((root / SAFETY_OUT / "safety.json").read_text())
    exam = json.loads((root / EXAM_OUT / "exam.json").read_text())
    report = json.loads((root / LOADTEST_OUT / "report.json").read_text())
    levels = [
        {
            "users": level["users"],
            "completed": level["completed"],
            "failed": level["failed"],
            "request_throughput": level["request_throughput"],
            "output_throughput": level["output_throughput"],
            "ttft_ms_mean": (level.get("ttft_ms") or {}).get("mean"),
            "ttft_ms_p90": (level.get("ttft_ms") or {}).get("p90"),
            "tpot_ms_mean": (level.get("tpot_ms") or {}).get("mean"),
        }
        for level in report["levels"]
    ]
    return {
        "data": data,
        "deid": {"dataset": CLINIC, **counts(CLINIC), "replaced": audit["replaced"]},
        "train": {k: train.get(k) for k in ("train_loss", "eval_loss", "epoch", "train_runtime")},
        "eval": {m: scores[m] for m in METRICS} | {"samples": len(scores["per_sample"])},
        # base -> tuned on the same test samples, with the paired 95 % interval of the change
        "compare": {
            m: {k: d[k] for k in ("baseline", "candidate", "delta", "low", "high", "significant")}
            for m, d in compared["deltas"]["tuned"].items()
        },
        "verify": {k: verify[k] for k in ("passed", "prompts_identical", "prompts_compared")},
        "exam": {"benchmark": EXAM_FILE, "model": exam["model"], **exam["overall"]},
        "safety": {k: safety[k] for k in ("records", "flagged", "rate", "ci95")}
        | {"rules": {r["id"]: r["count"] for r in safety["rules"] if r["count"]}},
        "loadtest": levels,
        "artefacts": {
            "registry": _shown(data_dir / "dataset_info.json", root),
            "de-identification audit": _shown(data_dir / f"{CLINIC}.deid-audit.json", root),
            "LoRA adapter": str(out.adapter),
            "loss curve": str(out.adapter / "training_loss.png"),
            "predictions": str(out.predictions),
            "scores": str(out.predictions.with_name("scores.json")),
            "base predictions": f"{BASE_PREDICT}/generated_predictions.jsonl",
            "comparison": f"{COMPARE_OUT}/report.md",
            "merged model": str(out.merged),
            "verify report": f"{DEMO_OUT}/verify.json",
            "safety report": f"{SAFETY_OUT}/safety.json",
            "exam report": f"{EXAM_OUT}/exam.json",
            "load-test report": f"{LOADTEST_OUT}/report.md",
            "load-test plot": f"{LOADTEST_OUT}/loadtest.png",
            "summary": f"{DEMO_OUT}/summary.json",
        },
    }


def _shown(path: Path, root: Path) -> str:
    """`path` relative to the project when it lies inside it."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _count_lines(path: Path) -> int:
    """Records in a JSON-lines file (split files and rejects are written one per line)."""
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())
