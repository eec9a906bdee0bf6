"""`medfactory vram`'s estimate against the GPU memory a real training run takes.

For each case, builds a random-weight model of a preset's architecture (the real
Qwen2.5 tokenizer, so prompts tokenise as in production), trains it a few steps
with `llamafactory-cli train` on records long enough to fill `cutoff_len`, and
samples `nvidia-smi` for the card's peak memory while it runs. Prints measured
vs estimated GiB and their ratio (goal: never below what the run took and at
most 15 % above, as tests/unit/test_vram.py checks), plus each case's wall time.

    python benchmarks/vram.py            # on a CUDA machine; prints why not elsewhere
    python benchmarks/vram.py --only qwen2.5-1.5b-instruct
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

from medfactory import paths
from medfactory.dev.smoke import smoke_recipe, write_alpaca_dataset
from medfactory.recipes.presets import get_preset
from medfactory.recipes.run import Distributed, run_recipe
from medfactory.recipes.vram import GIB, estimate

# (preset, method, micro-batch, cutoff_len)
CASES = [
    ("qwen2.5-1.5b-instruct", "lora", 1, 1024),
    ("qwen2.5-1.5b-instruct", "lora", 4, 2048),
    ("qwen2.5-1.5b-instruct", "full", 1, 1024),
    ("qwen2.5-7b-instruct", "lora", 1, 1024),
    ("qwen2.5-7b-instruct", "lora", 2, 2048),
    ("qwen2.5-7b-instruct", "qlora", 1, 1024),
    ("qwen2.5-7b-instruct", "qlora", 2, 2048),
]
STEPS = 4
WORK = paths.cache_dir() / "bench" / "vram"


def gpu_memory_used_mib() -> int:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.split()[0])


class PeakSampler(threading.Thread):
    """Polls the card's used memory every 100 ms; `peak` is the highest reading."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self._stop_event = 0, threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, gpu_memory_used_mib())
            time.sleep(0.1)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def build_random_model(preset: str, out_dir: Path) -> None:
    """The preset's architecture with random bf16 weights, built on the GPU."""
    if (out_dir / "config.json").is_file():
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    arch = get_preset(preset).architecture.model_dump(exclude_none=True)
    config = AutoConfig.for_model(arch.pop("model_type"), **arch, torch_dtype="bfloat16")
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(paths.tokenizer_dir()).save_pretrained(out_dir)
    del model
    torch.cuda.empty_cache()


def write_long_records(dataset_dir: Path, count: int, cutoff: int) -> None:
    """Alpaca records whose prompt and answer each run past cutoff_len tokens."""
    rng = random.Random(0)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]  # common CJK, ~1 token each
    text = lambda: "".join(rng.choices(chars, k=cutoff))  # noqa: E731
    write_alpaca_dataset(dataset_dir, [(text(), text()) for _ in range(count)])


def measure(preset: str, method: str, batch: int, cutoff: int) -> dict:
    model_dir = WORK / "models" / preset
    build_random_model(preset, model_dir)
    case = WORK / f"{preset}-{method}-b{batch}-s{cutoff}"
    shutil.rmtree(case, ignore_errors=True)
    write_long_records(case / "data", STEPS * batch, cutoff)
    # The recipe users run (`recipe render`: LoRA alpha and dropout, QLoRA's double
    # quantisation, ZeRO-3 for full), with this case's batch and length.
    recipe = smoke_recipe(
        preset, method, model_dir, case / "data", case / "out", steps=STEPS, cutoff_len=cutoff,
        per_device_train_batch_size=batch, gradient_accumulation_steps=1,
    )  # fmt: skip
    (case / "train.yaml").write_text(recipe)
    zero = 3 if "deepspeed:" in recipe else 0
    idle = gpu_memory_used_mib()
    sampler = PeakSampler()
    sampler.start()
    started = time.monotonic()
    try:
        # ZeRO-3 runs through torchrun, as `medfactory train --nproc N` starts it.
        run_recipe(
            "train", case / "train.yaml", log_path=case / "train.log", echo=False,
            distributed=Distributed(nproc=1) if zero else None,
        )  # fmt: skip
    finally:
        peak = sampler.stop()
    predicted = estimate(
        get_preset(preset).architecture, method, batch=batch, seq=cutoff, zero=zero
    )
    return {
        "case": f"{preset} {method} batch {batch} seq {cutoff}",
        "measured_gib": (peak - idle) * 2**20 / GIB,
        "estimated_gib": predicted.total / GIB,
        "wall_s": time.monotonic() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the cases of this preset")
    args = parser.parse_args()
    if (
        shutil.which("nvidia-smi") is None
        or subprocess.run(["nvidia-smi"], capture_output=True).returncode
    ):
        print("vram: needs a CUDA GPU (nvidia-smi finds none); nothing measured")
        return
    print(f"{'case':42} {'measured':>9} {'estimate':>9} {'est/meas':>8} {'wall':>6}")
    for preset, method, batch, cutoff in CASES:
        if args.only and preset != args.only:
            continue
        row = measure(preset, method, batch, cutoff)
        ratio = row["estimated_gib"] / row["measured_gib"]
        print(
            f"{row['case']:42} {row['measured_gib']:7.1f} G {row['estimated_gib']:7.1f} G "
            f"{ratio:8.2f} {row['wall_s']:5.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
