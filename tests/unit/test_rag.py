"""Retrieval over the team's documents: index, search, prompt, evaluation, bad input.

The bundled documents (dataset_info/samples/documents/: Markdown, DOCX, PDF) are
indexed for real with bm25s; dense retrieval talks over HTTP to a local
stand-in for `/v1/embeddings` (the real vLLM path is in
tests/integration/test_rag_servers.py).
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.rag import augmenter
from medfactory.rag.build import IndexOptions, build_index
from medfactory.rag.errors import RagError
from medfactory.rag.evaluate import read_questions
from medfactory.rag.search import Retriever, _best, fuse
from medfactory.rag.tokens import terms, terms_of_all

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = REPO / "dataset_info" / "samples" / "documents"

# Questions a patient or a student would ask, in their own words (none copies a
# sentence of the documents); each names the phrase its answering passage holds,
# or its source. "吃盐" for the guideline's "食盐" is a paraphrase BM25 cannot
# bridge (no shared term): recall@3 is 17/18 here, not 18/18.
QUESTIONS = [
    ("诊室量血压，高压和低压分别到多少才能确诊高血压？", "answer_contains", "收缩压≥140 mmHg"),
    ("在家自己测的血压，多少算高？", "answer_contains", "家庭血压的诊断标准"),
    ("量血压之前要先歇多久？", "answer_contains", "安静休息至少5分钟"),
    ("高血压病人一天吃盐不能超过多少？", "answer_contains", "食盐摄入应少于5克"),
    ("血压高的人每周锻炼几次、每次多长时间合适？", "answer_contains", "每周4到7次"),
    ("吃降压药普利类出现咳嗽，可以换成什么药？", "answer_contains", "不能耐受时可换用ARB"),
    ("怀孕的女性能用哪些降压药要避免？", "answer_contains", "妊娠期妇女禁用ACEI和ARB"),
    ("血压很高还头痛胸痛，需要马上去医院吗？", "source", "hypertension.md#何时转诊"),
    ("随机血糖多少可以确诊糖尿病？", "answer_contains", "随机血糖≥11.1 mmol/L"),
    ("2型糖尿病一般先吃什么药？", "answer_contains", "二甲双胍是2型糖尿病无禁忌证时的首选药物"),
    ("肾功能差到什么程度就不能再用二甲双胍？", "answer_contains",
     "低于30 ml/min/1.73m²时禁用二甲双胍"),
    ("糖尿病人有心脏血管病，可以加用哪类药？", "answer_contains", "SGLT2抑制剂"),
    ("低血糖的时候人会有什么感觉？", "answer_contains", "心慌、出汗、手抖"),
    ("血糖太低但人还清醒，应该吃多少糖？", "source", "diabetes.docx#低血糖的识别与处理"),
    ("Which breathing test confirms an asthma diagnosis?", "answer_contains",
     "bronchodilator reversibility test"),
    ("What is the mainstay medicine for keeping asthma under control over the long term?",
     "answer_contains", "Inhaled corticosteroids are the basis"),
    ("How often can someone use a reliever inhaler before their asthma counts as poorly "
     "controlled?", "answer_contains", "more than twice a week"),
    ("Which signs mean an asthma attack is life-threatening?", "answer_contains", "blue lips"),
]  # fmt: skip


def write_questions(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for question, key, value in QUESTIONS:
            out.write(json.dumps({"question": question, key: value}, ensure_ascii=False) + "\n")
    return path


def run(*args: str):
    return CliRunner().invoke(cli, ["rag", *map(str, args)])


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def guidelines(tmp_path_factory) -> Path:
    """The bundled documents indexed once as `guidelines`; the index folder."""
    index_dir = tmp_path_factory.mktemp("rag")
    result = run("index", DOCUMENTS, "--name", "guidelines", "--index-dir", index_dir)
    assert result.exit_code == 0, result.output
    return index_dir


# -- terms ---------------------------------------------------------------------------------


def test_chinese_is_cut_into_words_and_their_parts_english_into_stems():
    found = terms("高血压患者应该吃什么药？Inhalers and corticosteroids, FEV1 of 12 percent")
    assert "高血压" in found and "血压" in found  # search mode: the word and its parts
    assert "患者" not in found and "什么" not in found and "应该" not in found  # function words
    assert {"inhal", "corticosteroid", "fev1", "12", "percent"} <= set(found)
    assert "and" not in found and "of" not in found


def test_the_parallel_reading_gives_the_terms_of_the_plain_one(monkeypatch):
    import medfactory.rag.tokens as tokens

    texts = [f"第{i}次复诊：血压{120 + i}/80 mmHg，continue inhaled steroids" for i in range(40)]
    monkeypatch.setattr(tokens, "PARALLEL_CHARS", 0)
    assert terms_of_all(texts, workers=2) == [terms(text) for text in texts]


# -- index ---------------------------------------------------------------------------------


def test_the_index_keeps_every_document_its_hash_and_every_chunk_with_its_source(guidelines):
    import hashlib

    folder = guidelines / "guidelines"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {"asthma.pdf", "diabetes.docx", "hypertension.md"}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((DOCUMENTS / name).read_bytes()).hexdigest()
        assert entry["chunks"] >= 1
    chunks = [json.loads(line) for line in (folder / manifest["data"] / "chunks.jsonl").open()]
    assert manifest["chunks"] == len(chunks) == sum(f["chunks"] for f in manifest["files"].values())
    # The character range is the document's: the markdown file's own text at that range.
    text = (DOCUMENTS / "hypertension.md").read_text(encoding="utf-8")
    for chunk in (c for c in chunks if c["file"] == "hypertension.md"):
        assert text[chunk["start"] : chunk["end"]] == chunk["text"]
    headings = {c["heading"] for c in chunks if c["file"] == "hypertension.md"}
    assert {"诊断", "生活方式干预", "药物治疗", "何时转诊"} <= headings
    assert not list(folder.glob(".*partial"))


def test_search_finds_the_passage_and_names_its_source(guidelines):
    result = run("search", "guidelines", "二甲双胍什么情况下禁用", "--top", "2",
                 "--index-dir", guidelines, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    passages = json.loads(result.output)
    assert len(passages) == 2
    first = passages[0]
    assert (first["rank"], first["file"], first["heading"]) == (1, "diabetes.docx", "药物治疗")
    assert "禁用二甲双胍" in first["text"] and first["end"] > first["start"]
    text = run("search", "guidelines", "asthma inhaler", "--index-dir", guidelines)
    assert text.exit_code == 0 and "[1] asthma.pdf" in text.output


def test_bm25_recall_at_3_on_paraphrased_questions_is_at_least_0_9(guidelines, tmp_path):
    questions = write_questions(tmp_path / "questions.jsonl")
    result = run("eval", "guidelines", "--questions", questions, "--top", "3",
                 "--index-dir", guidelines, "--out", tmp_path / "report")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["mode"] == "bm25" and report["questions"] == len(QUESTIONS)
    assert report["recall"]["3"] >= 0.9, report["rows"]
    assert report["recall"]["1"] <= report["recall"]["2"] <= report["recall"]["3"]
    assert 0 < report["mrr"] <= report["recall"]["3"]
    assert report["not_in_index"] == []
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "recall@3" in markdown and f"{report['recall']['3']:.2f}" in markdown
    assert f"recall@3 {report['recall']['3']:.2f}" in result.output


def test_evaluation_counts_ranks_as_a_plain_reading_of_the_definitions(guidelines, tmp_path):
    retriever = Retriever.open("guidelines", guidelines)
    questions = read_questions(write_questions(tmp_path / "q.jsonl"))
    from medfactory.rag.evaluate import evaluate

    report = evaluate(retriever, questions, top=3)
    ranks = []
    for question in questions:
        found = retriever.search(question.question, 3)
        ranks.append(next((i + 1 for i, p in enumerate(found) if question.answered_by(p)), 0))
    assert report["recall"]["2"] == sum(0 < r <= 2 for r in ranks) / len(ranks)
    assert report["mrr"] == pytest.approx(sum(1 / r for r in ranks if r) / len(ranks))


def test_rerunning_rebuilds_only_what_changed(tmp_path):
    docs, index_dir = tmp_path / "docs", tmp_path / "rag"
    shutil.copytree(DOCUMENTS, docs)
    options = IndexOptions("g", index_dir)
    first = build_index([docs], options)
    assert (first["documents_read"], first["documents_reused"]) == (3, 0)
    version = json.loads((index_dir / "g" / "manifest.json").read_text())["data"]

    again = build_index([docs], options)  # nothing changed: nothing written
    assert (again["updated"], again["documents_read"], again["documents_reused"]) == (False, 0, 3)
    assert json.loads((index_dir / "g" / "manifest.json").read_text())["data"] == version

    markdown = docs / "hypertension.md"
    markdown.write_text(markdown.read_text(encoding="utf-8") + "\n## 随访\n\n每三个月随访一次。\n",
                        encoding="utf-8")  # fmt: skip
    (docs / "asthma.pdf").unlink()
    (docs / "notes.txt").write_text("# 痛风\n\n急性发作期可用秋水仙碱。\n", encoding="utf-8")
    changed = build_index([docs], options)
    assert changed["documents_read"] == 2  # the changed and the new one
    assert (changed["documents_reused"], changed["documents_removed"]) == (1, 1)
    manifest = json.loads((index_dir / "g" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"diabetes.docx", "hypertension.md", "notes.txt"}
    assert manifest["data"] != version and not (index_dir / "g" / version).exists()
    retriever = Retriever.open("g", index_dir)
    assert retriever.search("多久随访一次", 1)[0].heading == "随访"
    assert retriever.search("痛风发作吃什么药", 1)[0].file == "notes.txt"
    assert not retriever.search("asthma inhaler", 3)  # the removed document is gone
    # The reused document's passages are those of a fresh build.
    fresh = build_index([docs], IndexOptions("fresh", index_dir))
    assert fresh["chunks"] == manifest["chunks"]
    rows = {name: (index_dir / name / json.loads((index_dir / name / "manifest.json").read_text())
                   ["data"] / "chunks.jsonl").read_text(encoding="utf-8")
            for name in ("g", "fresh")}  # fmt: skip
    assert rows["g"] == rows["fresh"]


def test_chunks_are_de_identified_before_they_are_stored(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "clinic.md").write_text(
        "# 门诊须知\n\n预约请联系王医生，电话13812345678，邮箱 wang@example.com。\n",
        encoding="utf-8",
    )
    summary = build_index([docs], IndexOptions("clinic", tmp_path / "rag"))
    assert summary["pii_replaced"] == {"email": 1, "mobile": 1}
    stored = b"".join(tree(tmp_path / "rag").values()).decode("utf-8", "replace")
    assert "13812345678" not in stored and "wang@example.com" not in stored
    passage = Retriever.open("clinic", tmp_path / "rag").search("预约电话", 1)[0]
    assert "[PHONE]" in passage.text and "[EMAIL]" in passage.text


# -- the prompt ----------------------------------------------------------------------------


def test_augment_puts_the_passages_and_their_sources_before_the_last_question(guidelines):
    augment = augmenter("guidelines", top=2, index_dir=guidelines)
    messages = [
        {"role": "system", "content": "你是一名全科医生。"},
        {"role": "user", "content": "我有高血压"},
        {"role": "assistant", "content": "请问您在吃什么药？"},
        {"role": "user", "content": "血糖低于多少要马上吃糖？"},
    ]
    augmented, passages = augment(messages)
    assert augmented[:3] == messages[:3] and messages[3]["content"] == "血糖低于多少要马上吃糖？"
    content = augmented[3]["content"]
    assert [p["rank"] for p in passages] == [1, 2]
    assert set(passages[0]) == {"rank", "score", "file", "heading", "start", "end"}
    assert passages[0]["file"] == "diabetes.docx" and passages[0]["heading"] == "低血糖的识别与处理"
    assert "[资料1] 来源：diabetes.docx · 低血糖的识别与处理" in content
    assert "应立即口服15到20克葡萄糖" in content
    assert content.index("[资料1]") < content.index("[资料2]") < content.index("问题：血糖低于多少")

    english, sources = augment([{"role": "user", "content": "When is asthma poorly controlled?"}])
    assert sources[0]["file"] == "asthma.pdf"
    assert "[Passage 1] Source: asthma.pdf" in english[0]["content"]
    assert english[0]["content"].endswith("Question: When is asthma poorly controlled?")


def test_a_question_nothing_matches_still_reaches_the_model(guidelines):
    augmented, passages = augmenter("guidelines", index_dir=guidelines)(
        [{"role": "user", "content": "量子色动力学"}]
    )
    assert passages == []
    assert "没有检索到相关资料" in augmented[0]["content"]


def test_the_relay_puts_the_passages_into_each_chat_request_and_keeps_them(guidelines):
    """What `eval exam --rag` puts between EvalScope and the server."""
    from openai_standin import StandIn, last_user_text

    from medfactory.rag.relay import Relay

    question = "血糖低于多少要马上吃糖？\nA. 3.9\nB. 7.0"
    with StandIn(last_user_text, model="tiny") as server:
        with Relay(server.url, augmenter("guidelines", top=2, index_dir=guidelines)) as relay:
            models = requests.get(f"{relay.url}/v1/models", timeout=10)
            reply = requests.post(
                f"{relay.url}/v1/chat/completions", timeout=10,
                json={"model": "tiny", "messages": [{"role": "user", "content": question}]},
            )  # fmt: skip
            refused = requests.post(f"{relay.url}/v1/chat/completions", data=b"{", timeout=10)
        assert models.json()["data"] == [{"id": "tiny"}]
        sent = reply.json()["choices"][0]["message"]["content"]  # the stand-in echoes it
        assert server.requests[0]["messages"][0]["content"] == sent
        assert "应立即口服15到20克葡萄糖" in sent and sent.rstrip().endswith("B. 7.0")
        expected = augmenter("guidelines", top=2, index_dir=guidelines)(
            [{"role": "user", "content": question}]
        )[1]
        assert relay.given == [{"question": question, "passages": expected}]
        assert expected[0]["file"] == "diabetes.docx"
        assert refused.status_code >= 400  # not JSON: passed on as it was, and refused there
        assert len(server.requests) == 1


# -- dense retrieval through an OpenAI-compatible /v1/embeddings ----------------------------


class EmbeddingsStandIn:
    """`/v1/embeddings` answering with hashed bags of search terms (`dimension` of them):
    texts that share terms point the same way, as a real model's would."""

    def __init__(self, dimension: int = 64, model: str = "embed-standin"):
        self.dimension, self.model, self.requests = dimension, model, []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.requests.append(body)
                if body.get("model") != standin.model:
                    status, payload = 404, {"error": {"message": "model not found"}}
                else:
                    status, payload = 200, {"object": "list", "model": standin.model, "data": [
                        {"object": "embedding", "index": i, "embedding": standin.vector(text)}
                        for i, text in enumerate(body["input"])
                    ]}  # fmt: skip
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for term in terms(text):
            vector[zlib.crc32(term.encode()) % self.dimension] += 1.0
        return vector

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_dense_vectors_are_stored_and_fused_with_bm25_by_reciprocal_rank(tmp_path):
    index_dir = tmp_path / "rag"
    with EmbeddingsStandIn() as standin:
        result = run("index", DOCUMENTS, "--name", "dense", "--index-dir", index_dir,
                     "--embeddings-endpoint", standin.url,
                     "--embeddings-model", standin.model)  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "64 dimensions" in result.output
        manifest = json.loads((index_dir / "dense" / "manifest.json").read_text())
        assert manifest["embeddings"] == {
            "endpoint": standin.url.removesuffix("/v1"),
            "model": standin.model,
            "dimension": 64,
        }
        vectors = np.load(index_dir / "dense" / manifest["data"] / "vectors.npy")
        assert vectors.shape == (manifest["chunks"], 64)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)

        hybrid = Retriever.open("dense", index_dir)
        assert hybrid.mode == "hybrid"
        query = "低血糖意识不清怎么办"
        fused = hybrid.search(query, 3)
        bm25 = Retriever.open("dense", index_dir, mode="bm25")._bm25(query, 50)
        dense = Retriever.open("dense", index_dir, mode="dense")._dense(query, 50)
        expected = fuse([bm25, dense])[:3]
        assert [(p.file, p.start) for p in fused] == [
            (hybrid.chunks[row]["file"], hybrid.chunks[row]["start"]) for row, _ in expected
        ]
        assert fused[0].heading == "低血糖的识别与处理"

        questions = write_questions(tmp_path / "questions.jsonl")
        report = run("eval", "dense", "--questions", questions, "--index-dir", index_dir, "--json")
        assert report.exit_code == 0, report.output
        assert json.loads(report.output)["mode"] == "hybrid"

        # A rerun without the options keeps the vectors, and embeds only what changed.
        docs = tmp_path / "docs"
        shutil.copytree(DOCUMENTS, docs)
        (docs / "notes.txt").write_text("# 痛风\n\n急性发作期可用秋水仙碱。\n", encoding="utf-8")
        asked = len(standin.requests)
        summary = build_index([docs], IndexOptions("dense", index_dir))
        assert summary["documents_read"] == 1 and summary["embeddings"]["dimension"] == 64
        embedded = [text for body in standin.requests[asked:] for text in body["input"]]
        assert len(embedded) == 2 and "秋水仙碱" in embedded[1]  # the probe, the new passage
        assert Retriever.open("dense", index_dir).search("痛风", 1)[0].file == "notes.txt"


