"""Retrieval against real vLLM servers on the tiny model.

Dense retrieval: vLLM serves the tiny Qwen2 model's last-token embeddings
(`--runner pooling --convert embed`) on `/v1/embeddings`, the path a team uses
with a real embeddings model. The prompt: the augmented conversation goes
through the session's chat server and its chat template unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner
from transformers import AutoTokenizer

from deploy.client import Endpoint
from deploy.process import free_port
from deploy.server import Server, ServerSpec
from medfactory import paths
from medfactory.cli import cli
from medfactory.evaluation.exam import read_exam_file
from medfactory.rag import augmenter
from medfactory.rag.search import Retriever

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = REPO / "dataset_info" / "samples" / "documents"
EXAM = REPO / "dataset_info" / "samples" / "medical_exam_sample.csv"
KEY = "embed-key"


@pytest.fixture(scope="module")
def embeddings_server(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vllm-embed")
    spec = ServerSpec(
        python=paths.vllm_python(), model=tiny_model, port=free_port(),
        served_model_name="tiny-embed", max_model_len=512, api_key=KEY, enforce_eager=True,
        extra_args=("--runner", "pooling", "--convert", "embed"),
    )  # fmt: skip
    with Server(spec, folder / "vllm.log").start() as server:
        yield server


def embed(server, texts: list[str]) -> np.ndarray:
    reply = requests.post(
        f"{server.spec.base_url}/v1/embeddings", json={"model": "tiny-embed", "input": texts},
        headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
    )  # fmt: skip
    reply.raise_for_status()
    return np.array([item["embedding"] for item in reply.json()["data"]], dtype=np.float32)


def run(*args):
    return CliRunner().invoke(cli, ["rag", *map(str, args)])


def test_dense_retrieval_through_vllm_embeddings(embeddings_server, tiny_model, tmp_path):
    url = embeddings_server.spec.base_url
    result = run("index", DOCUMENTS, "--name", "g", "--index-dir", tmp_path,
                 "--embeddings-endpoint", f"{url}/v1", "--embeddings-model", "tiny-embed",
                 "--api-key", KEY)  # fmt: skip
    assert result.exit_code == 0, result.output
    hidden = json.loads((tiny_model / "config.json").read_text())["hidden_size"]
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["embeddings"] == {"endpoint": url, "model": "tiny-embed", "dimension": hidden}

    # The stored vectors are the server's, at unit length, in chunk order.
    version = tmp_path / "g" / manifest["data"]
    chunks = [json.loads(line) for line in (version / "chunks.jsonl").open(encoding="utf-8")]
    stored = np.load(version / "vectors.npy")
    served = embed(embeddings_server, [f"{c['topic']}\n{c['text']}" for c in chunks])
    served /= np.linalg.norm(served, axis=1, keepdims=True)
    assert np.allclose(stored, served, atol=2e-3)

    # Dense ranking is the cosine ranking of the question's served embedding.
    query = "血糖低于3.9怎么办"
    dense = Retriever.open("g", tmp_path, mode="dense", api_key=KEY).search(query, 3)
    question = embed(embeddings_server, [query])[0]
    cosine = served @ (question / np.linalg.norm(question))
    expected = sorted(range(len(chunks)), key=lambda row: (-cosine[row], row))[:3]
    assert [(p.file, p.start) for p in dense] == [
        (chunks[r]["file"], chunks[r]["start"]) for r in expected
    ]
    hybrid = run("search", "g", query, "--index-dir", tmp_path, "--api-key", KEY, "--json")
    assert hybrid.exit_code == 0, hybrid.output
    assert len(json.loads(hybrid.output)) == 3


def test_the_embeddings_server_refusing_is_one_line(embeddings_server, tmp_path):
    url = f"{embeddings_server.spec.base_url}/v1"
    for extra, says in (
        (["--embeddings-model", "no-such-model", "--api-key", KEY], "HTTP 404"),
        (["--embeddings-model", "tiny-embed", "--api-key", "wrong"], "HTTP 401"),
    ):
        result = run("index", DOCUMENTS, "--name", "g", "--index-dir", tmp_path,
                     "--embeddings-endpoint", url, *extra)  # fmt: skip
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert says in result.output
    assert not (tmp_path / "g").exists()


def test_the_augmented_prompt_reaches_the_chat_model_whole(tiny_server, tiny_model, tmp_path):
    assert run("index", DOCUMENTS, "--name", "g", "--index-dir", tmp_path).exit_code == 0
    augment = augmenter("g", top=2, index_dir=tmp_path)
    messages = [
        {"role": "system", "content": "你是一名全科医生。"},
        {"role": "user", "content": "吃ACEI类降压药干咳怎么办？"},
    ]
    augmented, passages = augment(messages)
    assert passages[0]["file"] == "hypertension.md" and passages[0]["heading"] == "药物治疗"

    endpoint = Endpoint(tiny_server.spec.base_url, api_key="test-key", model="tiny")
    prompt = AutoTokenizer.from_pretrained(tiny_model).decode(endpoint.tokenize(augmented))
    assert "你是一名全科医生。" in prompt
    assert "[资料1] 来源：hypertension.md · 药物治疗" in prompt
    assert "不能耐受时可换用ARB" in prompt
    assert prompt.index("[资料1]") < prompt.index("问题：吃ACEI类降压药干咳怎么办？")
    reply = endpoint.chat(augmented, max_tokens=4, temperature=0)
    plain = endpoint.chat(messages, max_tokens=4, temperature=0)
    assert reply["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 50


def test_eval_endpoint_with_retrieval_four_ways(tiny_server, tiny_model, data_dir, tmp_path):
    """base, base+rag, lora, lora+rag on the same split: the rag runs send each question
    with its passages, keep them in the record, and pair with the plain runs."""
    assert run("index", DOCUMENTS, "--name", "g", "--index-dir", tmp_path).exit_code == 0
    runs = {}
    for model in ("tiny", "lora"):
        for rag in (False, True):
            out = tmp_path / "eval" / (model + ("+rag" if rag else ""))
            args = [
                "eval", "endpoint", "--endpoint", tiny_server.spec.base_url,
                "--api-key", "test-key", "--model-name", model,
                "--dataset", "huatuo_sample_test", "--dataset-dir", str(data_dir),
                "--max-samples", "4", "--max-tokens", "8", "--out", str(out), "--workers", "1",
            ]  # fmt: skip
            if rag:
                args += ["--rag", "g", "--top", "2", "--index-dir", str(tmp_path)]
            result = CliRunner().invoke(cli, args)
            assert result.exit_code == 0, result.output
            runs[out.name] = [
                json.loads(line) for line in (out / "generated_predictions.jsonl").open()
            ]

    retriever = Retriever.open("g", tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for plain, rag in ((runs["tiny"], runs["tiny+rag"]), (runs["lora"], runs["lora+rag"])):
        assert [r["prompt"] for r in rag] == [r["prompt"] for r in plain]
        assert all("passages" not in r for r in plain)
        for row in rag:
            expected = retriever.search(row["prompt"], 2)
            assert row["passages"] == [passage.source() for passage in expected]
            for passage in expected:  # the passage text itself went to the model
                assert passage.text.strip()[:40] in row["rag_prompt"]
            assert row["rag_prompt"].rstrip().endswith(row["prompt"].strip()[-10:])
            sent = [*row["messages"][:-1], {"role": "user", "content": row["rag_prompt"]}]
            ids = tokenizer.apply_chat_template(sent, add_generation_prompt=True, return_dict=True)
            assert row["prompt_tokens"] == len(ids["input_ids"])

    folders = [str(tmp_path / "eval" / name) for name in ("tiny", "tiny+rag", "lora", "lora+rag")]
    compared = CliRunner().invoke(cli, ["eval", "compare", *folders, "--out", str(tmp_path / "c")])
    assert compared.exit_code == 0, compared.output
    report = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert report["baseline"] == "tiny" and report["samples"] == 4
    assert list(report["means"]) == ["tiny", "tiny+rag", "lora", "lora+rag"]
    assert set(report["deltas"]) == {"tiny+rag", "lora", "lora+rag"}


def test_a_gateway_arm_with_retrieval_answers_streamed_and_records_its_passages(
    ab_server, tiny_model, tmp_path
):
    from ab_helpers import Gateway, ask

    from medfactory.ab.recorder import exchanges_since
    from medfactory.store.db import open_store

    assert run("index", DOCUMENTS, "--name", "g", "--index-dir", tmp_path).exit_code == 0
    backend = ab_server.spec.base_url
    store_url = f"sqlite:///{tmp_path / 'ab.db'}"
    arms = [f"rag={backend},model=tiny,rag=g,top=2"]
    messages = [{"role": "user", "content": "吃ACEI类降压药干咳怎么办？"}]
    with Gateway(arms, store_url, tmp_path / "gateway.log", "--index-dir", str(tmp_path)) as gw:
        answer = ask(gw.url, "dr-li", messages, stream=True,
                     stream_options={"include_usage": True})  # fmt: skip
        no_question = ask(gw.url, "dr-li", [{"role": "system", "content": "你好"}])
    assert answer["status"] == 200 and answer["arm"] == "rag" and "error" not in answer
    assert answer["events"][-1] == "[DONE]"
    assert no_question["status"] == 400 and "no user question" in no_question["error"]

    expected, sources = augmenter("g", top=2, index_dir=tmp_path)(messages)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    sent = tokenizer.apply_chat_template(expected, add_generation_prompt=True, return_dict=True)
    assert answer["usage"]["prompt_tokens"] == len(sent["input_ids"])  # the passages went in

    [row] = exchanges_since(open_store(store_url), "ab")
    assert row["arm"] == "rag" and row["messages"] == messages  # the question as asked
    assert row["passages"] == sources and sources[0]["file"] == "hypertension.md"
    assert row["replica"] == backend


def test_a_gateway_arm_on_a_missing_index_does_not_start(ab_server, tmp_path):
    from ab_helpers import Gateway

    arms = [f"rag={ab_server.spec.base_url},model=tiny,rag=nowhere"]
    with pytest.raises(AssertionError, match="nowhere"):
        Gateway(arms, f"sqlite:///{tmp_path / 'ab.db'}", tmp_path / "gw.log",
                "--index-dir", str(tmp_path))  # fmt: skip


def test_an_exam_with_retrieval_sends_each_question_with_its_passages(tiny_server, tmp_path):
    """`eval exam --rag`: EvalScope asks through the relay, every question it asks gets
    its passages, and the report names the server and the index."""
    assert run("index", DOCUMENTS, "--name", "g", "--index-dir", tmp_path).exit_code == 0
    out = tmp_path / "exam+rag"
    result = CliRunner().invoke(
        cli,
        ["eval", "exam", "--endpoint", tiny_server.spec.base_url, "--api-key", "test-key",
         "--model-name", "tiny", "--benchmark", str(EXAM), "--limit", "1", "--max-tokens", "8",
         "--rag", "g", "--top", "2", "--index-dir", str(tmp_path), "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "exam.json").read_text())
    asked = report["overall"]["questions"]
    assert asked == len(report["subjects"]) >= 2  # --limit 1: one question a subject
    assert report["endpoint"] == tiny_server.spec.base_url
    assert report["rag"] == {"index": "g", "questions_with_passages": asked}
    given = [json.loads(line) for line in (out / "passages.jsonl").open()]
    retriever = Retriever.open("g", tmp_path)
    for row in given:
        assert row["passages"] == [p.source() for p in retriever.search(row["question"], 2)]
    stems = {q["question"] for q in read_exam_file(EXAM)}
    assert sum(any(stem in row["question"] for stem in stems) for row in given) == asked
