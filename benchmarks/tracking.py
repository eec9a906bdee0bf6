"""What recording adds to a command that records: `record_run` of a typical `train` run
(the tiny LoRA recipe, its two datasets, a loss curve and results) on the embedded SQLite
store, in a fresh process each time as a command runs, mlflow's import included.

- first run: the store does not exist yet (MLflow creates and migrates it);
- steady state: a store that already holds versions;
- preloaded: the same, with MLflow imported and the store opened in the background while
  the run trains (`medfactory.tracking.client.preload`, called as training starts), so
  only the recording's writes are left after it.

Goals (issue 28): under 0.2 s added to a command that records, and under 2 % added to
`make demo`. The demo's share is what its recording commands (train, predict, the base's
predict, export) add, preloaded, plus a new store's first run, over the demo's own time
from its last summary (saves/demo/summary.json; run `make demo` first to get it).

    python benchmarks/tracking.py [--repeat 5]      # needs `make data tiny-model` first
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".cache" / "bench" / "tracking"
RECIPE = REPO / "llamafactory_configs" / "tiny" / "train_lora.yaml"
GOAL_SECONDS = 0.2
DEMO_GOAL = 0.02  # of make demo's time
DEMO_SUMMARY = REPO / "saves" / "demo" / "summary.json"
RECORDING_STAGES = ("train", "predict", "predict-base", "export")  # the demo's that record

TRAINING_SECONDS = 5  # what stands in for the run when preloading: a tiny run takes longer

# Runs in a child: the time from importing the recorder (MLflow is imported when it
# records) to the version registered.
CHILD = """
import json, sys, time
from pathlib import Path
recipe, arguments, uri, preload = sys.argv[1:5]
recipe, arguments = Path(recipe), json.loads(arguments)
if float(preload):
    from medfactory.tracking.client import preload as start_preloading
    start_preloading(uri)
    time.sleep(float(preload))  # the run trains meanwhile
start = time.perf_counter()
from medfactory.tracking.record import record_run
from medfactory.tracking.settings import Tracking
recorded = record_run("train", recipe, arguments, Tracking(uri=uri, model_name="bench-tiny"))
print(time.perf_counter() - start)
assert recorded.version and not recorded.warnings, recorded
"""


def trained_folder(folder: Path, steps: int = 40, logging_steps: int = 5) -> Path:
    """What llamafactory-cli leaves in a LoRA output folder, as the files recording reads."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    rng = np.random.default_rng(0)
    save_file(
        {f"layer{i}.lora_A": rng.standard_normal((8, 128)).astype(np.float32) for i in range(14)},
        str(folder / "adapter_model.safetensors"),
    )
    history = [{"step": s, "loss": 3.0 / s**0.3, "learning_rate": 0.005, "grad_norm": 1.0}
               for s in range(logging_steps, steps + 1, logging_steps)]  # fmt: skip
    history.append({"step": steps, "eval_loss": 2.1})
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    results = {"train_loss": 1.9, "eval_loss": 2.1, "epoch": 1.0, "train_runtime": 30.0}
    (folder / "all_results.json").write_text(json.dumps(results))
    return folder


def record_once(arguments: dict, uri: str, preload: float = 0) -> float:
    reply = subprocess.run(
        [sys.executable, "-c", CHILD, str(RECIPE), json.dumps(arguments), uri, str(preload)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(reply.stdout.strip().splitlines()[-1])


def line(label: str, runs: list[float]) -> None:
    median = statistics.median(runs)
    print(
        f"{label:<22}{median:6.2f} s   (goal < {GOAL_SECONDS} s: ratio {median / GOAL_SECONDS:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="steady-state runs (median)")
    parser.add_argument("--first", type=int, default=2, help="runs on a new store (median)")
    options = parser.parse_args()

    arguments = yaml.safe_load(RECIPE.read_text())
    arguments["output_dir"] = str(trained_folder(WORK / "saves" / "sft"))
    store = WORK / "mlflow"
    uri = f"sqlite:///{store / 'mlflow.db'}"

    first = []
    for _ in range(options.first):
        shutil.rmtree(store, ignore_errors=True)
        first.append(record_once(arguments, uri))
    steady = [record_once(arguments, uri) for _ in range(options.repeat)]
    preloaded = [record_once(arguments, uri, TRAINING_SECONDS) for _ in range(options.repeat)]
    print(f"recording one `train` run ({RECIPE.relative_to(REPO)}), embedded SQLite store:")
    line("first run, new store", first)
    line("steady state", steady)
    line("steady, preloaded", preloaded)
    demo_share(statistics.median(first), statistics.median(preloaded))


def demo_share(first: float, preloaded: float) -> None:
    """Recording's share of `make demo`: its recording stages, preloaded, and the store's
    first run once, over the demo's total time."""
    if not DEMO_SUMMARY.is_file():
        print(f"share of make demo: no {DEMO_SUMMARY.relative_to(REPO)}; run `make demo` first")
        return
    summary = json.loads(DEMO_SUMMARY.read_text())
    stages = [name for name in RECORDING_STAGES if name in summary["stage_seconds"]]
    added = first + preloaded * (len(stages) - 1)
    share = added / summary["total_seconds"]
    print(
        f"share of make demo     {added:.2f} s of {summary['total_seconds']:.0f} s "
        f"({len(stages)} recording stages) = {100 * share:.2f} % "
        f"(goal < {100 * DEMO_GOAL:.0f} %: ratio {share / DEMO_GOAL:.2f})"
    )


if __name__ == "__main__":
    main()
