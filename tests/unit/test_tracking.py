"""Model versions and lineage on MLflow's embedded SQLite store: a recorded SFT run, a DPO
version on its adapter made from clinicians' verdicts, the lineage back to source files
and people, the model card, promotion, and one clear line for every bad reference."""

from __future__ import annotations

import json
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from safetensors.numpy import save_file

from converters.registry import conversion_manifest, file_sha256, read_manifest, register
from deploy.process import free_port
from medfactory.cli import cli
from medfactory.exports import Example, Export, write_export
from medfactory.tracking import settings
from medfactory.tracking.client import open_client
from medfactory.tracking.errors import TrackingUnreachable, UnknownVersion, UnrecordedFolder
from medfactory.tracking.hashes import model_fingerprint
from medfactory.tracking.lineage import lineage, render
from medfactory.tracking.promote import audit_entries, promote
from medfactory.tracking.record import record_run
from medfactory.tracking.refs import resolve
from medfactory.tracking.serving import served
from medfactory.tracking.settings import Tracking
from medfactory.tracking.versions import attach_scores, list_versions, show_version

ALPACA = {"formatting": "alpaca", "columns": {"prompt": "instruction", "response": "output"}}


def weights(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    save_file({"w": rng.standard_normal((4, 4)).astype(np.float32)}, str(path))


def base_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 4}))
    weights(folder / "model.safetensors", 0)
    return folder


def trained_folder(folder: Path, base: Path, losses=(2.0, 1.5, 1.2), eval_loss=1.3) -> Path:
    """What llamafactory-cli leaves in a LoRA output folder, as files."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    weights(folder / "adapter_model.safetensors", 1)
    history = [{"step": 5 * (i + 1), "loss": loss} for i, loss in enumerate(losses)]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    (folder / "all_results.json").write_text(
        json.dumps({"train_loss": losses[-1], "eval_loss": eval_loss, "epoch": 1.0})
    )
    (folder / "README.md").write_text("---\nbase_model: x\n---\nMore information needed\n")
    return folder


def recipe_file(folder: Path, arguments: dict, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(arguments))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One embedded store (made once: MLflow's migrations take seconds), a converted
    dataset with its source file, an SFT run on it, a review export with provenance, and a
    DPO run on the SFT adapter."""
    root = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    base = base_model(root / "base")
    data = root / "data"
    data.mkdir()
    source = root / "raw" / "huatuo.jsonl"
    source.parent.mkdir()
    source.write_text('{"questions": [["头痛"]], "answers": ["请就医"]}\n' * 3)
    (data / "qa_train.jsonl").write_text('{"instruction": "头痛", "output": "请就医"}\n' * 3)
    summary = {"read": 4, "written": {"train": 3}, "rejected": {"empty answer": 1},
               "deid": "basic", "pii_replaced": {"PHONE": 2}, "files": {}}  # fmt: skip
    manifest = conversion_manifest("huatuo", [source], {"seed": 42}, summary)
    register(data, {"qa_train": {"file_name": "qa_train.jsonl", **ALPACA}},
             describe=lambda _: manifest)  # fmt: skip

    sft_dir = trained_folder(root / "saves" / "sft", base)
    sft_args = {"model_name_or_path": str(base), "stage": "sft", "do_train": True,
                "finetuning_type": "lora", "dataset": "qa_train", "dataset_dir": str(data),
                "output_dir": str(sft_dir)}  # fmt: skip
    tracking = Tracking(uri=uri, model_name="tiny-med")
    sft = record_run("train", recipe_file(root, sft_args, "sft"), sft_args, tracking)

    export = Export(source="review r1", read=2)
    for i, verdict in enumerate(("left", "right")):
        export.examples["dpo"].append(Example(
            "", [], f"胸痛{i}怎么办", chosen="请立即就医", rejected="多喝水",
            provenance={"study": "r1", "item": i + 1, "raters": ["dr.wang", "dr.zhao"],
                        "arbiter": "dr.li" if i else None, "verdict": verdict,
                        "time": "2026-12-01T10:00:00"},
        ))  # fmt: skip
    exported = write_export(export, data, "r1", split=(1.0,))
    dpo_dir = trained_folder(root / "saves" / "dpo", base, eval_loss=1.1)
    dpo_args = {**sft_args, "stage": "dpo", "dataset": "r1_dpo_train",
                "adapter_name_or_path": str(sft_dir), "output_dir": str(dpo_dir)}  # fmt: skip
    dpo = record_run("train", recipe_file(root, dpo_args, "dpo"), dpo_args, tracking)
    return {"root": root, "uri": uri, "client": open_client(uri), "base": base, "data": data,
            "source": source, "sft": sft, "dpo": dpo, "sft_dir": sft_dir, "dpo_dir": dpo_dir,
            "exported": exported}  # fmt: skip


