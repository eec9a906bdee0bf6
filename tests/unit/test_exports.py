"""Verdicts, thumbs and corrections exported as LLaMA-Factory DPO, KTO and SFT data."""

import json

import pytest
from test_review import people, predictions, rate_as_preferring, shown

from converters.registry import RegistryError, read_registry
from deploy.gateway import Arm, Exchange, Feedback
from medfactory.ab.export import ab_export
from medfactory.ab.recorder import StoreRecorder
from medfactory.exports import write_export
from medfactory.review.errors import ExportError
from medfactory.review.exports import review_export
from medfactory.review.rating import Submission, arbiter_view, arbitrate, queue, submit
from medfactory.review.studies import StudySpec, create_study
from medfactory.store.db import open_store

AXES = ("accuracy", "safety", "completeness", "communication")


@pytest.fixture
def study(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    files = [predictions(tmp_path, "base"), predictions(tmp_path, "lora")]
    create_study(store, StudySpec("r1", files, ["d1", "d2"], arbiter="boss", overlap=2, seed=7))
    yield store
    store.close()


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def rate(store, rater, position, verdict, correction=""):
    """Rate `position` with a verdict about the versions: lora, base, tie or both_bad."""
    answers = shown(store, rater, position)
    if verdict in ("lora", "base"):
        rate_as_preferring(store, rater, verdict, position, correction=correction)
        return
    code = {"tie": "tie", "both_bad": "both_bad"}[verdict]
    scores = {a: (3, 3) for a in AXES}
    submit(store, rater.id, position, Submission(code, scores, correction=correction),
           f"{rater.name}-{position}-{code}-{answers[0][:4]}")  # fmt: skip


def test_final_verdicts_become_dpo_pairs_and_corrections_sft_every_item_accounted(study, tmp_path):
    raters = people(study)
    with study.session() as session:
        positions = sorted(i.position for i, _, _ in queue(session, raters["d1"]))
    agreed, tied, arbitrated, open_, waiting = positions[:5]
    phone = "患者电话13812345678，建议复查血常规。"
    for rater in (raters["d1"], raters["d2"]):
        rate(study, rater, agreed, "lora", correction=phone if rater.name == "d1" else "")
        rate(study, rater, tied, "tie")
    rate(study, raters["d1"], arbitrated, "lora")
    rate(study, raters["d2"], arbitrated, "base")
    with study.session() as session:  # the arbiter settles it for base
        answers = arbiter_view(session, raters["boss"], arbitrated).answers
    arbitrate(study, raters["boss"].id, arbitrated, "1" if answers[0].startswith("base") else "2",
              "", "a1")  # fmt: skip
    rate(study, raters["d1"], open_, "lora")
    rate(study, raters["d2"], open_, "base")
    rate(study, raters["d1"], waiting, "lora")

    export = review_export(study, "r1")
    data = tmp_path / "data"
    summary = write_export(export, data, "r1", split=(1.0,))
    assert summary["written"] == {"dpo": {"train": 2}, "sft": {"train": 1}}
    assert summary["skipped"] == {
        "tie": 1, "raters disagree, not arbitrated": 1, "waiting for its other raters": 1,
        "not rated": 7,
    }  # fmt: skip
    assert summary["read"] == 12 and summary["identifiers_scrubbed"] == {"mobile": 1}

    pairs = lines(data / "r1_dpo_train.jsonl")
    by_question = {p["conversations"][-1]["value"]: p for p in pairs}
    with study.session() as session:
        from medfactory.store.db import Item

        items = {i.position: i for i in session.query(Item)}
    for position, winner in ((agreed, "lora"), (arbitrated, "base")):
        pair = by_question[items[position].conversation[-1]["content"]]
        assert pair["chosen"]["value"].startswith(winner)
        assert not pair["rejected"]["value"].startswith(winner)
        assert pair["conversations"][-1]["from"] == "human"  # ends on the user's turn
        assert len(pair["conversations"]) % 2 == 1 and pair["system"] == "你是医生。"
    (sft,) = lines(data / "r1_sft_train.jsonl")
    assert sft["conversations"][-1] == {"from": "gpt", "value": "患者电话[PHONE]，建议复查血常规。"}

    registry = read_registry(data)
    assert registry["r1_dpo_train"]["ranking"] is True
    assert registry["r1_dpo_train"]["columns"] == {
        "messages": "conversations", "system": "system", "chosen": "chosen",
        "rejected": "rejected",
    }  # fmt: skip
    assert "ranking" not in registry["r1_sft_train"]

    again = write_export(review_export(study, "r1"), data, "r1", split=(1.0,))
    assert again["written"] == summary["written"]  # as `data convert`: the same entries refresh
    with pytest.raises(RegistryError, match="already has a different entry for r1_dpo_train"):
        write_export(review_export(study, "r1"), data, "r1", "alpaca", (1.0,))
    alpaca = write_export(review_export(study, "r1"), data, "r1", "alpaca", (1.0,), force=True)
    assert alpaca["written"]["dpo"] == {"train": 2}
    row = json.loads((data / "r1_dpo_train.jsonl").read_text().splitlines()[0])
    assert set(row) == {"instruction", "input", "chosen", "rejected", "history", "system"}
    assert read_registry(data)["r1_dpo_train"]["columns"]["chosen"] == "chosen"


def exchange(user, completion_id, messages, answer="回答", error=None):
    return Exchange("ab", user, "lora", "lora", "c", messages, True, completion_id=completion_id,
                    answer=answer, error=error)  # fmt: skip


def test_thumbs_become_kto_rows_corrections_sft_and_failures_are_counted(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    recorder = StoreRecorder(store, "ab", [Arm("lora", "http://h", "lora")])
    first = [{"role": "system", "content": "你是医生。"}, {"role": "user", "content": "头痛"}]
    later = [
        *first,
        {"role": "assistant", "content": "多休息"},
        {"role": "user", "content": "还痛"},
    ]
    for number, (messages, error) in enumerate(
        [(first, None), (later, None), (first, None), (first, "HTTP 500"), (first, None)]
    ):
        recorder.record(exchange(f"u{number}", f"c{number}", messages, f"答{number}", error))
    recorder.feedback(Feedback("c0", "u0", 1, "", ""))
    recorder.feedback(Feedback("c1", "u1", -1, "请到神经内科就诊，电话13812345678", ""))
    recorder.feedback(Feedback("c2", "u2", None, "建议测血压", ""))

    summary = write_export(ab_export(store, "ab"), tmp_path / "data", "fb", "alpaca", (1.0,))
    assert summary["written"] == {"dpo": {"train": 2}, "kto": {"train": 2}, "sft": {"train": 2}}
    assert summary["skipped"] == {"failed exchange": 1, "no feedback": 1}
    assert summary["read"] == 5
    pairs = lines(tmp_path / "data" / "fb_dpo_train.jsonl")  # a correction beats its answer
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        ("请到神经内科就诊，电话[PHONE]", "答1"), ("建议测血压", "答2"),
    ]  # fmt: skip
    kto = [
        json.loads(x)
        for x in (tmp_path / "data" / "fb_kto_train.jsonl").read_text().split("\n")
        if x
    ]
    assert [r["kto_tag"] for r in kto] == [True, False]
    assert [m["from"] for m in kto[1]["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert kto[1]["conversations"][-1]["value"] == "答1" and kto[1]["system"] == "你是医生。"
    entry = read_registry(tmp_path / "data")["fb_kto_train"]
    assert entry["formatting"] == "sharegpt"  # KTO is ShareGPT-only, whatever --format says
    assert entry["columns"]["kto_tag"] == "kto_tag"
    sft = [
        json.loads(x)
        for x in (tmp_path / "data" / "fb_sft_train.jsonl").read_text().split("\n")
        if x
    ]
    assert [r["output"] for r in sft] == ["请到神经内科就诊，电话[PHONE]", "建议测血压"]
    assert sft[0]["history"] == [["头痛", "多休息"]] and sft[0]["instruction"] == "还痛"


def test_nothing_to_export_is_one_message_and_registers_nothing(study, tmp_path):
    with pytest.raises(ExportError, match="review r1: nothing to export .*12 not rated"):
        write_export(review_export(study, "r1"), tmp_path / "data", "r1")
    assert not (tmp_path / "data").exists()


def test_the_export_commands_print_their_accounting_and_refuse_a_bad_split(study, tmp_path):
    from click.testing import CliRunner

    from medfactory.cli import cli

    raters = people(study)
    with study.session() as session:
        position = min(i.position for i, _, _ in queue(session, raters["d1"]))
    for rater in (raters["d1"], raters["d2"]):
        rate(study, rater, position, "lora")
    url = str(study.engine.url)
    base = ["review", "export", "r1", "--name", "r1", "--db", url, "--dataset-dir", str(tmp_path)]
    result = CliRunner().invoke(cli, [*base, "--json", "--split", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["written"] == {"dpo": {"train": 1}} and summary["skipped"]["not rated"] == 11
    table = CliRunner().invoke(cli, [*base, "--split", "1"])
    assert "written dpo" in table.output and "skipped: not rated" in table.output
    bad = CliRunner().invoke(cli, [*base, "--split", "0.5"])
    assert bad.exit_code == 2 and "ratios must be >= 0 and add up to 1" in bad.output
    missing = CliRunner().invoke(
        cli, ["ab", "export", "--name", "x", "--db", url, "--dataset-dir", str(tmp_path)]
    )
    assert missing.exit_code == 1 and "no A/B experiment 'ab'" in missing.output


def test_the_checked_in_registry_has_the_entries_make_abtest_registers(tmp_path):
    """`make abtest` exports its feedback as abtest_*; the tiny DPO and KTO recipes train on
    them, so `recipe check` needs their entries in the checked-in registry."""
    from pathlib import Path

    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    recorder = StoreRecorder(store, "abtest", [Arm("lora", "http://h", "lora")])
    recorder.record(exchange("u", "c1", [{"role": "user", "content": "头痛"}]))
    recorder.feedback(Feedback("c1", "u", -1, "请就医", ""))
    write_export(ab_export(store, "abtest"), tmp_path / "data", "abtest", split=(1.0,))
    fresh = read_registry(tmp_path / "data")
    checked_in = read_registry(Path(__file__).resolve().parents[2] / "dataset_info")
    assert set(fresh) == {"abtest_dpo_train", "abtest_kto_train", "abtest_sft_train"}
    assert fresh == {name: checked_in[name] for name in fresh}, "run `make abtest` and commit"
