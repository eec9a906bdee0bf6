"""The gateway's access: personal tokens, a trusted sign-on proxy, per-user limits, TLS and
scrubbed storage, on the real app and store with a stand-in model server."""

import http.client
import json
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from openai_standin import StandIn
from serving_helpers import Served, make_certificate

from deploy.auth import Authenticator, AuthError, parse_networks
from deploy.gateway import Arm, create_app
from deploy.limits import LimitError, Rate, UserLimits, parse_rate
from deploy.tls import TLSError, check_tls, plain_http_warning
from medfactory.ab.recorder import StoreRecorder, exchanges_since
from medfactory.ab.serve import Access, directory_lookup, gateway_app
from medfactory.store.db import open_store

QUESTION = [{"role": "user", "content": "头痛三天，需要做什么检查？"}]


@pytest.fixture
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path / 'ab.db'}")


@pytest.fixture
def backend():
    with StandIn(lambda body: "多喝水，注意休息。", model="m") as standin:
        yield standin


def users_app(store, backend, limits=None, **extra):
    arms = [Arm("only", backend.url, "m")]
    recorder = StoreRecorder(store, "ab", arms)
    auth = Authenticator("users", lookup=directory_lookup(store))
    return create_app(arms, recorder, authenticator=auth, limits=limits, **extra)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_is_its_user_whatever_the_body_says_and_the_feedback_is_theirs(store, backend):
    from fastapi.testclient import TestClient

    from medfactory.access.users import add_user, disable_user

    _alice, alice = add_user(store, "alice", "clinician")
    _bob, bob = add_user(store, "bob", "clinician")
    _gone, gone = add_user(store, "gone", "clinician")
    disable_user(store, "gone")
    _rater, rater = add_user(store, "rita", "rater")
    body = {"model": "x", "messages": QUESTION, "user": "bob"}
    with TestClient(users_app(store, backend)) as client:
        for headers in ({}, bearer("forged-token"), bearer(gone), {"Authorization": alice}):
            refused = client.post("/v1/chat/completions", json=body, headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
        assert client.get("/v1/models").status_code == 401
        assert client.get("/health").status_code == 200
        answer = client.post("/v1/chat/completions", json=body, headers=bearer(alice))
        assert answer.status_code == 200
        assert backend.requests[-1]["user"] == "alice"  # the body's "bob" never goes on
        completion = answer.json()["id"]
        # Feedback: the token's user again; bob cannot rate alice's answer with his own token.
        stranger = client.post("/v1/feedback", json={"id": completion, "rating": -1},
                               headers=bearer(bob))  # fmt: skip
        assert stranger.status_code == 404
        rated = client.post("/v1/feedback", json={"id": completion, "user": "bob", "rating": 1},
                            headers=bearer(alice))  # fmt: skip
        assert rated.status_code == 200
        as_rater = client.post("/v1/chat/completions", json=body, headers=bearer(rater))
        assert as_rater.status_code == 403
        assert as_rater.json()["error"]["type"] == "permission_error"
    rows = exchanges_since(store, "ab")
    assert [(r["user"], r["rating"]) for r in rows] == [("alice", 1)]


def test_only_a_service_key_names_the_user_in_its_header(store, backend):
    from fastapi.testclient import TestClient

    from medfactory.access.users import add_user

    _page, service = add_user(store, "chatpage", "service")
    _alice, alice = add_user(store, "alice", "clinician")
    body = {"model": "x", "messages": QUESTION, "user": "someone"}
    with TestClient(users_app(store, backend)) as client:
        posing = client.post("/v1/chat/completions", json=body,
                             headers=bearer(alice) | {"X-Medfactory-User": "bob"})  # fmt: skip
        assert posing.status_code == 403
        assert "X-Medfactory-User" in posing.json()["error"]["message"]
        alone = client.post("/v1/chat/completions", json=body, headers=bearer(service))
        assert alone.status_code == 403  # a service key chats only for somebody
        named = bearer(service) | {"X-Medfactory-User": "carol"}
        for_carol = client.post("/v1/chat/completions", json=body, headers=named)
        assert for_carol.status_code == 200
        feedback = client.post(
            "/v1/feedback", json={"id": for_carol.json()["id"], "rating": 1}, headers=named
        )  # fmt: skip
        assert feedback.status_code == 200
    assert [(r["user"], r["rating"]) for r in exchanges_since(store, "ab")] == [("carol", 1)]


def _post_from(source: str, port: int, headers: dict) -> int:
    """A chat request from `source` (another loopback address) to the gateway."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                            source_address=(source, 0))  # fmt: skip
    body = json.dumps({"model": "x", "messages": QUESTION, "user": "body-user"})
    connection.request("POST", "/v1/chat/completions", body,
                       {"Content-Type": "application/json", **headers})  # fmt: skip
    status = connection.getresponse().status
    connection.close()
    return status


def test_the_forwarded_user_is_believed_only_from_the_trusted_proxy(store, backend):
    arms = [Arm("only", backend.url, "m")]
    auth = Authenticator("proxy", trusted=parse_networks(["127.0.0.1/32"]))
    app = create_app(arms, StoreRecorder(store, "ab", arms), authenticator=auth)
    with Served(app) as served:
        signed_on = {"X-Forwarded-User": "dr.wang"}
        assert _post_from("127.0.0.2", served.port, signed_on) == 403  # not the proxy
        assert _post_from("127.0.0.2", served.port, {}) == 401
        assert _post_from("127.0.0.1", served.port, {}) == 401  # the proxy forwarded nobody
        assert _post_from("127.0.0.1", served.port, signed_on) == 200
    assert [r["user"] for r in exchanges_since(store, "ab")] == ["dr.wang"]


def test_access_options_that_disagree_are_one_message():
    with pytest.raises(AuthError, match="needs --trusted-proxy"):
        Authenticator("proxy")
    with pytest.raises(AuthError, match="goes with --auth proxy"):
        Authenticator("none", trusted=parse_networks(["10.0.0.0/8"]))
    with pytest.raises(AuthError, match="leave out --api-key"):
        Authenticator("users", api_key="k", lookup=lambda token: None)
    with pytest.raises(AuthError, match="--trusted-proxy 'ten'"):
        parse_networks(["ten"])


def test_rates_are_read_in_seconds_minutes_and_hours():
    assert parse_rate("30/min") == Rate(30, 60.0)
    assert parse_rate("5/s") == Rate(5, 1.0) and parse_rate("100/h") == Rate(100, 3600.0)
    for wrong in ("30", "0/min", "x/min", "3/day"):
        with pytest.raises(LimitError, match="N/s, N/min or N/h"):
            parse_rate(wrong)


def test_the_window_slides_and_retry_after_is_when_a_request_leaves_it():
    now = [1000.0]
    limits = UserLimits(Rate(2, 60.0), concurrent=1, clock=lambda: now[0])
    assert limits.admit("a") is None
    assert limits.admit("a") == 1  # one answer in flight already
    limits.release("a")
    now[0] += 20
    assert limits.admit("a") is None
    limits.release("a")
    assert limits.admit("a") == 40  # the first leaves the minute 40 s from now
    assert limits.admit("b") is None  # another user is not held up
    now[0] += 40
    assert limits.admit("a") is None


def test_twenty_clients_hammer_one_users_limit_while_another_is_served_every_429_counted(
    store, backend
):
    from medfactory.access.users import add_user

    _h, heavy = add_user(store, "heavy", "clinician")
    _l, light = add_user(store, "light", "clinician")
    app = users_app(store, backend, limits=UserLimits(Rate(5, 60.0)))
    url_body = {"model": "x", "messages": QUESTION}

    def chat(port, token):
        reply = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=url_body,
                              headers=bearer(token), timeout=30)  # fmt: skip
        return reply.status_code, reply.headers.get("Retry-After"), reply.json()

    with Served(app) as served:
        with ThreadPoolExecutor(20) as pool:
            hammering = [pool.submit(chat, served.port, heavy) for _ in range(60)]
            served_light = [chat(served.port, light) for _ in range(5)]
            results = [job.result() for job in hammering]
        metrics = requests.get(f"http://127.0.0.1:{served.port}/metrics", headers=bearer(light))
    statuses = [status for status, _wait, _body in results]
    assert statuses.count(200) == 5 and statuses.count(429) == 55
    assert [status for status, *_ in served_light] == [200] * 5
    for status, wait, body in results:
        if status == 429:
            assert 1 <= int(wait) <= 60
            assert body["error"]["code"] == "rate_limit_exceeded"
    assert 'medfactory_gateway_rate_limited_total{arm="only"} 55.0' in metrics.text


def test_answers_in_flight_are_limited_per_user(store):

    from medfactory.access.users import add_user

    _u, token = add_user(store, "u", "clinician")
    with StandIn(lambda body: time.sleep(1.5) or "ok", model="m") as slow:
        app = users_app(store, slow, limits=UserLimits(concurrent=2))
        with Served(app) as served, ThreadPoolExecutor(6) as pool:
            statuses = list(
                pool.map(
                    lambda _: requests.post(
                        f"http://127.0.0.1:{served.port}/v1/chat/completions",
                        json={"messages": QUESTION}, headers=bearer(token), timeout=30,
                    ).status_code,
                    range(6),
                )
            )  # fmt: skip
        assert statuses.count(200) == 2 and statuses.count(429) == 4
        with Served(app) as served:  # the slots came back
            again = requests.post(
                f"http://127.0.0.1:{served.port}/v1/chat/completions",
                json={"messages": QUESTION}, headers=bearer(token), timeout=30,
            )  # fmt: skip
        assert again.status_code == 200


def test_store_scrubbed_keeps_identifiers_out_of_the_store_not_out_of_the_answer(store):
    from fastapi.testclient import TestClient

    answer = "请拨打 13812345678 复诊。"
    with StandIn(lambda body: answer, model="m") as backend:
        app, _arms = gateway_app(
            [Arm("only", backend.url, "m")], "ab", store, access=Access(store_scrubbed=True)
        )
        with TestClient(app) as client:
            asked = [{"role": "user", "content": "我的电话 13987654321，邮箱 li@example.com"}]
            reply = client.post("/v1/chat/completions", json={"messages": asked, "user": "u"})
            assert reply.json()["choices"][0]["message"]["content"] == answer
            client.post(
                "/v1/feedback",
                json={"id": reply.json()["id"], "user": "u", "correction": "call 13812345678"},
            )
        assert backend.requests[-1]["messages"] == asked  # the model got it as said
    row = exchanges_since(store, "ab")[0]
    stored = json.dumps([row["messages"], row["answer"], row["correction"]], ensure_ascii=False)
    assert "13812345678" not in stored and "13987654321" not in stored
    assert "li@example.com" not in stored


def test_starting_an_experiment_is_in_the_audit_log_once(store, backend):
    from fastapi.testclient import TestClient

    from medfactory.access import audit

    arms = [Arm("only", backend.url, "m")]
    app, _arms = gateway_app(arms, "trial", store, access=Access(actor="lead1"))
    with TestClient(app) as client:
        client.post("/v1/chat/completions", json={"messages": QUESTION, "user": "u"})
    gateway_app(arms, "trial", store, access=Access(actor="lead2"))  # a restart: not a start
    started = [
        (e["actor"], e["target"])
        for e in _audit_entries(audit, store)
        if e["action"] == "experiment-started" and e["target"] == "trial"
    ]
    assert started == [("lead1", "trial")]


def _audit_entries(audit, store) -> list[dict]:
    """The audit log as dicts, through the audit module's own reader."""
    from dataclasses import asdict, is_dataclass

    reader = getattr(audit, "entries", None) or audit.list_entries
    return [asdict(e) if is_dataclass(e) else dict(e) for e in reader(store)]


# --- TLS ----------------------------------------------------------------------------------


def test_with_tls_a_verifying_client_is_served_and_plain_http_gets_no_page(store, backend,
                                                                           tmp_path):  # fmt: skip
    cert, key = make_certificate(tmp_path)
    arms = [Arm("only", backend.url, "m")]
    app = create_app(arms, StoreRecorder(store, "ab", arms))
    with Served(app, **check_tls(cert, key)) as served:
        base = f"127.0.0.1:{served.port}"
        assert requests.get(f"https://{base}/health", verify=str(cert), timeout=10).ok
        with pytest.raises(requests.exceptions.SSLError):  # an unknown certificate is refused
            requests.get(f"https://{base}/health", timeout=10)
        try:
            plain = requests.get(f"http://{base}/health", timeout=10)
            assert plain.status_code != 200 and "ok" not in plain.text
        except requests.ConnectionError:
            pass  # the TLS server drops the connection: no page either way


def test_tls_options_are_checked_before_a_server_starts(tmp_path):
    cert, key = make_certificate(tmp_path)
    assert check_tls(None, None) == {}
    with pytest.raises(TLSError, match="go together"):
        check_tls(cert, None)
    with pytest.raises(TLSError, match="no such file"):
        check_tls(tmp_path / "missing.pem", key)
    with pytest.raises(TLSError, match="not a PEM certificate"):
        check_tls(key, cert)
    assert ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert plain_http_warning("0.0.0.0", tls=False).startswith("warning: serving plain HTTP")
    assert plain_http_warning("0.0.0.0", tls=True) is None
    assert plain_http_warning("127.0.0.1", tls=False) is None