def test_an_embeddings_server_of_another_dimension_is_refused_with_one_line(tmp_path):
    index_dir = tmp_path / "rag"
    with EmbeddingsStandIn(dimension=64) as built:
        build_index([DOCUMENTS], IndexOptions("dense", index_dir, embeddings_endpoint=built.url,
                                              embeddings_model=built.model))  # fmt: skip
    with EmbeddingsStandIn(dimension=32) as other:
        line = error_line(run("search", "dense", "哮喘", "--index-dir", index_dir,
                              "--embeddings-endpoint", other.url))  # fmt: skip
    assert "32-dimension" in line and "64-dimension" in line


def test_an_embeddings_server_that_does_not_answer_is_one_line(tmp_path):
    index_dir = tmp_path / "rag"
    with EmbeddingsStandIn() as standin:
        build_index([DOCUMENTS], IndexOptions("dense", index_dir, embeddings_endpoint=standin.url,
                                              embeddings_model=standin.model))  # fmt: skip
        url = standin.url
    line = error_line(run("search", "dense", "哮喘", "--index-dir", index_dir))
    assert "no embeddings server answers at" in line and url.removesuffix("/v1") in line
    # BM25 alone still works without it.
    assert run("search", "dense", "哮喘", "--mode", "bm25", "--index-dir", index_dir).exit_code == 0