def test_a_recorded_training_run_is_a_version_with_its_base_recipe_data_and_scores(world):
    client, uri = world["client"], world["uri"]
    assert world["sft"].version == "tiny-med@1" and world["sft"].warnings == []
    shown = show_version(client, "tiny-med@1", uri)
    assert shown["output_dir"] == str(world["sft_dir"].resolve())
    assert shown["base_model"]["sha256"] == model_fingerprint(world["base"])["sha256"]
    assert shown["parent"] is None
    assert shown["recipe"]["arguments"]["dataset"] == "qa_train"
    assert shown["datasets"] == [{
        "name": "qa_train", "context": "train", "digest": shown["datasets"][0]["digest"],
        "records": 3, "sha256": file_sha256(world["data"] / "qa_train.jsonl"),
        "size": (world["data"] / "qa_train.jsonl").stat().st_size,
    }]  # fmt: skip
    assert shown["scores"]["eval_loss"] == pytest.approx(1.3)
    assert {"llamafactory", "transformers", "torch"} <= set(shown["run"]["versions"])
    run = client.get_run(world["sft"].run_id)
    curve = client.get_metric_history(run.info.run_id, "curve.loss")
    assert [(m.step, m.value) for m in curve] == [(5, 2.0), (10, 1.5), (15, 1.2)]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "recipe")}
    assert artifacts == {"recipe/sft.yaml", "recipe/recipe_resolved.yaml"}


def test_dpo_on_the_sft_adapter_is_its_child_and_the_lineage_names_sources_and_people(world):
    client, uri = world["client"], world["uri"]
    shown = show_version(client, str(world["dpo_dir"]), uri)  # by its output folder
    assert shown["version"] == "tiny-med@2"
    assert shown["parent"] == {"version": "tiny-med@1", "scores": shown["parent"]["scores"]}
    assert shown["parent"]["scores"]["eval_loss"] == pytest.approx(1.3)
    tree = lineage(client, "tiny-med@2", uri)
    [dataset] = tree["datasets"]
    assert dataset["origin"] == {"study": "r1"}
    assert dataset["people"] == {"raters": ["dr.wang", "dr.zhao"], "arbiters": ["dr.li"]}
    assert dataset["verdicts"] == {"left": 1, "right": 1}
    [source] = tree["parent"]["datasets"][0]["sources"]
    assert source["sha256"] == file_sha256(world["source"]) and source["now"] == "same"
    text = render(tree)
    for expected in (
        "review study r1",
        "raters: dr.wang, dr.zhao",
        "arbiters: dr.li",
        "parent tiny-med@1",
        str(world["source"].resolve()),
        "base model base",
    ):
        assert expected in text, text


def test_the_lineage_says_when_a_source_file_changed_since(world, tmp_path):
    original = world["source"].read_bytes()
    try:
        world["source"].write_bytes(original + b"{}\n")
        text = render(lineage(world["client"], "tiny-med@2", world["uri"]))
        line = next(x for x in text.splitlines() if str(world["source"].resolve()) in x)
        assert line.endswith("(now differs)") and file_sha256(world["source"])[:12] not in line
    finally:
        world["source"].write_bytes(original)


