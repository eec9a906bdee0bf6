"""The tiny model through train -> predict -> export, from rendered recipes, on CPU, each
run recorded on MLflow: the adapter and the merged model are versions, the prediction's
scores attach to the adapter."""

import json
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open

from medfactory.evaluation.scoring import score_predictions
from medfactory.recipes.render import render
from medfactory.recipes.run import CommandFailed, run_and_record, run_recipe
from medfactory.tracking.client import open_client
from medfactory.tracking.lineage import lineage
from medfactory.tracking.settings import Tracking
from medfactory.tracking.versions import show_version

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


def test_train_predict_export(tiny_model, data_dir, tmp_path):
    sft, predict, merged = tmp_path / "sft", tmp_path / "predict", tmp_path / "merged"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = Tracking(uri=uri, model_name="tiny-it")
    train_args = {
        "output_dir": str(sft),
        "max_samples": 8,
        "eval_strategy": "no",
        "save_steps": 1000,
    }
    trained = run_and_record(
        "train", recipe(tmp_path, "train", data_dir, tiny_model, **train_args), tracking=tracking
    )
    assert "Tokenized dataset is saved at" in trained.log.read_text()
    assert trained.recorded.version == "tiny-it@1" and trained.warnings == []
    losses = [json.loads(x)["loss"] for x in (sft / "trainer_log.jsonl").open() if '"loss"' in x]
    assert len(losses) >= 2 and all(0 < loss < 20 for loss in losses)
    with safe_open(sft / "adapter_model.safetensors", "pt") as adapter:
        assert any(adapter.get_tensor(k).abs().sum() > 0 for k in adapter.keys() if "lora_B" in k)  # noqa: SIM118

    # The same data again: the tokenized dataset is reused, not rebuilt (one step shows it).
    again = {**train_args, "output_dir": str(tmp_path / "again"), "max_steps": 1}
    log = run_recipe("train", recipe(tmp_path, "train", data_dir, tiny_model, **again), echo=False)
    assert "Loaded tokenized dataset from" in log.read_text()

    predict_args = {"adapter_name_or_path": str(sft), "output_dir": str(predict), "max_samples": 6}
    predicted = run_and_record(
        "train", recipe(tmp_path, "predict", data_dir, tiny_model, **predict_args),
        tracking=tracking,
    )  # fmt: skip
    assert predicted.recorded.version is None and predicted.recorded.evaluated == "tiny-it@1"
    rows = [json.loads(x) for x in (predict / "generated_predictions.jsonl").open()]
    assert len(rows) == 12  # 6 from each test split
    assert all(set(r) >= {"prompt", "predict", "label"} and r["label"] for r in rows)
    scores = json.loads((predict / "predict_results.json").read_text())
    # Our scoring of LLaMA-Factory's predictions gives LLaMA-Factory's own numbers.
    ours = score_predictions(predict / "generated_predictions.jsonl", workers=1)
    for metric in ("bleu-4", "rouge-1", "rouge-2", "rouge-l"):
        assert ours[metric] == pytest.approx(scores[f"predict_{metric}"], abs=1e-9)

    export_args = {"adapter_name_or_path": str(sft), "export_dir": str(merged)}
    exported = run_and_record(
        "export", recipe(tmp_path, "export", data_dir, tiny_model, **export_args),
        tracking=tracking,
    )  # fmt: skip
    assert exported.recorded.version == "tiny-it@2"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(merged)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "头痛怎么办？"}], add_generation_prompt=True, return_dict=True,
        return_tensors="pt",
    )  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5

    # The versions: the merged model's parent is the adapter, whose lineage names its data
    # and base, and which carries the prediction's scores.
    client = open_client(uri)
    adapter = show_version(client, str(sft), uri)
    assert adapter["stage"] == "sft" and adapter["parent"] is None
    assert adapter["scores"]["predict.bleu-4"] == pytest.approx(scores["predict_bleu-4"])
    assert show_version(client, "tiny-it@2", uri)["parent"]["version"] == "tiny-it@1"
    tree = lineage(client, "tiny-it@2", uri)
    assert tree["parent"]["base_model"]["path"] == str(tiny_model.resolve())
    used = {d["name"]: (d["context"], d["now"]) for d in tree["parent"]["datasets"]}
    assert used == {f"{d}_{split}": (context, "same") for d in DATA
                    for split, context in (("train", "train"), ("val", "eval"))}  # fmt: skip


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