def test_an_unknown_embeddings_model_is_one_line_and_nothing_is_written(tmp_path):
    with EmbeddingsStandIn() as standin:
        line = error_line(run("index", DOCUMENTS, "--name", "dense", "--index-dir", tmp_path,
                              "--embeddings-endpoint", standin.url,
                              "--embeddings-model", "no-such-model"))  # fmt: skip
    assert "HTTP 404" in line and "--embeddings-model" in line
    assert tree(tmp_path) == {}


# -- bad input: one line each, nothing half-written -----------------------------------------


def test_an_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    line = error_line(
        run("index", tmp_path / "empty", "--name", "g", "--index-dir", tmp_path / "rag")
    )
    assert "no documents in the folder" in line
    assert not (tmp_path / "rag").exists()


def test_a_scan_without_text_is_one_line_and_the_old_index_stays(tmp_path):
    from pypdf import PdfWriter

    docs, index_dir = tmp_path / "docs", tmp_path / "rag"
    shutil.copytree(DOCUMENTS, docs)
    assert run("index", docs, "--name", "g", "--index-dir", index_dir).exit_code == 0
    before = tree(index_dir)
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with (docs / "scan.pdf").open("wb") as out:
        writer.write(out)
    line = error_line(run("index", docs, "--name", "g", "--index-dir", index_dir))
    assert "scan.pdf" in line and "no text" in line
    assert tree(index_dir) == before


