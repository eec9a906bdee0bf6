"""Model versions on an MLflow tracking server backed by PostgreSQL (a team's setup): an SFT
run and a DPO run on its adapter recorded through the server, then `models list`, `show`,
`lineage` and `promote` against it; MLflow's own UI in Chromium shows the registered
model and its versions; `medfactory models ui` serves the embedded store until Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
import yaml
from click.testing import CliRunner
from review_helpers import REPO
from safetensors.numpy import save_file
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from converters.registry import conversion_manifest, file_sha256, register
from deploy.process import free_port, port_in_use
from medfactory import paths
from medfactory.cli import cli
from medfactory.exports import Example, Export, write_export
from medfactory.tracking.record import record_run
from medfactory.tracking.settings import Tracking
from medfactory.tracking.ui import start_server, stop_server

SCREENSHOT = paths.cache_dir() / "mlflow" / "model.png"  # the README's docs/mlflow-model.png
ALPACA = {"formatting": "alpaca", "columns": {"prompt": "instruction", "response": "output"}}
MODEL = "huatuo-tiny"


@pytest.fixture(scope="module")
def mlflow_server(postgres_server, tmp_path_factory):
    """`mlflow server` from .venv on a new PostgreSQL database, artifacts proxied into a
    folder of its own; its address."""
    database = f"mlflow_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {database}")
    # psycopg (3) is the driver installed; SQLAlchemy's bare postgresql:// means psycopg2.
    store = f"{postgres_server.replace('postgresql://', 'postgresql+psycopg://')}/{database}"
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    process = start_server(store, "127.0.0.1", port, folder / "server.log", folder / "artifacts")
    try:
        yield {"uri": f"http://127.0.0.1:{port}", "database": f"{postgres_server}/{database}",
               "artifacts": folder / "artifacts"}  # fmt: skip
    finally:
        stop_server(process)


def weights(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    save_file({"w": rng.standard_normal((4, 4)).astype(np.float32)}, str(path))


def trained_folder(folder: Path, base: Path, eval_loss: float) -> Path:
    """What llamafactory-cli leaves in a LoRA output folder, as files: no training here."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    weights(folder / "adapter_model.safetensors", 1)
    history = [{"step": 5 * (i + 1), "loss": loss} for i, loss in enumerate((2.0, 1.5, 1.2))]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    (folder / "all_results.json").write_text(
        json.dumps({"train_loss": 1.2, "eval_loss": eval_loss})
    )
    return folder


def record(root: Path, name: str, arguments: dict, uri: str):
    recipe = root / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(arguments))
    return record_run("train", recipe, arguments, Tracking(uri=uri, model_name=MODEL))


@pytest.fixture(scope="module")
def recorded(mlflow_server, tmp_path_factory):
    """A converted dataset with its source file, an SFT run on it, a review export with
    its raters, and a DPO run on the SFT adapter, recorded through the server."""
    root, uri = tmp_path_factory.mktemp("tracked"), mlflow_server["uri"]
    base = root / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 4}))
    weights(base / "model.safetensors", 0)
    data, source = root / "data", root / "raw" / "huatuo.jsonl"
    data.mkdir()
    source.parent.mkdir()
    source.write_text('{"questions": [["头痛"]], "answers": ["请就医"]}\n' * 3)
    (data / "qa_train.jsonl").write_text('{"instruction": "头痛", "output": "请就医"}\n' * 3)
    summary = {"read": 3, "written": {"train": 3}, "rejected": {}, "deid": "basic", "files": {}}
    manifest = conversion_manifest("huatuo", [source], {"seed": 42}, summary)
    register(data, {"qa_train": {"file_name": "qa_train.jsonl", **ALPACA}},
             describe=lambda _: manifest)  # fmt: skip
    sft_dir = trained_folder(root / "saves" / "sft", base, eval_loss=1.3)
    sft_args = {"model_name_or_path": str(base), "stage": "sft", "do_train": True,
                "finetuning_type": "lora", "dataset": "qa_train", "dataset_dir": str(data),
                "output_dir": str(sft_dir)}  # fmt: skip
    sft = record(root, "sft", sft_args, uri)

    export = Export(source="review r1", read=2)
    for i, verdict in enumerate(("left", "right")):
        export.examples["dpo"].append(Example(
            "", [], f"胸痛{i}怎么办", chosen="请立即就医", rejected="多喝水",
            provenance={"study": "r1", "item": i + 1, "raters": ["dr.wang", "dr.zhao"],
                        "arbiter": "dr.li" if i else None, "verdict": verdict,
                        "time": "2026-12-01T10:00:00"},
        ))  # fmt: skip
    write_export(export, data, "r1", split=(1.0,))
    dpo_dir = trained_folder(root / "saves" / "dpo", base, eval_loss=1.1)
    dpo_args = {**sft_args, "stage": "dpo", "dataset": "r1_dpo_train",
                "adapter_name_or_path": str(sft_dir), "output_dir": str(dpo_dir)}  # fmt: skip
    dpo = record(root, "dpo", dpo_args, uri)
    return {"sft": sft, "dpo": dpo, "dpo_dir": dpo_dir, "source": source}