def test_the_export_writes_one_provenance_line_per_record_beside_the_data(world):
    data = world["data"]
    lines = (data / "r1_dpo_train.jsonl").read_text().splitlines()
    sidecar = [json.loads(x) for x in
               (data / "r1_dpo_train.provenance.jsonl").read_text().splitlines()]  # fmt: skip
    assert len(sidecar) == len(lines) == 2
    assert [s["line"] for s in sidecar] == [1, 2]
    assert {s["verdict"] for s in sidecar} == {"left", "right"}
    manifest = read_manifest(data, "r1_dpo_train")
    assert manifest["converter"] == "review export" and manifest["records"] == 2
    assert manifest["sha256"] == file_sha256(data / "r1_dpo_train.jsonl")
    assert "provenance" not in json.loads(lines[0])  # LLaMA-Factory's columns only


def test_the_model_card_parses_as_a_hugging_face_card(world):
    from huggingface_hub import ModelCard

    from medfactory.tracking.card import write_card

    path = write_card(world["client"], "tiny-med@2", world["uri"], lang="zh")
    assert path == world["dpo_dir"].resolve() / "README.md"
    card = ModelCard.load(path)
    assert card.data.base_model == "base"
    assert card.data.datasets == ["r1_dpo_train"]
    assert card.data.eval_results[0].metric_type == "eval_loss"
    assert "不是医疗器械" in card.text and "More information needed" not in card.text
    english = ModelCard.load(write_card(world["client"], "tiny-med@2", world["uri"], "en"))
    assert "Not a medical device" in english.text and "review study `r1`" in english.text


def test_promote_sets_the_alias_with_who_and_when_and_every_ref_form_resolves(world):
    client, uri = world["client"], world["uri"]
    done = promote(client, "tiny-med@1", uri, "production", by="dr.li")
    assert done["version"] == "tiny-med@1" and done["previous"] is None
    done = promote(client, "tiny-med@2", uri, "production", by="dr.li")
    assert done["previous"] == 1
    for ref in ("tiny-med@production", "models:/tiny-med@production", "models:/tiny-med/2",
                "tiny-med@2", "tiny-med", str(world["dpo_dir"])):  # fmt: skip
        assert str(resolve(client, ref, uri).version) == "2", ref
    shown = show_version(client, "tiny-med@production", uri)
    assert shown["aliases"] == ["production"]
    assert shown["promotions"][0]["by"] == "dr.li"
    assert [(e["version"], e["previous"]) for e in audit_entries(client, "tiny-med")] == [
        (1, None),
        (2, 1),
    ]
    rows = {r["version"]: r for r in list_versions(client) if r["name"] == "tiny-med"}
    assert rows[2]["aliases"] == ["production"] and rows[2]["parent"] == "tiny-med@1"


def test_a_promotion_is_an_entry_of_the_stores_audit_log(world, tmp_path):
    from medfactory.access.audit import entries, verify
    from medfactory.store.db import open_store

    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    promote(world["client"], "tiny-med@1", world["uri"], "audited", by="dr.wang", audit_store=store)
    [entry] = entries(store)
    assert (entry.actor, entry.action) == ("dr.wang", "version-promoted")
    assert entry.target == "tiny-med@1"
    assert entry.details["alias"] == "audited" and verify(store).broken is None


def test_an_attached_evaluation_shows_beside_the_parents(world):
    client, uri = world["client"], world["uri"]
    attach_scores(client, resolve(client, "tiny-med@1", uri), "exam", {"accuracy": 0.5})
    attach_scores(client, resolve(client, "tiny-med@2", uri), "exam", {"accuracy": 0.6})
    shown = show_version(client, "tiny-med@2", uri)
    assert shown["scores"]["exam.accuracy"] == 0.6
    assert shown["parent"]["scores"]["exam.accuracy"] == 0.5


