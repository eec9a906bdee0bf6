"""The review page as raters use it: real HTTP, real stores (SQLite and PostgreSQL)."""

import signal
import threading

import pytest
import requests
from review_helpers import AXES, Page, create, form_of, my_items, question, rate

from medfactory.review.rating import status
from medfactory.store.db import Rating, open_store


@pytest.fixture
def page(store_url, tmp_path):
    create(store_url, tmp_path, ["d1", "d2"], count=6)
    server = Page(store_url)
    yield server
    server.stop()


def test_each_page_is_personal_and_guarded(page, store_url):
    d1, d2 = page.login("d1"), page.login("d2")
    assert requests.get(f"{page.url}/item/1", timeout=10).status_code == 401  # no link, no page
    mine, theirs = set(my_items(d1, page.url)), set(my_items(d2, page.url))
    assert mine == theirs == set(range(1, 7))  # overlap 2 of 2 raters: both rate everything
    html = d1.get(f"{page.url}/item/1", timeout=10).text
    assert question(0) in html and "全科医生" in html  # the question and the system prompt
    assert 'id="answer-1"' in html and 'id="answer-2"' in html
    assert "base" not in html and "lora" not in html  # never a model name
    forged = d1.post(f"{page.url}/item/1", data={"verdict": "1", "csrf": "x"}, timeout=10)
    assert forged.status_code == 403
    reply, form = rate(d1, page.url, 1, "1")
    assert reply.status_code == 200 and reply.url.endswith("/item/2")  # on to the next
    again = d1.post(f"{page.url}/item/1", data=form | {"verdict": "2"}, timeout=10)  # resent
    assert again.status_code == 200
    store = open_store(store_url)
    with store.session() as session:
        assert len(session.query(Rating).all()) == 1  # the same form counts once
    bad, _ = rate(d1, page.url, 2, "1", accuracy_1="9")
    assert bad.status_code == 422 and "accuracy_1 9: a score from 1 to 5" in bad.text
    for link in page.links.values():
        assert link.rsplit("/", 1)[1] not in "".join(page.output[-1:])  # nothing echoed after
    store.close()


def test_a_rater_cannot_open_another_raters_item(store_url, tmp_path):
    create(store_url, tmp_path, ["d1", "d2", "d3"], count=6, overlap=1)
    server = Page(store_url)
    try:
        d1 = server.login("d1")
        mine = set(my_items(d1, server.url))
        other = next(p for p in range(1, 7) if p not in mine)
        assert d1.get(f"{server.url}/item/{other}", timeout=10).status_code == 403
        reply, _ = rate(d1, server.url, min(mine), "1")
        assert reply.ok
        forged = form_of(d1.get(f"{server.url}/item/{min(mine)}", timeout=10).text)
        taken = d1.post(f"{server.url}/item/{other}", data=forged | {"verdict": "1"}, timeout=10)
        assert taken.status_code == 403
    finally:
        server.stop()


def test_twenty_raters_at_once_lose_and_duplicate_nothing(store_url, tmp_path):
    raters = [f"d{n:02d}" for n in range(20)]
    create(store_url, tmp_path, raters, count=40, overlap=1)
    server = Page(store_url)
    try:
        sessions = {name: server.login(name) for name in raters}
        forms = {}
        for name, session in sessions.items():
            for position in my_items(session, server.url):
                html = session.get(f"{server.url}/item/{position}", timeout=10).text
                forms[name, position] = (
                    form_of(html)
                    | {"verdict": "1"}
                    | {f"{a}_{n}": "4" for a in AXES for n in (1, 2)}
                )
        assert len(forms) == 40
        start, errors = threading.Barrier(20), []

        def send(name: str) -> None:
            start.wait()
            for (who, position), form in forms.items():
                if who == name:
                    for _ in range(2):  # every form twice, as an impatient double click
                        reply = sessions[name].post(
                            f"{server.url}/item/{position}", data=form, timeout=60
                        )
                        if not reply.ok:
                            errors.append((name, position, reply.status_code))

        threads = [threading.Thread(target=send, args=(name,)) for name in raters]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    finally:
        server.stop()
    store = open_store(store_url)
    with store.session() as session:
        ratings = session.query(Rating).all()
    assert len(ratings) == 40 and all(r.current for r in ratings)
    assert len({r.assignment_id for r in ratings}) == 40
    assert sum(c["done"] for c in status(store, "s1")["raters"].values()) == 40
    store.close()


def test_killing_the_server_loses_no_submitted_rating(store_url, tmp_path):
    create(store_url, tmp_path, ["d1", "d2"], count=6)
    server = Page(store_url)
    d1 = server.login("d1")
    for position in (1, 2, 3):
        reply, _ = rate(d1, server.url, position, "2")
        assert reply.ok
    server.stop(signal.SIGKILL)  # no shutdown, no flush
    store = open_store(store_url)
    assert status(store, "s1")["raters"]["d1"]["done"] == 3
    store.close()
    again = Page(store_url)  # new links; the rater resumes where they left off
    try:
        d1 = again.login("d1")
        assert d1.get(again.url, timeout=10).url.endswith("/item/4")
    finally:
        again.stop()
