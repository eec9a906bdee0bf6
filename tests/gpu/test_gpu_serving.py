"""On a CUDA machine: serve with the GPU build of vLLM, verify parity, serve a LoRA adapter."""

import json
import os
import subprocess
from pathlib import Path

from deploy.process import free_port, group_alive
from medfactory.dev.smoke import smoke_recipe, write_smoke_dataset
from medfactory.recipes.run import run_recipe

REPO = Path(__file__).resolve().parents[2]


def medfactory(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDFACTORY_CACHE": str(state)}
    return subprocess.run(
        [str(REPO / ".venv/bin/medfactory"), *args], capture_output=True, text=True, env=env,
        cwd=REPO, timeout=900,
    )  # fmt: skip


def test_vllm_on_the_gpu_serves_a_lora_adapter_with_the_training_template(
    tiny_model, fixtures_dir, tmp_path
):
    data = tmp_path / "data"
    write_smoke_dataset(data, fixtures_dir / "medical_o1" / "medical_o1_sft_en_first2.json")
    recipe = smoke_recipe("tiny", "lora", tiny_model, data, tmp_path / "lora", steps=2, bf16=True)
    (tmp_path / "train.yaml").write_text(recipe)
    run_recipe("train", tmp_path / "train.yaml", log_path=tmp_path / "train.log", echo=False)

    port = free_port()
    serve = medfactory(
        tmp_path, "serve", "--model", str(tiny_model), "--adapter", str(tmp_path / "lora"),
        "--template", "qwen", "--port", str(port), "--served-model-name", "tiny",
        "--gpu-memory-utilization", "0.3", "--max-model-len", "2048",
    )  # fmt: skip
    assert serve.returncode == 0, serve.stdout + serve.stderr
    record = json.loads((tmp_path / "serve" / f"{port}.json").read_text())
    try:
        assert "verify: PASS -- 5/5" in serve.stdout
        log = Path(record["log"]).read_text()
        assert "cuda" in log.lower()
        models = subprocess.run(
            ["curl", "-s", f"http://127.0.0.1:{port}/v1/models"], capture_output=True, text=True
        ).stdout
        assert [m["id"] for m in json.loads(models)["data"]] == ["tiny", "tiny-lora"]
    finally:
        medfactory(tmp_path, "serve", "stop", "--port", str(port))
    assert not group_alive(record["pid"])
