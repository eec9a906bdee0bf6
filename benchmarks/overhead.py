"""What medfactory adds on top of llamafactory-cli, on the tiny model.

Prints: `medfactory train RECIPE` vs `llamafactory-cli train RECIPE` wall time
(goal: <= 5 % overhead), `medfactory --help` vs `llamafactory-cli version`
start-up (goal: <= 0.5 s), and the time the tokenized-dataset cache saves on a
second `medfactory train` of the same recipe.

    python benchmarks/overhead.py      # needs `make data tiny-model` first
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RECIPE = REPO / "llamafactory_configs" / "tiny" / "train_lora.yaml"
# The same short run for both; no eval, no checkpoint, fresh tokenisation unless cached.
RUN = [
    "max_samples=16",
    "eval_strategy='no'",
    "save_steps=1000",
    "output_dir=.cache/bench/overhead",
]


def timed(argv: list[str], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    medfactory, llamafactory = str(VENV_BIN / "medfactory"), str(VENV_BIN / "llamafactory-cli")
    help_time = timed([medfactory, "--help"], repeat=5)
    version_time = timed([llamafactory, "version"], repeat=3)
    print(f"medfactory --help         {help_time:6.2f} s   (goal <= 0.5 s)")
    print(
        f"llamafactory-cli version  {version_time:6.2f} s   (ratio {help_time / version_time:.2f})"
    )

    cache = REPO / ".cache" / "tokenized"
    shutil.rmtree(cache, ignore_errors=True)
    ours_cold = timed([medfactory, "train", str(RECIPE), *RUN])
    ours_warm = timed([medfactory, "train", str(RECIPE), *RUN])
    theirs = timed([llamafactory, "train", str(RECIPE), *RUN, "overwrite_cache=true"])
    print(f"llamafactory-cli train    {theirs:6.1f} s   (tokenises every run)")
    overhead = ours_cold / theirs - 1
    print(f"medfactory train, cold    {ours_cold:6.1f} s   overhead {overhead:+.1%} (goal <= 5 %)")
    print(f"medfactory train, cached  {ours_warm:6.1f} s   saves {ours_cold - ours_warm:.1f} s")


if __name__ == "__main__":
    main()