def test_a_prediction_run_attaches_its_scores_to_the_adapter_it_generated_with(world):
    client, uri = world["client"], world["uri"]
    out = world["root"] / "saves" / "predict"
    out.mkdir(parents=True)
    (out / "predict_results.json").write_text(json.dumps(
        {"predict_bleu-4": 12.5, "predict_rouge-l": 20.0, "predict_runtime": 3.0,
         "predict_samples_per_second": 2.0, "predict_model_preparation_time": 0.1}
    ))  # fmt: skip
    arguments = {"model_name_or_path": str(world["base"]), "stage": "sft", "do_predict": True,
                 "adapter_name_or_path": str(world["sft_dir"]), "finetuning_type": "lora",
                 "eval_dataset": "qa_train", "dataset_dir": str(world["data"]),
                 "output_dir": str(out)}  # fmt: skip
    recorded = record_run("train", recipe_file(world["root"], arguments, "predict"), arguments,
                          Tracking(uri=uri))  # fmt: skip
    assert recorded.version is None and recorded.evaluated == "tiny-med@1"
    scores = show_version(client, "tiny-med@1", uri)["scores"]
    assert scores["predict.bleu-4"] == 12.5 and scores["predict.rouge-l"] == 20.0
    assert not any("runtime" in k or "per_second" in k or "_time" in k for k in scores)


def test_an_evaluation_of_a_version_is_a_run_and_its_figures_attach_to_it(world, tmp_path):
    client, uri = world["client"], world["uri"]
    predictions = tmp_path / "generated_predictions.jsonl"
    rows = [{"prompt": "头痛怎么办", "predict": "请就医，保证治愈", "label": "请就医"},
            {"prompt": "发烧怎么办", "predict": "多喝水休息", "label": "多喝水"}]  # fmt: skip
    predictions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    version = ["--tracking-uri", uri, "--model-version"]
    wrong = CliRunner().invoke(cli, ["eval", "predictions", str(predictions), *version, "x@7"])
    assert wrong.exit_code == 1 and "no registered model named 'x'" in wrong.output
    assert not (tmp_path / "scores.json").exists()  # refused before scoring
    for command in (["predictions", "--workers", "1"], ["safety"]):
        run = CliRunner().invoke(
            cli, ["eval", command[0], str(predictions), *command[1:], *version, "tiny-med@1"]
        )
        assert run.exit_code == 0, run.output
        assert "figures attached to tiny-med@1" in run.output
    scored = json.loads((tmp_path / "scores.json").read_text())
    attached = show_version(client, "tiny-med@1", uri)["scores"]
    assert attached["predictions.bleu-4"] == pytest.approx(scored["bleu-4"])
    assert attached["safety.flagged_rate"] == 0.5  # 保证治愈 in one of two answers
    runs = client.search_runs([client.get_experiment_by_name("medfactory").experiment_id],
                              "tags.evaluated = 'tiny-med@1'")  # fmt: skip
    assert {r.data.tags["medfactory.command"] for r in runs} == {"eval predictions", "eval safety"}


def test_serving_a_version_serves_an_adapter_on_its_base_under_the_models_name(world):
    adapter = served("models:/tiny-med/1", world["uri"])
    assert (adapter.version, adapter.name) == ("tiny-med@1", "tiny-med")
    assert adapter.model == str(world["base"].resolve())
    assert adapter.adapter == world["sft_dir"].resolve()
    with socket.socket() as busy:  # the CLI resolves the version, then stops at the port
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = CliRunner().invoke(cli, [
            "serve", "--model", "models:/tiny-med/1", "--tracking-uri", world["uri"],
            "--template", "qwen", "--port", str(port),
        ])  # fmt: skip
    assert run.exit_code == 1, run.output
    assert f"serving tiny-med@1: {world['base'].resolve()} with adapter" in run.output
    assert "already in use" in run.output
    missing = CliRunner().invoke(
        cli, ["serve", "--model", "models:/nosuch@production", "--tracking-uri", world["uri"]]
    )
    assert missing.exit_code == 1
    assert "no registered model named 'nosuch'" in missing.output, missing.output


