"""The raters' and the arbiter's page: FastAPI with pages rendered on the server.

Why this stack: each rater needs a personal link, a queue of their own that
nobody else can read (403), and forms that survive a lost connection. That is
plain HTTP with cookies and POST forms -- what FastAPI and jinja2 do directly,
with no JavaScript framework; Gradio (LLaMA-Factory's WebUI) has no notion of
per-user queues or of refusing a request.

A personal link `/r/TOKEN` is exchanged for an HttpOnly, SameSite=Strict
cookie; only the token's hash is stored, and the access log is off so the
token is never written anywhere. Every form carries a CSRF token bound to the
rater (an HMAC under a secret drawn at start-up) and a submit key: a form sent
twice is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from medfactory.paths import PROJECT_ROOT
from medfactory.review.rating import (
    NotYours,
    RatingError,
    Submission,
    arbiter_view,
    arbitrate,
    neighbours,
    next_position,
    rater_by_token,
    rater_view,
    submit,
)
from medfactory.store.db import Rater, Store, Study

COOKIE = "medfactory_review"
VERDICT_LABELS = (
    ("1", "Answer 1 better"),
    ("2", "Answer 2 better"),
    ("tie", "Tie"),
    ("both_bad", "Both unacceptable"),
)
SINGLE_LABELS = (("accept", "Accept"), ("edit", "Edit"), ("reject", "Reject"))


def create_app(store: Store) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    secret = secrets.token_bytes(32)
    pages = Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "templates" / "review"),
        autoescape=select_autoescape(["html"]),
    )

    def page(name: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(pages.get_template(name).render(**values), status_code=status)

    def message(heading: str, text: str, status: int, person: str = "", study: str = ""):
        return page("message.html", status, heading=heading, text=text, person=person, study=study)

    def csrf_for(rater: Rater) -> str:
        return hmac.new(
            secret, f"{rater.id}:{rater.token_hash}".encode(), hashlib.sha256
        ).hexdigest()

    def who(request: Request) -> tuple[Rater | None, Study | None]:
        token = request.cookies.get(COOKIE)
        if not token:
            return None, None
        with store.session() as session:
            rater = rater_by_token(session, token)
            study = session.get(Study, rater.study_id) if rater else None
        return rater, study

    def unknown() -> HTMLResponse:
        return message("Open your personal link", "This page needs the link you were given.", 401)

    @app.get("/healthz", response_class=PlainTextResponse)
    def health() -> str:
        return "ok"

    @app.get("/r/{token}")
    def enter(token: str):
        with store.session() as session:
            rater = rater_by_token(session, token)
        if rater is None:
            return message("This link is not valid", "Ask for a new personal link.", 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=90 * 86400)
        return response

    @app.get("/")
    def home(request: Request):
        rater, study = who(request)
        if rater is None:
            return unknown()
        with store.session() as session:
            position = next_position(session, rater)
        if position is None:
            text = (
                "No open disagreement is waiting."
                if rater.role == "arbiter"
                else "Every item of your queue is rated; open /item/1 to revise them."
            )
            return message("All done", text, 200, rater.name, study.name)
        kind = "arbitrate" if rater.role == "arbiter" else "item"
        return RedirectResponse(f"/{kind}/{position}", status_code=303)

    def item_page(rater: Rater, study: Study, position: int, error: str = "", status: int = 200):
        with store.session() as session:
            if rater.role == "arbiter":
                view = arbiter_view(session, rater, position)
                mine = []
            else:
                view = rater_view(session, rater, position)
                mine = neighbours(session, rater, position)
        arbiter = rater.role == "arbiter"
        return page(
            "item.html", status, view=view, error=error, study=study.name, person=rater.name,
            csrf=csrf_for(rater), submit_key=uuid.uuid4().hex, started=time.time(),
            verdicts=SINGLE_LABELS if view.kind == "single" else VERDICT_LABELS,
            previous=view.previous, scored=not arbiter and view.kind == "pair",
            ratings=view.ratings, queue=mine,
            action=f"/{'arbitrate' if arbiter else 'item'}/{position}",
        )  # fmt: skip

    @app.get("/item/{position}")
    @app.get("/arbitrate/{position}")
    def show(position: int, request: Request):
        rater, study = who(request)
        if rater is None:
            return unknown()
        try:
            return item_page(rater, study, position)
        except NotYours as error:
            return message("Not yours", str(error), 403, rater.name, study.name)

    @app.post("/item/{position}")
    @app.post("/arbitrate/{position}")
    async def send(position: int, request: Request):
        rater, study = who(request)
        if rater is None:
            return unknown()
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), csrf_for(rater)):
            return message("Form expired", "Reload the page and submit again.", 403)
        key = str(form.get("submit_key", ""))[:64] or None
        try:
            if rater.role == "arbiter":
                arbitrate(store, rater.id, position, str(form.get("verdict", "")),
                          str(form.get("comment", "")), key,
                          correction=str(form.get("correction", "")))  # fmt: skip
            else:
                submit(store, rater.id, position, _submission(form, study.axes), key)
        except NotYours as error:
            return message("Not yours", str(error), 403, rater.name, study.name)
        except RatingError as error:
            return item_page(rater, study, position, error=str(error), status=422)
        return RedirectResponse("/", status_code=303)

    return app


def _submission(form, axes: list[str]) -> Submission:
    def score(name: str):
        value = str(form.get(name, "")).strip()
        return int(value) if value.isdigit() else value or None

    try:
        seconds = max(0.0, time.time() - float(form.get("started", "")))
    except ValueError:
        seconds = None
    return Submission(
        verdict=str(form.get("verdict", "")),
        scores={axis: (score(f"{axis}_1"), score(f"{axis}_2")) for axis in axes},
        correction=str(form.get("correction", "")),
        comment=str(form.get("comment", "")),
        seconds=seconds,
    )


def serve_page(store: Store, host: str, port: int) -> None:
    """Serve until Ctrl-C; the access log stays off so no link token is ever logged."""
    import uvicorn

    uvicorn.run(create_app(store), host=host, port=port, access_log=False, log_level="warning")
