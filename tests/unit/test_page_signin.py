"""Signing in to the review page by a directory link, and untrusted text shown as text on
the review and chat pages."""

import json
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient

from medfactory.ab.chat import as_text
from medfactory.review.page import create_app
from medfactory.review.studies import StudySpec, create_study, issue_links
from medfactory.store.db import open_store

# What a model (or a person) may write that a page must never run.
HOSTILE = (
    "<script>window.pwned = 1</script>",
    '<img src=x onerror="window.pwned = 1">',
    '<a href="javascript:window.pwned = 1">click</a>',
)


def predictions(folder: Path, name: str, answer: str) -> Path:
    path = folder / name / "generated_predictions.jsonl"
    path.parent.mkdir(parents=True)
    rows = [
        {"prompt": f"<|im_start|>user\n{HOSTILE[1]} 问题{i}<|im_end|>\n<|im_start|>assistant\n",
         "predict": f"{answer} {i}", "label": "ref"}
        for i in range(4)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


@pytest.fixture
def store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'review.db'}")
    files = [predictions(tmp_path, "base", HOSTILE[0]), predictions(tmp_path, "lora", HOSTILE[2])]
    create_study(store, StudySpec("r1", files, ["d1", "d2"], arbiter="boss", overlap=2, seed=7))
    yield store
    store.close()


def assert_shown_as_text(html: str) -> None:
    assert "<script>window.pwned" not in html and "<img src=x" not in html
    assert 'href="javascript:' not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html


def test_model_answers_and_prompts_show_as_text_on_the_review_page(store):
    links = issue_links(store, "r1", "http://testserver")
    with TestClient(create_app(store, "en", "r1")) as client:
        page = client.get(links["d1"].removeprefix("http://testserver"))
    assert page.status_code == 200 and "/item/" in str(page.url)
    assert_shown_as_text(page.text)


def test_the_chat_page_shows_every_message_as_its_characters():
    shown = as_text([{"role": "user", "content": text} for text in HOSTILE])
    assert [m["content"] for m in shown] == [
        "&lt;script&gt;window.pwned = 1&lt;/script&gt;",
        '&lt;img src=x onerror="window.pwned = 1"&gt;',
        '&lt;a href="javascript:window.pwned = 1"&gt;click&lt;/a&gt;',
    ]


def test_a_directory_rater_of_the_study_signs_in_by_link_and_nobody_else_does(store):
    from medfactory.access.users import add_user, disable_user, new_token

    _d1, rater = add_user(store, "d1", "rater")
    _d2, clinician = add_user(store, "d2", "clinician")  # named in the study, but no rater
    _x, outsider = add_user(store, "x9", "rater")  # a rater, but not of this study
    with TestClient(create_app(store, "en", "r1")) as client:
        for token in ("forged", clinician, outsider):
            refused = client.get(f"/signin/{token}", follow_redirects=False)
            assert refused.status_code == 403 and "set-cookie" not in refused.headers
        signed = client.get(f"/signin/{rater}", follow_redirects=False)
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        home = client.get("/")
        assert home.status_code == 200 and "/item/" in str(home.url) and "d1" in home.text
        new_token(store, "d1")  # a new link: the old one is out at once
        assert client.get("/").status_code == 401
    with TestClient(create_app(store, "en", "r1")) as client:
        again = new_token(store, "d1")
        assert client.get(f"/signin/{again}").status_code == 200
        disable_user(store, "d1")
        assert client.get("/").status_code == 401
        # The study's own links keep working.
        link = issue_links(store, "r1", "http://testserver")["d2"]
        assert client.get(link.removeprefix("http://testserver")).status_code == 200


def test_the_chat_pages_link_sets_its_cookie_for_clinicians_only(tmp_path):
    from fastapi import FastAPI

    from medfactory.ab.chat import COOKIE, add_sign_in
    from medfactory.access.users import add_user

    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    _c, clinician = add_user(store, "dr.li", "clinician")
    _r, rater = add_user(store, "rita", "rater")
    app = FastAPI()
    add_sign_in(app, store, "en", secure=True)
    with TestClient(app) as client:
        for token in ("forged", rater):
            refused = client.get(f"/signin/{token}", follow_redirects=False)
            assert refused.status_code == 403 and "set-cookie" not in refused.headers
            assert "This link is not valid" in refused.text
        signed = client.get(f"/signin/{clinician}", follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    cookie = signed.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}={clinician}".lower())
    assert all(part in cookie for part in ("httponly", "samesite=strict", "secure"))


def test_the_chat_pages_client_names_the_signed_in_clinician_to_a_users_gateway(tmp_path):
    from openai_standin import StandIn
    from serving_helpers import Served

    from deploy.auth import Authenticator
    from deploy.gateway import Arm
    from deploy.gateway import create_app as gateway
    from medfactory.ab.chat import ChatError, GatewayClient
    from medfactory.ab.recorder import StoreRecorder, exchanges_since
    from medfactory.ab.serve import directory_lookup
    from medfactory.access.users import add_user

    store = open_store(f"sqlite:///{tmp_path / 'ab.db'}")
    _page, service = add_user(store, "chatpage", "service")
    with StandIn(lambda body: "多喝水。", model="m") as backend:
        arms = [Arm("only", backend.url, "m")]
        auth = Authenticator("users", lookup=directory_lookup(store))
        app = gateway(arms, StoreRecorder(store, "ab", arms), authenticator=auth)
        with Served(app) as served:
            client = GatewayClient(f"http://127.0.0.1:{served.port}", service, names_user=True)
            client.check()
            # The stand-in answers whole, not streamed: the page's answer is asked for as the
            # page asks (service key, the clinician named), its feedback sent by the client.
            asked = requests.post(
                f"http://127.0.0.1:{served.port}/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "头痛"}], "user": "x"},
                headers={"Authorization": f"Bearer {service}", **client.headers_for("dr.li")},
                timeout=30,
            )
            client.feedback("dr.li", asked.json()["id"], rating=1)
            with pytest.raises(ChatError, match="no completion"):  # not another's answer
                client.feedback("dr.wu", asked.json()["id"], rating=-1)
    rows = exchanges_since(store, "ab")
    assert [(r["user"], r["rating"]) for r in rows] == [("dr.li", 1)]
