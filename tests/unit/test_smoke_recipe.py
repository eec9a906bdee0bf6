"""The smoke run, the GPU tests and the memory benchmark train what `recipe render` writes."""

import pytest
import yaml

from medfactory import paths
from medfactory.dev.smoke import SMOKE_DATASET, smoke_recipe, write_alpaca_dataset
from medfactory.recipes.check import llamafactory_problems
from medfactory.recipes.render import render


@pytest.mark.parametrize(
    ("preset", "method"),
    [("tiny", "lora"), ("qwen2.5-7b-instruct", "qlora"), ("qwen2.5-1.5b-instruct", "full")],
)
def test_a_smoke_recipe_is_the_rendered_recipe_with_only_place_and_length_changed(
    tmp_path, monkeypatch, preset, method
):
    monkeypatch.chdir(paths.PROJECT_ROOT)  # where llamafactory-cli resolves the DeepSpeed config
    write_alpaca_dataset(tmp_path / "data", [("头痛怎么办？", "多休息。")])
    text = smoke_recipe(preset, method, tmp_path / "m", tmp_path / "data", tmp_path / "o", steps=3)
    ours = yaml.safe_load(text)
    registry = {f"{SMOKE_DATASET}_train": {}}
    rendered = yaml.safe_load(render(preset, method, "train", [SMOKE_DATASET], registry=registry))
    changed = {k for k in ours.keys() | rendered.keys() if ours.get(k) != rendered.get(k)}
    assert changed <= {
        "model_name_or_path", "dataset_dir", "output_dir", "max_steps", "logging_steps",
        "save_strategy", "overwrite_cache", "seed",
    }  # fmt: skip
    assert ours["dataset"] == f"{SMOKE_DATASET}_train" and ours["max_steps"] == 3
    if method != "full":
        assert ours["lora_alpha"] == 16 and ours["lora_dropout"] == 0.05
    if method == "qlora":
        assert ours["quantization_bit"] == 4 and ours["double_quantization"] is True
    if method == "full":
        assert ours["deepspeed"].endswith("ds_z3_config.json")
    assert llamafactory_problems(tmp_path / "smoke.yaml", ours) == []
