"""`medfactory demo` end to end: every number of its summary comes from the artefacts."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deploy import instances
from deploy.process import free_port, port_in_use
from medfactory import paths

REPO = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "medfactory", "demo", "--sweep", "1,2", "--duration", "5s"]


def count_lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def project_copy(folder: Path) -> Path:
    """The project's files (tracked, or new and not ignored) copied into `folder`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """A copy of the project: the demo writes its data, saves and cache there, not here."""
    return project_copy(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="module")
def env(copy) -> dict:
    """The copy runs on this checkout's environments and shared fixtures."""
    environment = {
        **os.environ, "COLUMNS": "200", "MEDFACTORY_HOME": str(copy), "MLFLOW_TRACKING_URI": "",
        "MEDFACTORY_VENV": str(paths.train_venv()), "MEDFACTORY_VLLM_VENV": str(paths.vllm_venv()),
        "MEDFACTORY_FIXTURES": str(paths.fixtures_dir()),
        "MEDFACTORY_TRACKING": "on",  # the demo records, into the copy's saves/mlflow
    }  # fmt: skip
    del environment["MLFLOW_TRACKING_URI"]  # never a store outside the copy
    return environment


@pytest.fixture(scope="module")
def demo(copy, env):
    """The demo as `make demo` runs it (a shorter load test), in a copy of the project."""
    before = {p: p.stat().st_mtime for p in (REPO / "dataset_info").iterdir()}
    run = subprocess.run(DEMO, cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {p: p.stat().st_mtime for p in (REPO / "dataset_info").iterdir()} == before
    summary = json.loads((copy / "saves/demo/summary.json").read_text())
    return summary, run.stdout


def test_demo_summary_matches_the_artefacts(demo, copy):
    summary, table = demo

    registry = json.loads((copy / "dataset_info/dataset_info.json").read_text())
    for name, counts in summary["data"].items():
        for split in ("train", "val", "test"):
            written = count_lines(copy / "dataset_info" / registry[f"{name}_{split}"]["file_name"])
            assert counts[split] == written > 0
        assert counts["rejected"] == count_lines(copy / f"dataset_info/{name}.rejects.jsonl")
        assert f"train {counts['train']}  val {counts['val']}  test {counts['test']}" in table

    # The hospital table: converted, registered, and what de-identification replaced.
    deid = summary["deid"]
    audit = json.loads((copy / "dataset_info/clinic_sample.deid-audit.json").read_text())
    assert deid["replaced"] == audit["replaced"] and audit["deid"] == "strict"
    assert deid["replaced"]["name"] > 0 and deid["replaced"]["record_no"] > 0
    for split in ("train", "val", "test"):
        written = count_lines(copy / f"dataset_info/clinic_sample_{split}.jsonl")
        assert deid[split] == written > 0
    assert "replaced: " + "  ".join(f"{k} {n}" for k, n in audit["replaced"].items()) in table

    train = json.loads((copy / "saves/tiny/lora/sft/all_results.json").read_text())
    assert summary["train"]["train_loss"] == train["train_loss"] > 0
    assert summary["train"]["eval_loss"] == train["eval_loss"]
    assert f"{train['train_loss']:.4f}" in table

    # Our scores, and LLaMA-Factory's own for the same predictions, agree.
    predict = copy / "saves/tiny/lora/predict"
    ours = json.loads((predict / "scores.json").read_text())
    theirs = json.loads((predict / "predict_results.json").read_text())
    rows = count_lines(predict / "generated_predictions.jsonl")
    assert summary["eval"]["samples"] == rows == len(ours["per_sample"])
    for metric in ("bleu-4", "rouge-1", "rouge-2", "rouge-l"):
        assert summary["eval"][metric] == ours[metric]
        assert round(ours[metric], 4) == pytest.approx(theirs[f"predict_{metric}"], abs=1e-4)
    data_rows = sum(counts["test"] for counts in summary["data"].values())
    assert rows == data_rows  # every test record was predicted

    # The fine-tune beats its own base on the held-out test split, significantly.
    base_rows = count_lines(copy / "saves/tiny/base/predict/generated_predictions.jsonl")
    assert base_rows == rows
    compared = json.loads((copy / "saves/demo/compare/comparison.json").read_text())
    assert compared["baseline"] == "base" and compared["samples"] == rows
    for metric, change in summary["compare"].items():
        written = compared["deltas"]["tuned"][metric]
        assert change == {k: written[k] for k in change}
        assert change["candidate"] == pytest.approx(ours[metric])
        assert f"{change['baseline']:.2f} -> {change['candidate']:.2f}" in table
    for metric in ("bleu-4", "rouge-l"):
        assert summary["compare"][metric]["low"] > 0 and summary["compare"][metric]["significant"]
    curve = copy / summary["artefacts"]["loss curve"]
    assert curve.read_bytes()[:4] == b"\x89PNG" and curve.stat().st_size > 10_000

    verify = json.loads((copy / "saves/demo/verify.json").read_text())
    assert summary["verify"]["passed"] is verify["passed"] is True
    assert verify["prompts_identical"] == verify["prompts_compared"] == 5
    assert "PASS: 5/5 served prompts identical" in table

    # The exam through EvalScope on the bundled file, and the safety lint of the answers.
    exam = json.loads((copy / "saves/demo/exam/exam.json").read_text())
    assert exam["model"] == "tiny-lora" and exam["overall"]["questions"] == 24
    assert summary["exam"]["correct"] == sum(q["correct"] for q in exam["per_question"])
    assert summary["exam"]["accuracy"] == exam["overall"]["accuracy"]
    assert f"({summary['exam']['correct']}/24 questions" in table
    safety = json.loads((copy / "saves/demo/safety/safety.json").read_text())
    assert summary["safety"]["records"] == safety["records"] == rows
    assert summary["safety"]["flagged"] == safety["flagged"]
    assert f"{safety['flagged']}/{rows} answers break a rule" in table

    report = json.loads((copy / "saves/loadtest/report.json").read_text())
    assert [level["users"] for level in summary["loadtest"]] == [1, 2]
    for mine, level in zip(summary["loadtest"], report["levels"], strict=True):
        assert mine["completed"] == level["completed"] > 0 and mine["failed"] == 0
        assert mine["ttft_ms_mean"] == level["ttft_ms"]["mean"]
        assert mine["tpot_ms_mean"] == level["tpot_ms"]["mean"]
        assert mine["output_throughput"] == level["output_throughput"]
        assert f"{mine['output_throughput']:.0f} tok/s" in table

    merged = copy / summary["artefacts"]["merged model"]
    assert json.loads((merged / "config.json").read_text())["model_type"] == "qwen2"
    assert (copy / summary["artefacts"]["load-test plot"]).read_bytes()[:4] == b"\x89PNG"
    for path in summary["artefacts"].values():
        assert path in table


def test_demo_leaves_no_server_running(demo, copy):
    summary, _ = demo
    port = int(summary["endpoint"].rsplit(":", 1)[1])
    assert not port_in_use("127.0.0.1", port)
    assert all(i.port != port for i in instances.running(copy / ".cache" / "serve"))


@pytest.mark.parametrize("hangup", [False, True], ids=["ctrl-c", "terminal-closed"])
def test_an_interrupt_while_serving_stops_everything(demo, copy, env, hangup):
    # The demo's own server: this test interrupts the demo while it starts it.
    port = free_port()
    process = subprocess.Popen(
        [*DEMO, "--from", "serve", "--port", str(port)], cwd=copy, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    demo_process = psutil.Process(process.pid)
    deadline = time.monotonic() + 120
    while not any("vllm.entrypoints" in _cmdline(p) for p in _tree(demo_process)):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    time.sleep(3)  # the server is loading: the hardest moment to stop it
    started = _tree(demo_process)

    process.send_signal(signal.SIGHUP if hangup else signal.SIGINT)
    _, err = process.communicate(timeout=90)
    assert process.returncode == (129 if hangup else 130), err
    assert hangup or "interrupted: stopped the running stage and the server" in err
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [_cmdline(p) for p in alive]
    assert not port_in_use("127.0.0.1", port)


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie, meanwhile
        return ""


def test_the_demo_records_its_versions_and_their_lineage(demo, copy, env):
    """train and export are MLflow runs with registered versions: the merged model's parent
    is the adapter, and the adapter's lineage reaches the converted data's source files."""

    def models(*args):
        shown = subprocess.run([sys.executable, "-m", "medfactory", "models", *args, "--json"],
                               cwd=copy, env=env, capture_output=True, text=True)  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)

    assert (copy / "saves/mlflow/mlflow.db").is_file()
    versions = models("list")
    assert len(versions) == 2, versions
    adapter = models("lineage", "saves/tiny/lora/sft")
    merged = models("show", "saves/tiny/lora/merged")
    assert merged["parent"]["version"] == adapter["version"]
    sources = [s for d in adapter["datasets"] for s in d.get("sources", [])]
    assert sources and all(len(s["sha256"]) == 64 for s in sources)
    assert {d["context"] for d in adapter["datasets"]} == {"train", "eval"}
    # The tuned predictions' scores are attached to the adapter they came from.
    theirs = json.loads((copy / "saves/tiny/lora/predict/predict_results.json").read_text())
    scores = models("show", "saves/tiny/lora/sft")["scores"]
    assert scores["predict.bleu-4"] == pytest.approx(theirs["predict_bleu-4"])


def test_the_demo_adapter_learnt_and_its_merge_keeps_no_lora(demo, copy):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with safe_open(copy / "saves/tiny/lora/sft/adapter_model.safetensors", "pt") as adapter:
        assert any(adapter.get_tensor(k).abs().sum() > 0 for k in adapter.keys() if "lora_B" in k)  # noqa: SIM118
    merged = copy / "saves/tiny/lora/merged"
    model = AutoModelForCausalLM.from_pretrained(merged)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "头痛怎么办？"}], add_generation_prompt=True, return_dict=True,
        return_tensors="pt",
    )  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5


def test_training_again_on_the_same_data_reuses_the_tokenized_dataset(demo, copy, env):
    again = subprocess.run(
        [sys.executable, "-m", "medfactory", "train", "llamafactory_configs/tiny/train_lora.yaml",
         "--no-tracking", "max_steps=1", "output_dir=saves/tiny/again"],
        cwd=copy, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "Loaded tokenized dataset from" in again.stdout + again.stderr