def test_a_failed_embedding_leaves_the_old_index_whole(tmp_path):
    index_dir = tmp_path / "rag"
    assert run("index", DOCUMENTS, "--name", "g", "--index-dir", index_dir).exit_code == 0
    before = tree(index_dir)
    line = error_line(run("index", DOCUMENTS, "--name", "g", "--index-dir", index_dir,
                          "--embeddings-endpoint", "http://127.0.0.1:9",
                          "--embeddings-model", "m"))  # fmt: skip
    assert "no embeddings server answers at http://127.0.0.1:9" in line
    assert tree(index_dir) == before


def test_an_index_that_does_not_exist_is_one_line_naming_those_that_do(guidelines, tmp_path):
    line = error_line(run("search", "guidlines", "血压", "--index-dir", guidelines))
    assert "no index 'guidlines'" in line and "guidelines" in line and "rag index" in line
    questions = write_questions(tmp_path / "q.jsonl")
    line = error_line(run("eval", "nothing", "--questions", questions, "--index-dir", tmp_path))
    assert "no index 'nothing'" in line


@pytest.mark.parametrize("top", ["0", "-2"])
def test_top_below_one_is_one_line(guidelines, tmp_path, top):
    assert "--top" in error_line(run("search", "guidelines", "血压", "--top", top,
                                     "--index-dir", guidelines))  # fmt: skip
    questions = write_questions(tmp_path / "q.jsonl")
    assert "--top" in error_line(run("eval", "guidelines", "--questions", questions,
                                     "--top", top, "--index-dir", guidelines))  # fmt: skip
    with pytest.raises(RagError, match="--top"):
        augmenter("guidelines", top=int(top), index_dir=guidelines)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('{"question": "x"', "not JSON"),
        ('{"question": "x", "answer": "y"}', "unknown key 'answer'"),
        ('{"answer_contains": "y"}', "no 'question'"),
        ('{"question": "x"}', "give 'answer_contains'"),
        ('{"question": "x", "source": "nowhere.md"}', "not a document of index"),
    ],
)
def test_a_bad_question_line_is_named_by_its_number(guidelines, tmp_path, line, says):
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "血压", "answer_contains": "血压"}\n\n' + line + "\n")
    message = error_line(run("eval", "guidelines", "--questions", path, "--index-dir", guidelines))
    assert says in message and "3" in message


def test_a_bad_index_name_is_refused(tmp_path):
    line = error_line(run("index", DOCUMENTS, "--name", "../up", "--index-dir", tmp_path))
    assert "--name" in line and tree(tmp_path) == {}


# -- the fast paths against plain twins ------------------------------------------------------


def test_the_partial_sort_ranks_as_a_full_sort():
    rng = random.Random(3)
    for _ in range(200):
        scores = np.array([rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(40)])
        depth = rng.randint(1, 45)
        plain = sorted(range(len(scores)), key=lambda row: (-scores[row], row))[:depth]
        assert [row for row, _ in _best(scores, depth, positive_only=False)] == plain
        assert [row for row, _ in _best(scores, depth)] == [r for r in plain if scores[r] > 0]


def test_reciprocal_rank_fusion_adds_one_over_sixty_plus_rank():
    fused = dict(fuse([[(7, 9.0), (3, 5.0)], [(3, 0.9), (8, 0.8)]]))
    assert fused[3] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[7] == pytest.approx(1 / 61) and fused[8] == pytest.approx(1 / 62)
    assert list(dict(fuse([[(7, 9.0), (3, 5.0)], [(3, 0.9), (8, 0.8)]]))) == [3, 7, 8]