@pytest.mark.parametrize(
    ("ref", "error", "says"),
    [
        ("nosuch@1", UnknownVersion, "no registered model named 'nosuch'"),
        ("tiny-med@9", UnknownVersion, "tiny-med has no version 9; its versions: 1, 2"),
        ("tiny-med@staging", UnknownVersion, "tiny-med has no alias 'staging'"),
        ("models:/tiny-med/x", UnknownVersion, "expected models:/NAME/VERSION"),
        ("saves/never/made", UnrecordedFolder, "no recorded run made this folder"),
    ],
)
def test_a_bad_reference_is_one_clear_line(world, ref, error, says):
    with pytest.raises(error, match=says.replace("(", r"\(")):
        resolve(world["client"], ref, world["uri"])
    run = CliRunner().invoke(cli, ["models", "show", ref, "--tracking-uri", world["uri"]])
    assert run.exit_code == 1
    assert run.output.count("\n") == 1 and says in run.output, run.output


def test_a_tracking_server_that_does_not_answer_is_one_line(world):
    dead = f"http://127.0.0.1:{free_port()}"
    run = CliRunner().invoke(cli, ["models", "list", "--tracking-uri", dead])
    assert run.exit_code == 1 and run.output.count("\n") == 1
    assert f"tracking server {dead} does not answer" in run.output


def test_a_finished_run_is_recorded_locally_when_the_server_is_down(world, monkeypatch):
    local = world["root"] / "local"
    monkeypatch.setattr(settings, "embedded_dir", lambda: local)
    dead = f"http://127.0.0.1:{free_port()}"
    arguments = {"model_name_or_path": str(world["base"]), "do_train": True,
                 "output_dir": str(world["sft_dir"])}  # fmt: skip
    recipe = recipe_file(world["root"], arguments, "down")
    recorded = record_run("train", recipe, arguments, Tracking(uri=dead, model_name="fallback"))
    [warning] = recorded.warnings
    assert "does not answer" in warning and f"recorded in sqlite:///{local}" in warning
    assert recorded.uri == f"sqlite:///{local / 'mlflow.db'}" and recorded.version == "fallback@1"
    with pytest.raises(TrackingUnreachable):
        record_run("train", recipe, arguments, Tracking(uri=dead, required=True))


