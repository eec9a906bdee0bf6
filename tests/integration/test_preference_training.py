"""From clinicians' verdicts and thumbs to DPO and KTO training on the tiny model, for real."""

import json
import subprocess
import sys

import pytest
import yaml
from review_helpers import REPO, prediction_files
from test_llamafactory_loading import load_all_with_llamafactory

from converters.registry import file_sha256
from deploy.gateway import Arm, Exchange, Feedback
from medfactory.ab.export import ab_export
from medfactory.ab.recorder import StoreRecorder
from medfactory.exports import write_export
from medfactory.review.exports import review_export
from medfactory.review.rating import Submission, queue, rater_view, submit
from medfactory.review.studies import StudySpec, create_study
from medfactory.store.db import Rater, open_store
from medfactory.tracking.record import record_run
from medfactory.tracking.settings import Tracking

ITEMS = 16
AXES = ("accuracy", "safety", "completeness", "communication")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A study where both doctors prefer the answer that sends the patient to a doctor, and
    an A/B record with a thumb on every answer; both exported into one dataset folder."""
    folder = tmp_path_factory.mktemp("preference")
    store = open_store(f"sqlite:///{folder / 'review.db'}")
    base, lora = prediction_files(folder, ITEMS)
    create_study(store, StudySpec("r1", [base, lora], ["d1", "d2"], overlap=2, seed=3))
    pending = []
    with store.session() as session:
        for rater in session.query(Rater):
            for item, _, _ in queue(session, rater):
                answers = rater_view(session, rater, item.position).answers
                verdict = "1" if "就医" in answers[0] else "2"
                scores = {a: (4, 2) if verdict == "1" else (2, 4) for a in AXES}
                pending.append((rater.id, item.position, Submission(verdict, scores)))
    for rater_id, position, submission in pending:
        submit(store, rater_id, position, submission, f"{rater_id}-{position}")
    data = folder / "data"
    review = write_export(review_export(store, "r1"), data, "r1", split=(1.0,))

    recorder = StoreRecorder(store, "ab", [Arm("lora", "http://h", "lora")])
    for i in range(ITEMS):
        good = i % 2 == 0
        answer = "请及时到医院就诊。" if good else "不用管它，多喝热水就好了。"
        question = [{"role": "user", "content": f"头痛第{i}天，怎么办？"}]
        recorder.record(Exchange("ab", f"u{i}", "lora", "lora", "c", question, True,
                                 completion_id=f"c{i}", answer=answer))  # fmt: skip
        recorder.feedback(Feedback(f"c{i}", f"u{i}", 1 if good else -1, "", ""))
    feedback = write_export(ab_export(store, "ab"), data, "fb", split=(1.0,))
    return data, review, feedback


def test_llamafactorys_own_loader_keeps_every_pair_and_every_kto_row(
    exported, tiny_model, tmp_path
):
    data, review, feedback = exported
    assert review["written"] == {"dpo": {"train": ITEMS}} and review["skipped"] == {}
    assert feedback["written"] == {"kto": {"train": ITEMS}}
    pairs, kto = load_all_with_llamafactory(
        tiny_model,
        [(data, "r1_dpo", tmp_path / "rm", "rm"), (data, "fb_kto", tmp_path / "kto", "kto")],
    )
    assert pairs["kept"] == {"train": ITEMS}
    assert kto["kept"] == {"train": ITEMS}


@pytest.fixture(scope="module")
def sft_version(tmp_path_factory, tiny_model, data_dir):
    """A tracking store holding an SFT version on the bundled Huatuo sample (an adapter
    built for the tiny model, recorded as `medfactory train` records one), for the
    preference runs to start from."""
    from medfactory.dev.tiny_model import build_tiny_adapter

    folder = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    adapter = build_tiny_adapter(tiny_model, folder / "sft")
    arguments = {
        "model_name_or_path": str(tiny_model), "stage": "sft", "do_train": True,
        "finetuning_type": "lora", "template": "qwen", "dataset": "huatuo_sample_train",
        "dataset_dir": str(data_dir), "output_dir": str(adapter),
    }  # fmt: skip
    recipe = REPO / "llamafactory_configs/tiny/train_lora.yaml"
    recorded = record_run("train", recipe, arguments, Tracking(uri=uri, model_name="tiny-sft"))
    assert recorded.version == "tiny-sft@1"
    return uri, adapter


def train(stage: str, dataset: str, data, tiny_model, folder, sft_version) -> list[dict]:
    """`medfactory train` on the checked-in tiny recipe, pointed at the exported data and
    continuing the SFT adapter, recorded in the SFT version's store; the run's logged
    steps."""
    uri, adapter = sft_version
    overrides = [
        f"dataset={dataset}_train", f"dataset_dir={data}", f"model_name_or_path={tiny_model}",
        f"adapter_name_or_path={adapter}", f"output_dir={folder / 'out'}",
        "num_train_epochs=2.0", "logging_steps=4", "save_steps=1000",
        "per_device_train_batch_size=2",
    ]  # fmt: skip
    recipe = f"llamafactory_configs/tiny/{stage}_lora.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "medfactory", "train", recipe, "--tracking-uri", uri,
         "--model-name", f"tiny-{stage}", *overrides],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    state = json.loads((folder / "out" / "trainer_state.json").read_text())
    return [step for step in state["log_history"] if "loss" in step]


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_the_checked_in_dpo_and_kto_recipes_train_the_tiny_model_and_it_learns(
    exported, tiny_model, stage, tmp_path, sft_version, data_dir
):
    data, _, _ = exported
    recipe = yaml.safe_load((REPO / f"llamafactory_configs/tiny/{stage}_lora.yaml").read_text())
    assert recipe["stage"] == stage and recipe["finetuning_type"] == "lora"
    dataset = {"dpo": "r1_dpo", "kto": "fb_kto"}[stage]
    logged = train(stage, dataset, data, tiny_model, tmp_path, sft_version)
    assert len(logged) >= 4
    first, last = logged[0], logged[-1]
    assert last["loss"] < first["loss"]
    if stage == "dpo":
        assert last["rewards/accuracies"] > 0.5  # chosen now above rejected
        assert last["rewards/margins"] > first["rewards/margins"]
    assert (tmp_path / "out" / "adapter_model.safetensors").stat().st_size > 0

    # Its version's lineage: the study or experiment and the people behind its data, the
    # SFT version it continued, and that version's source files with their hashes.
    shown = subprocess.run(
        [sys.executable, "-m", "medfactory", "models", "lineage", str(tmp_path / "out"),
         "--json", "--tracking-uri", sft_version[0]],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    assert tree["version"] == f"tiny-{stage}@1" and tree["stage"] == stage
    [used] = tree["datasets"]
    if stage == "dpo":
        assert used["origin"] == {"study": "r1"} and used["people"] == {"raters": ["d1", "d2"]}
    else:
        assert used["origin"] == {"experiment": "ab"}
        assert used["people"] == {"chat_users": sorted(f"u{i}" for i in range(ITEMS))}
    assert tree["parent"]["version"] == "tiny-sft@1"
    [source] = tree["parent"]["datasets"][0]["sources"]
    bundled = REPO / "dataset_info" / "samples" / "huatuo_sample.jsonl"
    assert source["path"].endswith("huatuo_sample.jsonl") and source["now"] == "same"
    assert source["sha256"] == file_sha256(bundled)
