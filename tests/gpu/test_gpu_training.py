"""On a CUDA machine: the same LoRA run, on the GPU in bf16."""

import json

from medfactory.dev.smoke import read_losses, smoke_recipe, write_smoke_dataset
from medfactory.recipes.run import run_recipe


def test_lora_trains_on_the_gpu_in_bf16(tiny_model, fixtures_dir, tmp_path):
    write_smoke_dataset(
        tmp_path / "data", fixtures_dir / "medical_o1" / "medical_o1_sft_en_first2.json"
    )
    recipe = smoke_recipe(
        "tiny", "lora", tiny_model, tmp_path / "data", tmp_path / "lora", steps=5, bf16=True
    )
    (tmp_path / "train.yaml").write_text(recipe)
    run_recipe("train", tmp_path / "train.yaml", log_path=tmp_path / "train.log", echo=False)
    log = (tmp_path / "train.log").read_text()
    assert "device: cuda" in log and "compute dtype: torch.bfloat16" in log
    assert len(read_losses(tmp_path / "lora")) == 5
    assert json.loads((tmp_path / "lora" / "adapter_config.json").read_text())["r"] == 8
