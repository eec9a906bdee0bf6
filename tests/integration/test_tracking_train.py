"""A real `medfactory train` on the tiny model records its run and registers a version;
`medfactory models lineage` then traces it to the data it learnt from."""

import json
import subprocess
import sys

from review_helpers import REPO


def test_a_tiny_training_run_is_a_version_whose_lineage_names_its_data(
    tiny_model, data_dir, tmp_path
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "saves" / "sft"
    overrides = [
        f"model_name_or_path={tiny_model}", f"dataset_dir={data_dir}", f"output_dir={out}",
        "dataset=huatuo_sample_train", "eval_dataset=null", "eval_strategy=no", "max_samples=4",
        "num_train_epochs=1.0", "logging_steps=1", "save_steps=1000",
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "medfactory", "train", "llamafactory_configs/tiny/train_lora.yaml",
         "--tracking-uri", uri, "--model-name", "tiny-it", *overrides],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "model version tiny-it@1" in run.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "medfactory", "models", "lineage", str(out), "--json",
         "--tracking-uri", uri],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    tree = json.loads(shown.stdout)
    assert tree["version"] == "tiny-it@1" and tree["stage"] == "sft"
    [dataset] = tree["datasets"]
    assert dataset["name"] == "huatuo_sample_train" and dataset["now"] == "same"
    assert tree["base_model"]["path"] == str(tiny_model.resolve())
