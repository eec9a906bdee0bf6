"""Rendered recipes run on CPU: a failing run, a misspelled key, two nodes through
LLaMA-Factory's torchrun path. (train -> predict -> export itself runs in the demo's
test, tests/integration/test_demo.py.)"""

import json
import shutil
from pathlib import Path

import pytest

from medfactory.recipes.render import render
from medfactory.recipes.run import CommandFailed, run_recipe

REPO = Path(__file__).resolve().parents[2]
DATA = ["huatuo_sample", "medical_o1_sample"]


def recipe(tmp_path, stage, data_dir, tiny_model, **overrides) -> Path:
    registry = json.loads((data_dir / "dataset_info.json").read_text())
    base = {"model_name_or_path": str(tiny_model)}
    if stage in ("train", "predict"):
        base["dataset_dir"] = str(data_dir)
    text = render("tiny", "lora", stage, DATA, {**base, **overrides}, registry=registry)
    path = tmp_path / f"{stage}.yaml"
    path.write_text(text)
    return path


def test_a_failing_run_shows_the_log_tail_and_the_recipe(tiny_model, data_dir, tmp_path):
    # Valid arguments and registered datasets (the pre-flight checks pass), but a dataset
    # whose file is gone: only LLaMA-Factory finds out.
    data = shutil.copytree(data_dir, tmp_path / "data")
    registry = json.loads((data / "dataset_info.json").read_text())
    gone = registry["huatuo_sample_train"]["file_name"]
    (data / gone).unlink()
    path = recipe(tmp_path, "train", data, tiny_model, output_dir=str(tmp_path / "o"))
    with pytest.raises(CommandFailed) as error:
        run_recipe("train", path, echo=False)
    message = str(error.value)
    assert str(path) in message and "exit 1" in message
    assert gone in message  # LLaMA-Factory's own complaint, from the log


def test_a_misspelled_key_stops_before_llamafactory_starts(tiny_model, data_dir, tmp_path):
    path = recipe(tmp_path, "train", data_dir, tiny_model, output_dir=str(tmp_path / "o"))
    path.write_text(path.read_text().replace("lora_rank:", "lora_rnak:"))
    log = tmp_path / "train.log"
    with pytest.raises(
        CommandFailed, match=r"unknown key 'lora_rnak' \(did you mean 'lora_rank'\?\)"
    ):
        run_recipe("train", path, echo=False, log_path=log)
    assert not log.exists() and not (tmp_path / "o").exists()  # nothing ran


def test_two_nodes_train_through_llamafactorys_torchrun_path(tiny_model, data_dir, tmp_path):
    """Two 'nodes' on loopback, one process each: NNODES, NODE_RANK, MASTER_* for real."""
    import threading

    from deploy.process import free_port
    from medfactory.recipes.run import Distributed

    args = {"output_dir": str(tmp_path / "ddp"), "max_samples": 8, "eval_strategy": "no"}
    path = recipe(tmp_path, "train", data_dir, tiny_model, save_steps=1000, **args)
    port = free_port()
    logs, errors = {}, []

    def node(rank: int) -> None:
        try:
            dist = Distributed(nproc=1, nnodes=2, node_rank=rank, master_port=port)
            logs[rank] = run_recipe(
                "train", path, distributed=dist, log_path=tmp_path / f"n{rank}.log", echo=False
            )
        except Exception as error:  # reported below, from the main thread
            errors.append(error)

    threads = [threading.Thread(target=node, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    for rank in (0, 1):
        text = logs[rank].read_text()
        assert f"Multi-node training enabled: num nodes: 2, node rank: {rank}" in text
        assert f"Process rank: {rank}, world size: 2" in text
        assert "distributed training: True" in text
    assert (tmp_path / "ddp" / "adapter_model.safetensors").is_file()
