"""`medfactory gateway --auth users --rate-limit 5/min --tls-cert … --tls-key …` in front of
the shared vLLM server: HTTPS only, personal tokens, one user over the limit while another
is served, and the store keeps the token's user."""

import subprocess
import sys
import time

import requests
from ab_helpers import BACKEND_KEY, REPO
from serving_helpers import make_certificate

from deploy.process import free_port, stop_group
from medfactory.ab.recorder import exchanges_since
from medfactory.store.db import open_store


def start_gateway(argv: list[str], health: str, cert, log):
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            if requests.get(health, verify=str(cert), timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.2)
    stop_group(process.pid, grace=5, reap=process.poll)
    raise AssertionError(log.read_text())


def test_a_users_gateway_over_tls_serves_tokens_limits_one_user_and_records_the_tokens_user(
    ab_server, tmp_path
):
    from medfactory.access.users import add_user

    store_url = f"sqlite:///{tmp_path / 'ab.db'}"
    store = open_store(store_url)
    _h, heavy = add_user(store, "dr.heavy", "clinician")
    _l, light = add_user(store, "dr.light", "clinician")
    cert, key = make_certificate(tmp_path)
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    argv = [
        sys.executable, "-m", "medfactory", "gateway", "--port", str(port), "--db", store_url,
        "--backend-api-key", BACKEND_KEY, "--arm", f"base={ab_server.spec.base_url},model=tiny",
        "--auth", "users", "--rate-limit", "5/min", "--tls-cert", str(cert), "--tls-key", str(key),
    ]  # fmt: skip
    log = tmp_path / "gateway.log"
    process = start_gateway(argv, f"{base}/health", cert, log)
    question = [{"role": "user", "content": "头痛三天，需要做什么检查？"}]
    body = {"model": "x", "messages": question, "user": "somebody-else", "max_tokens": 4}

    def chat(token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{base}/v1/chat/completions", json=body, headers=headers,
                             verify=str(cert), timeout=120)  # fmt: skip

    try:
        # HTTPS only: plain HTTP to the same port gets no page.
        try:
            plain = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert plain.status_code != 200
        except requests.ConnectionError:
            pass
        refused = chat(None)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        assert [chat(heavy).status_code for _ in range(5)] == [200] * 5
        over = chat(heavy)
        assert over.status_code == 429
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert over.json()["error"]["code"] == "rate_limit_exceeded"
        assert chat(light).status_code == 200  # the others are served
        metrics = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {light}"},
                               verify=str(cert), timeout=10).text  # fmt: skip
        assert 'medfactory_gateway_rate_limited_total{arm="base"} 1.0' in metrics
    finally:
        stop_group(process.pid, grace=10, reap=process.poll)
        process.wait()
    assert "plain HTTP" not in log.read_text()  # loopback with TLS: no warning
    users = sorted(row["user"] for row in exchanges_since(store, "ab"))
    assert users == ["dr.heavy"] * 5 + ["dr.light"]


def test_plain_http_on_the_network_is_said_once(ab_server, tmp_path):
    host = "0.0.0.0"
    port = free_port()
    argv = [
        sys.executable, "-m", "medfactory", "gateway", "--port", str(port), "--host", host,
        "--db", f"sqlite:///{tmp_path / 'ab.db'}", "--backend-api-key", BACKEND_KEY,
        "--arm", f"base={ab_server.spec.base_url},model=tiny",
    ]  # fmt: skip
    log = tmp_path / "gateway.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "gateway 'ab' on" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        stop_group(process.pid, grace=10, reap=process.poll)
        process.wait()
    warnings = [line for line in log.read_text().splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "plain HTTP on 0.0.0.0" in warnings[0]
