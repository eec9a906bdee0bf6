"""`data synthesize` against a stand-in model that returns scripted JSON: exactly the
planted drafts are kept, the planted faults dropped with their reasons, and a rerun
asks nothing again. The documents are the bundled Markdown, DOCX and PDF samples."""

import hashlib
import json
import re
import threading
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from openai_standin import StandIn, last_user_text

from converters.documents import chunk_document, read_document
from medfactory.cli import cli
from medfactory.synthesis.checks import grounding

DOCS = Path(__file__).resolve().parents[2] / "dataset_info" / "samples" / "documents"
NEAR = (
    "高血压患者在家里用电子血压计自己测量血压的时候，诊断高血压应该参考的家庭血压标准是多少毫米汞柱"
)


def first_sentence(chunk: str) -> str:
    body = "\n".join(line for line in chunk.splitlines() if not line.startswith("#"))
    return re.split(r"(?<=[。.])\s*", body.strip())[0]


class Script:
    """What the stand-in model writes for each chunk, by its document and heading."""

    def __init__(self, plan: dict | None = None):
        self.asked, self.lock = Counter(), threading.Lock()
        self.plan = PLAN if plan is None else plan

    def __call__(self, body: dict) -> str:
        prompt = last_user_text(body)
        text = prompt.split('"""')[1].strip()
        source = re.search(r"(?:资料来源：|Source: )(.+)", prompt).group(1)
        key = next((k for k in self.plan if k[0] in source and f"（{k[1]}）" in source), None)
        with self.lock:
            self.asked[key] += 1
            times = self.asked[key]
        plan = self.plan.get(key)
        if plan == "garbage" or (plan == "garbage-once" and times == 1):
            return "好的，下面是一些问题：问题一……"
        fact = first_sentence(text)
        digest = hashlib.sha1(text.encode()).hexdigest()[:10]
        pairs = [{"question": f"关于{digest}的要点？", "answer": fact}]
        if plan == "planted":
            pairs += [
                {"question": NEAR + "？", "answer": fact},
                {"question": "What counts as a significant FEV1 increase?", "answer": fact},
                {"question": "生活方式怎么调整？", "answer": "多吃火锅，喝啤酒，熬夜放松心情。"},
                {"question": "需要吃药吗？", "answer": "是的"},
                {"question": "这个病能治好吗？", "answer": fact + "按时服药保证治愈。"},
            ]  # fmt: skip
        if plan == "repeats":
            pairs += [
                {"question": NEAR + "呢", "answer": fact},
                {"question": "what counts as a significant  FEV1 increase", "answer": fact},
            ]
        return "```json\n" + json.dumps(pairs, ensure_ascii=False) + "\n```"


# (document, heading) -> what the stand-in does for that chunk; the rest get one good pair
PLAN = {
    ("hypertension.md", "诊断"): "planted",
    ("hypertension.md", "何时转诊"): "repeats",
    ("diabetes.docx", "低血糖的识别与处理"): "garbage",
    ("diabetes.docx", "药物治疗"): "garbage-once",
}


def chunks_of_samples(chunk_chars=400, overlap=80):
    return [
        c for p in sorted(DOCS.iterdir())
        for c in chunk_document(str(p), read_document(p), chunk_chars, overlap)
    ]  # fmt: skip


def synthesize(url: str, dataset_dir: Path, *extra: str, as_json: bool = True):
    args = ["data", "synthesize", str(DOCS), "--endpoint", url, "--name", "guide",
            "--dataset-dir", str(dataset_dir), "--chunk-chars", "400", "--overlap", "80",
            "--concurrency", "3", *(["--json"] if as_json else []), *extra]  # fmt: skip
    return CliRunner().invoke(cli, args)


def test_the_bundled_documents_read_and_chunk_with_exact_sources():
    texts = {p.suffix: read_document(p) for p in DOCS.iterdir()}
    assert set(texts) == {".md", ".docx", ".pdf"}
    assert "二甲双胍" in texts[".docx"] and "# 诊断标准" in texts[".docx"]  # DOCX headings
    assert "Inhaled corticosteroids" in texts[".pdf"]
    for path in DOCS.iterdir():
        text = read_document(path)
        for chunk in chunk_document(str(path), text, 400, 80):
            assert text[chunk.start : chunk.end] == chunk.text
            assert len(chunk.text) <= 400
            assert chunk.text.rstrip()[-1] in "。.；;！!？?）)" or chunk.end == len(text.rstrip())


