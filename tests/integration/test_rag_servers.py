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
from medfactory.rag import augmenter
from medfactory.rag.search import Retriever

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = REPO / "dataset_info" / "samples" / "documents"
KEY = "embed-key"


@pytest.fixture(scope="module")
def embeddings_server(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vllm-embed")
    spec = ServerSpec(
        python=paths.vllm_python(), model=tiny_model, port=free_port(),
        served_model_name="tiny-embed", max_model_len=512, api_key=KEY,
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