def test_tracking_is_on_by_default_and_off_by_option_or_environment(monkeypatch):
    monkeypatch.delenv("MEDFACTORY_TRACKING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Tracking.from_options(None, False, False).enabled
    assert Tracking.from_options(None, False, False).resolved_uri == settings.embedded_uri()
    assert settings.embedded_uri().endswith("/saves/mlflow/mlflow.db")
    assert not Tracking.from_options(None, True, False).enabled
    monkeypatch.setenv("MEDFACTORY_TRACKING", "off")
    assert not Tracking.from_options(None, False, False).enabled
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert Tracking.from_options(None, False, False).resolved_uri == "http://mlflow:5000"
    assert Tracking.from_options("sqlite:///x.db", False, False).resolved_uri == "sqlite:///x.db"


def test_registration_writes_a_manifest_per_entry_and_drops_it_with_the_entry(tmp_path):
    (tmp_path / "a_train.jsonl").write_text("{}\n{}\n")
    (tmp_path / "a_val.jsonl").write_text("{}\n")
    entries = {f"a_{s}": {"file_name": f"a_{s}.jsonl", **ALPACA} for s in ("train", "val")}
    register(tmp_path, entries, describe=lambda name: {"converter": "test", "for": name})
    manifest = read_manifest(tmp_path, "a_train")
    assert manifest["records"] == 2 and manifest["for"] == "a_train"
    assert manifest["splits"] == {n: file_sha256(tmp_path / f"{n}.jsonl") for n in entries}
    register(tmp_path, {}, remove=("a_val",))
    assert read_manifest(tmp_path, "a_val") is None and read_manifest(tmp_path, "a_train")


def test_recipes_render_a_tracker_only_when_asked():
    from medfactory.recipes.presets import RecipeError
    from medfactory.recipes.render import render

    registry = {"qa_train": {}}
    plain = yaml.safe_load(render("tiny", "lora", "train", ["qa"], registry=registry))
    assert plain["report_to"] == "none" and "run_name" not in plain
    text = render("tiny", "lora", "train", ["qa"], registry=registry, report_to="mlflow")
    assert "--report-to mlflow" in text.splitlines()[0]
    tracked = yaml.safe_load(text)
    assert tracked["report_to"] == "mlflow" and tracked["run_name"] == "tiny-lora-train"
    with pytest.raises(RecipeError, match="unknown --report-to 'tensorboard'"):
        render("tiny", "lora", "train", ["qa"], registry=registry, report_to="tensorboard")


def test_verdict_counts_in_the_manifest_come_from_the_provenance():
    from medfactory.exports import manifest_fields

    export = Export(source="ab exp1", read=3)
    origins = [{"user": "u1", "verdict": "up"}, {"user": "u2", "verdict": "up"}, {}]
    fields = manifest_fields(export, "fb_kto_train", origins)
    assert fields["origin"] == {"experiment": "exp1"}
    assert fields["people"] == {"chat_users": ["u1", "u2"]}
    assert fields["verdicts"] == dict(Counter(up=2)) and fields["with_provenance"] == 2


def test_a_gateway_arm_named_by_a_version_serves_it_and_the_experiment_keeps_the_version(
    world, tmp_path
):
    """Each exchange keeps the version its arm's alias pointed to when the gateway started:
    after the alias moves and the gateway restarts, the report shows both versions, and a
    version trained on the experiment's feedback names them in its lineage."""
    from fastapi.testclient import TestClient
    from openai_standin import StandIn

    from deploy.gateway import Arm, GatewayError
    from medfactory.ab.export import export_experiment
    from medfactory.ab.recorder import exchanges_since
    from medfactory.ab.report import build_ab_report, markdown
    from medfactory.ab.serve import gateway_app
    from medfactory.access.audit import entries
    from medfactory.store.db import open_store

    promote(world["client"], "tiny-med@1", world["uri"], "ward", by="dr.li")
    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    question = [{"role": "user", "content": "头痛怎么办"}]

    def ask(app, users):
        with TestClient(app) as client:
            for user in users:
                reply = client.post(
                    "/v1/chat/completions", json={"model": "x", "messages": question, "user": user}
                )
                assert reply.status_code == 200, reply.text
                client.post("/v1/feedback", json={"id": reply.json()["id"], "user": user,
                                                  "rating": 1})  # fmt: skip

    with StandIn(lambda body: "好", model="tiny-med") as server, StandIn(
        lambda body: "好", model="other"
    ) as elsewhere:  # fmt: skip
        arms = [Arm("prod", server.url, "models:/tiny-med@ward"), Arm("base", elsewhere.url)]
        app, settled = gateway_app(arms, "trial", store, tracking_uri=world["uri"])
        assert [(a.name, a.model, a.version) for a in settled] == [
            ("prod", "tiny-med", "tiny-med@1"), ("base", "other", None),
        ]  # fmt: skip
        ask(app, [f"dr{n}" for n in range(6)])
        # The alias moves; the restarted gateway's prod arm is the new version.
        promote(world["client"], "tiny-med@2", world["uri"], "ward", by="dr.li")
        app, settled = gateway_app(arms, "trial", store, tracking_uri=world["uri"])
        assert settled[0].version == "tiny-med@2"
        ask(app, [f"dr{n}" for n in range(6)])
        wrong = [Arm("prod", elsewhere.url, "models:/tiny-med@ward")]  # serves another model
        with pytest.raises(GatewayError, match="arm 'prod'.*tiny-med"):
            gateway_app(wrong, "trial2", store, tracking_uri=world["uri"])
        unknown = [Arm("prod", server.url, "models:/tiny-med@nowhere")]
        with pytest.raises(GatewayError, match="arm 'prod': tiny-med has no alias 'nowhere'"):
            gateway_app(unknown, "trial3", store, tracking_uri=world["uri"])
        unreachable = [Arm("prod", server.url, "models:/tiny-med@ward")]
        with pytest.raises(GatewayError, match="arm 'prod': .*127.0.0.1:9"):
            gateway_app(unreachable, "trial4", store, tracking_uri="http://127.0.0.1:9")
    rows = exchanges_since(store, "trial")
    by_arm = Counter((r["arm"], r["served_model"], r["model_version"]) for r in rows)
    asked = sum(1 for r in rows if r["arm"] == "prod") // 2  # prod users, once per start
    assert asked and by_arm == Counter({
        ("prod", "tiny-med", "tiny-med@1"): asked, ("prod", "tiny-med", "tiny-med@2"): asked,
        ("base", "other", None): 12 - 2 * asked,
    })  # fmt: skip
    report = build_ab_report(store, "trial")
    assert report["versions"] == {"prod": {"tiny-med@1": asked, "tiny-med@2": asked}}
    assert (f"Recorded versions serving the arms: prod: tiny-med@1 ({asked} requests), "
            f"tiny-med@2 ({asked} requests).") in markdown(report, None)  # fmt: skip
    [started] = [e for e in entries(store) if e.action == "experiment-started"]
    assert started.details["versions"] == {"prod": "tiny-med@1"}

    # A version trained on the experiment's thumbs: its lineage names the versions that
    # answered on each arm (base, named by a plain model name, has none).
    data = tmp_path / "data"
    export_experiment(store, "trial", None, "trial", data, "sharegpt", (1.0,), 42, False)
    kto_dir = trained_folder(tmp_path / "saves" / "kto", world["base"])
    kto_args = {"model_name_or_path": str(world["base"]), "stage": "kto", "do_train": True,
                "finetuning_type": "lora", "dataset": "trial_kto_train",
                "dataset_dir": str(data), "output_dir": str(kto_dir)}  # fmt: skip
    kto = record_run("train", recipe_file(tmp_path, kto_args, "kto"), kto_args,
                     Tracking(uri=world["uri"], model_name="tiny-ab"))  # fmt: skip
    tree = render(lineage(world["client"], kto.version, world["uri"]))
    assert "A/B experiment trial (arm prod served by tiny-med@1, tiny-med@2)" in tree, tree
    result = CliRunner().invoke(cli, [
        "gateway", "--arm", "prod=http://127.0.0.1:9,model=models:/tiny-med@nowhere",
        "--tracking-uri", world["uri"], "--db", f"sqlite:///{tmp_path / 'ab.db'}",
        "--port", str(free_port()),
    ])  # fmt: skip
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "arm 'prod': tiny-med has no alias 'nowhere'" in result.output
    store.close()


def test_weights_saved_as_pytorch_bin_are_fingerprinted_too(tmp_path):
    # full PPO in .venv-rl saves pytorch_model.bin: its runs name their weights as others do
    (tmp_path / "config.json").write_text("{}")
    assert model_fingerprint(tmp_path)["weights_sha256"] is None
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x01" * 4096)
    first = model_fingerprint(tmp_path)["weights_sha256"]
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x02" * 4096)
    assert first is not None and model_fingerprint(tmp_path)["weights_sha256"] not in (None, first)