def test_chunks_respect_headings_sentences_and_overlap():
    paragraph = "".join(f"第{i}句话讲一个要点。" for i in range(40))
    text = f"# 一\n\n短段落。\n\n## 二\n\n{paragraph}\n\nEnglish one. English two. English three."
    chunks = chunk_document("x.md", text, 120, 30)
    assert [c.heading for c in chunks][:2] == ["一", "二"]
    assert chunks[0].text == "短段落。"  # a heading starts a new chunk
    body = [c for c in chunks if c.heading == "二"]
    for before, after in zip(body, body[1:], strict=False):
        assert after.start < before.end  # the overlap ...
        assert (
            before.end - after.start <= 30 and text[after.start - 1] == "。"
        )  # ... whole sentences
    for chunk in chunks:
        assert chunk.text.endswith(("。", ".")) and len(chunk.text) <= 120


def test_planted_drafts_are_kept_the_faults_dropped_and_a_rerun_asks_nothing(tmp_path):
    script = Script()
    chunks = chunks_of_samples()
    with StandIn(script, model="drafter") as server:
        result = synthesize(server.url, tmp_path)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        asked = len(server.requests)
    unparseable = sum(1 for c in chunks if c.heading == "低血糖的识别与处理")
    retried = sum(1 for c in chunks if c.heading == "药物治疗" and c.file.endswith(".docx"))
    assert retried == 1
    assert summary["chunks"] == len(chunks) and summary["documents"] == 3
    assert summary["unparseable_chunks"] == unparseable == 1
    assert summary["requests"] == asked == len(chunks) + unparseable + retried
    assert summary["dropped"] == {
        "banned_claim:guaranteed-cure": 1, "duplicate": 1, "near_duplicate": 1,
        "too_short": 1, "ungrounded": 1,
    }  # fmt: skip
    answered = len(chunks) - unparseable
    assert (
        summary["drafts"] == answered + 5 + 2 == summary["kept"] + sum(summary["dropped"].values())
    )
    kept = [json.loads(line) for line in (tmp_path / "guide.drafts.jsonl").read_text().splitlines()]
    dropped = [
        json.loads(line)
        for line in (tmp_path / "guide.drafts.dropped.jsonl").read_text().splitlines()
    ]
    assert len(kept) == summary["kept"] == answered + 2  # one per chunk, plus the two planted
    assert {d["question"] for d in kept} >= {
        NEAR + "？",
        "What counts as a significant FEV1 increase?",
    }
    for draft in kept:
        source = draft["source"]
        text = read_document(Path(source["file"]))
        assert text[source["start"] : source["end"]] == draft["chunk_text"]
        assert draft["answer"] in draft["chunk_text"] and draft["grounding"] >= 0.5
    reasons = {d["reason"]: d for d in dropped}
    assert reasons["ungrounded"]["answer"].startswith("多吃火锅")
    assert reasons["duplicate"]["detail"].startswith("the question of ")
    assert reasons["near_duplicate"]["question"] == NEAR + "呢"

    # A rerun asks for nothing and writes the same drafts.
    before = (tmp_path / "guide.drafts.jsonl").read_bytes()
    with StandIn(Script(), model="drafter") as server:
        again = json.loads(synthesize(server.url, tmp_path).output)
        assert server.requests == []
    assert again["requests"] == 0 and again["chunks_from_earlier_runs"] == len(chunks)
    assert (tmp_path / "guide.drafts.jsonl").read_bytes() == before