def medfactory(*argv: str) -> str:
    run = CliRunner().invoke(cli, list(argv))
    assert run.exit_code == 0, run.output
    return run.output


def test_versions_recorded_through_a_server_over_postgresql_list_show_trace_and_promote(
    mlflow_server, recorded
):
    uri = mlflow_server["uri"]
    assert (recorded["sft"].uri, recorded["sft"].version) == (uri, f"{MODEL}@1")
    assert recorded["dpo"].version == f"{MODEL}@2" and recorded["dpo"].warnings == []

    rows = json.loads(medfactory("models", "list", "--json", "--tracking-uri", uri))
    parents = {r["version"]: r["parent"] for r in rows if r["name"] == MODEL}
    assert parents == {1: "", 2: f"{MODEL}@1"}
    shown = json.loads(medfactory("models", "show", f"{MODEL}@2", "--json", "--tracking-uri", uri))
    assert shown["parent"]["version"] == f"{MODEL}@1"
    assert shown["scores"]["eval_loss"] == pytest.approx(1.1)
    assert shown["parent"]["scores"]["eval_loss"] == pytest.approx(1.3)
    assert shown["recipe"]["arguments"]["stage"] == "dpo"  # an artifact read back through it

    tree = json.loads(medfactory("models", "lineage", str(recorded["dpo_dir"]), "--json",
                                 "--tracking-uri", uri))  # fmt: skip
    [dataset] = tree["datasets"]
    assert dataset["origin"] == {"study": "r1"}
    assert dataset["people"] == {"raters": ["dr.wang", "dr.zhao"], "arbiters": ["dr.li"]}
    [source] = tree["parent"]["datasets"][0]["sources"]
    assert source["sha256"] == file_sha256(recorded["source"]) and source["now"] == "same"

    said = medfactory("models", "promote", f"{MODEL}@2", "--alias", "production",
                      "--by", "dr.li", "--tracking-uri", uri)  # fmt: skip
    assert said.startswith(f"{MODEL}@2 is now production; by dr.li at ")
    shown = json.loads(
        medfactory("models", "show", f"{MODEL}@production", "--json", "--tracking-uri", uri)
    )
    assert shown["version"] == f"{MODEL}@2" and shown["aliases"] == ["production"]

    # The server kept the registry in PostgreSQL and the artifacts in its destination.
    with psycopg.connect(mlflow_server["database"]) as connection:
        versions = connection.execute(
            "SELECT version FROM model_versions WHERE name = %s ORDER BY version", (MODEL,)
        ).fetchall()
        aliases = connection.execute("SELECT alias, version FROM registered_model_aliases")
        assert versions == [(1,), (2,)] and aliases.fetchall() == [("production", 2)]
    assert len(list(mlflow_server["artifacts"].rglob("recipe_resolved.yaml"))) == 2


def test_mlflow_ui_in_chromium_shows_the_registered_model_and_its_versions(
    mlflow_server, recorded, browser
):
    browser.set_window_size(1400, 1350)  # the model, its tags and both versions
    browser.get(f"{mlflow_server['uri']}/#/models/{MODEL}")
    # The React app renders after its scripts load and the registry answers.
    WebDriverWait(browser, 60).until(
        lambda b: all(
            re.search(rf"\bVersion {n}\b", b.find_element(By.TAG_NAME, "body").text) for n in (1, 2)
        )
    )
    text = browser.find_element(By.TAG_NAME, "body").text
    assert MODEL in text
    # The versions' lineage tags: version 2's parent, both outputs and their base model.
    for tag in ("parent", f"{MODEL}@1", str(recorded["dpo_dir"].resolve()), "base_model"):
        assert tag in text, tag

    browser.implicitly_wait(0)  # MLflow's assistant panel may be absent: no waiting for it
    for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
        close.click()  # it covers a third of the page
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 20_000


def test_models_ui_serves_the_store_until_ctrl_c(tmp_path):
    """`medfactory models ui` on an embedded store: the URL printed, the registry served,
    and Ctrl-C stops the server it started."""
    store = tmp_path / "mlflow" / "mlflow.db"
    arguments = {"model_name_or_path": "Qwen/Qwen2.5-7B-Instruct", "do_train": True,
                 "output_dir": str(trained_folder(tmp_path / "out", tmp_path, 1.0))}  # fmt: skip
    assert record(tmp_path, "local", arguments, f"sqlite:///{store}").version == f"{MODEL}@1"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "medfactory", "models", "ui", "--port", str(port)],
        cwd=REPO, env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith(f"MLflow UI: http://127.0.0.1:{port}/  (store {store};"), line
        search = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/registered-models/search"
        with urllib.request.urlopen(search, timeout=10) as reply:
            assert [m["name"] for m in json.load(reply)["registered_models"]] == [MODEL]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert not port_in_use("127.0.0.1", port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
