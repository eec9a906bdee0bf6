"""Where exported and converted data came from, as its manifests and provenance sidecars
say: a review study's raters and arbiter, an A/B experiment's chat users, a conversion's
source files with their hashes."""

import json

from test_convert import HUATUO
from test_exports import rate, study  # noqa: F401 - the study fixture
from test_review import people

from converters.convert import ConvertOptions, convert
from converters.registry import file_sha256, read_manifest
from deploy.gateway import Arm, Exchange, Feedback
from medfactory.ab.export import ab_export
from medfactory.ab.recorder import StoreRecorder
from medfactory.exports import write_export
from medfactory.review.exports import review_export
from medfactory.review.rating import arbiter_view, arbitrate, queue
from medfactory.store.db import open_store


def sidecar(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_review_export_names_each_items_raters_and_arbiter(study, tmp_path):  # noqa: F811
    raters = people(study)
    with study.session() as session:
        agreed, disputed = sorted(i.position for i, _, _ in queue(session, raters["d1"]))[:2]
    for rater in (raters["d1"], raters["d2"]):
        rate(study, rater, agreed, "lora")
    rate(study, raters["d1"], disputed, "lora")
    rate(study, raters["d2"], disputed, "base")
    with study.session() as session:
        answers = arbiter_view(session, raters["boss"], disputed).answers
    arbitrate(study, raters["boss"].id, disputed, "1" if answers[0].startswith("base") else "2",
              "", "a1")  # fmt: skip
    data = tmp_path / "data"
    write_export(review_export(study, "r1"), data, "r1", split=(1.0,))
    rows = {row["item"]: row for row in sidecar(data / "r1_dpo_train.provenance.jsonl")}
    assert rows[agreed]["raters"] == ["d1", "d2"] and rows[agreed]["arbiter"] is None
    assert rows[disputed]["arbiter"] == "boss" and rows[disputed]["study"] == "r1"
    assert rows[agreed]["time"] and rows[agreed]["verdict"] in ("left", "right")
    manifest = read_manifest(data, "r1_dpo_train")
    assert manifest["origin"] == {"study": "r1"}
    assert manifest["people"] == {"raters": ["d1", "d2"], "arbiters": ["boss"]}


def test_an_ab_exports_provenance_names_the_chat_users(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    recorder = StoreRecorder(store, "exp", [Arm("lora", "http://h", "lora")])
    for i in range(2):
        question = [{"role": "user", "content": f"头痛第{i}天，怎么办？"}]
        recorder.record(Exchange("exp", f"u{i}", "lora", "lora", "c", question, True,
                                 completion_id=f"c{i}", answer="请就医。"))  # fmt: skip
        recorder.feedback(Feedback(f"c{i}", f"u{i}", 1 - 2 * i, "", ""))
    write_export(ab_export(store, "exp"), tmp_path / "data", "fb", split=(1.0,))
    rows = sidecar(tmp_path / "data" / "fb_kto_train.provenance.jsonl")
    assert sorted((r["user"], r["verdict"]) for r in rows) == [("u0", "up"), ("u1", "down")]
    manifest = read_manifest(tmp_path / "data", "fb_kto_train")
    assert manifest["origin"] == {"experiment": "exp"}
    assert manifest["people"] == {"chat_users": ["u0", "u1"]}


def test_a_conversions_manifest_names_its_source_files_and_counts(tmp_path):
    options = ConvertOptions(fmt="sharegpt", name="t", dataset_dir=tmp_path, workers=1)
    summary = convert("huatuo", [HUATUO], options)
    manifest = read_manifest(tmp_path, "t_train")
    assert manifest["converter"] == "huatuo"
    assert manifest["sources"] == [{"path": str(HUATUO.resolve()), "size": HUATUO.stat().st_size,
                                    "sha256": file_sha256(HUATUO)}]  # fmt: skip
    assert manifest["written"] == summary.as_dict()["written"]
    assert manifest["deid"]["level"] == "basic" and manifest["options"]["seed"] == 42
    assert manifest["sha256"] == file_sha256(tmp_path / "t_train.jsonl")