def test_grounding_counts_bigrams_and_words_found_in_the_chunk():
    chunk = "二甲双胍是2型糖尿病的首选药物。Metformin is first line."
    assert grounding("二甲双胍是2型糖尿病的首选", chunk) == 1.0
    assert grounding("Metformin is first line", chunk) == 1.0
    assert grounding("胰岛素泵", chunk) == 0.0
    assert 0 < grounding("二甲双胍可以治愈糖尿病", chunk) < 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.md", "missing.md: no such file or folder"),
        (lambda d: _write(d / "bad.pdf", "not a pdf"), "bad.pdf: not a readable PDF"),
        (lambda d: _write(d / "notes.rtf", "x"), "notes.rtf: not a document"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "empty: no documents in the folder"),
    ],
)  # fmt: skip
def test_a_bad_document_is_one_message_before_any_request(tmp_path, make, message):
    path = make(tmp_path)
    with StandIn(Script()) as server:
        args = ["data", "synthesize", str(path), "--endpoint", server.url, "--name", "x",
                "--dataset-dir", str(tmp_path / "d")]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert server.requests == []
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "d").exists()


GARBAGE = "好的，下面是一些问题：问题一……"


def test_an_unusable_reply_is_kept_with_its_text_and_asked_again_only_when_told(tmp_path):
    chunks = chunks_of_samples()
    (hypoglycemia,) = [c for c in chunks if c.heading == "低血糖的识别与处理"]
    with StandIn(Script(), model="drafter") as server:
        first = json.loads(synthesize(server.url, tmp_path).output)
    assert first["unparseable_chunks"] == first["unusable_waiting"] == 1
    responses = tmp_path / ".synthesis" / "guide" / "responses.jsonl"
    rows = [json.loads(line) for line in responses.read_text(encoding="utf-8").splitlines()]
    assert [row["raw"] for row in rows if row["value"] is None] == [GARBAGE]
    dropped = tmp_path / "guide.drafts.dropped.jsonl"
    (unusable,) = [
        row for row in map(json.loads, dropped.read_text(encoding="utf-8").splitlines())
        if row["reason"] == "unparseable"
    ]  # fmt: skip
    assert unusable["reply"] == GARBAGE and "--retry-unusable" in unusable["detail"]
    assert unusable["id"] == f"diabetes.docx#{hypoglycemia.index}"
    assert unusable["chunk_text"] == hypoglycemia.text

    # A plain rerun asks nothing and says the chunk is waiting, naming the flag.
    with StandIn(Script(), model="drafter") as server:
        result = synthesize(server.url, tmp_path, as_json=False)
        assert server.requests == []
    assert result.exit_code == 0, result.output
    (waiting,) = [line for line in result.output.splitlines() if "unusable replies" in line]
    assert re.search(r"waiting\s+│ 1 \(kept with the reply", waiting), waiting
    assert "--retry-unusable" in result.output

    # --retry-unusable asks that chunk, and only that one, again; the model now answers.
    answers_now = {**PLAN, ("diabetes.docx", "低血糖的识别与处理"): "good"}
    with StandIn(Script(answers_now), model="drafter") as server:
        again = json.loads(synthesize(server.url, tmp_path, "--retry-unusable").output)
        (asked,) = server.requests
    assert hypoglycemia.text in last_user_text(asked)
    assert again["requests"] == 1 and again["chunks_from_earlier_runs"] == len(chunks) - 1
    assert again["unparseable_chunks"] == again["unusable_waiting"] == 0
    assert again["kept"] == first["kept"] + 1
    assert "unparseable" not in dropped.read_text(encoding="utf-8")


@pytest.mark.parametrize("model", [None, "drafter"])
def test_a_rerun_with_every_chunk_answered_needs_no_server(tmp_path, model):
    chosen = ["--model", model] if model else []
    with StandIn(Script(), model="drafter") as server:
        first = json.loads(synthesize(server.url, tmp_path, *chosen).output)
        gone = server.url  # nothing answers here once the stand-in has stopped
    before = (tmp_path / "guide.drafts.jsonl").read_bytes()
    result = synthesize(gone, tmp_path, *chosen)
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)
    assert again["requests"] == 0 and again["chunks_from_earlier_runs"] == first["chunks"]
    assert (tmp_path / "guide.drafts.jsonl").read_bytes() == before
    # A request that is due still needs the server: one line, no traceback.
    result = synthesize(gone, tmp_path, *chosen, "--retry-unusable")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: no server answers at {gone}"), result.output
