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
twice is stored once. A user of the store's directory who is a rater (or the
arbiter) of the study served signs in by their personal link `/signin/TOKEN`
instead, into a cookie of its own, looked up again on every request.

Every string the page shows comes from the language's catalogue
(`medfactory.locales`, jinja2's i18n extension); the values the forms post
(verdicts, score fields) are the same in every language.
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

from medfactory.locales import DEFAULT_LANGUAGE, LANGUAGES, N_, translations
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
SIGNIN_COOKIE = "medfactory_signin"  # a directory user's personal token
# The directory's roles that may rate or arbitrate here (a clinician's link opens no queue).
REVIEW_ROLES = ("rater", "lead")
# The posted value of each verdict stays the same in every language; only its label changes.
VERDICT_LABELS = (
    ("1", N_("Answer 1 better")),
    ("2", N_("Answer 2 better")),
    ("tie", N_("Tie")),
    ("both_bad", N_("Both unacceptable")),
)
SINGLE_LABELS = (("accept", N_("Accept")), ("edit", N_("Edit")), ("reject", N_("Reject")))
# The default axes' labels; a study's own axes (`--axes`) show as named.
AXIS_LABELS = {
    "accuracy": N_("Accuracy"),
    "safety": N_("Safety"),
    "completeness": N_("Completeness"),
    "communication": N_("Communication"),
}
ROLE_LABELS = {"system": N_("System prompt"), "user": N_("User"), "assistant": N_("Assistant")}


def create_app(
    store: Store, lang: str = DEFAULT_LANGUAGE, study: str | None = None, secure: bool = False
) -> FastAPI:
    """The page; `study`: the study whose raters may sign in by their directory links;
    `secure`: served over TLS (the cookies are then sent only over it)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    secret = secrets.token_bytes(32)
    catalogue = translations(lang)
    _ = catalogue.gettext
    pages = Environment(
        loader=FileSystemLoader(PROJECT_ROOT / "templates" / "review"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
    )
    pages.install_gettext_translations(catalogue, newstyle=True)
    pages.globals["html_lang"] = LANGUAGES[lang]
    labels = {
        "verdict": {value: _(label) for value, label in (*VERDICT_LABELS, *SINGLE_LABELS)},
        "role": {role: _(label) for role, label in ROLE_LABELS.items()},
        "axis": {axis: _(label) for axis, label in AXIS_LABELS.items()},
    }

    def page(name: str, status: int = 200, **values) -> HTMLResponse:
        html = pages.get_template(name).render(labels=labels, **values)
        return HTMLResponse(html, status_code=status)

    def message(heading: str, text: str, status: int, person: str = "", study: str = "", link=None):
        values = {"heading": heading, "text": text, "person": person, "study": study, "link": link}
        return page("message.html", status, **values)

    def csrf_for(rater: Rater) -> str:
        return hmac.new(
            secret, f"{rater.id}:{rater.token_hash}".encode(), hashlib.sha256
        ).hexdigest()

    def directory_rater(token: str | None) -> tuple[Rater | None, object]:
        """The served study's rater of this directory token, and the token's user."""
        from sqlalchemy import select

        from medfactory.access.web import page_user

        user = page_user(store, token, REVIEW_ROLES) if study else None
        if user is None:
            return None, None
        with store.session() as session:
            rater = session.scalar(
                select(Rater).join(Study, Study.id == Rater.study_id)
                .where(Study.name == study, Rater.name == user.name)
            )  # fmt: skip
        return rater, user

    def who(request: Request) -> tuple[Rater | None, Study | None]:
        token = request.cookies.get(COOKIE)
        with store.session() as session:
            rater = rater_by_token(session, token) if token else None
        if rater is None and request.cookies.get(SIGNIN_COOKIE):
            rater, _user = directory_rater(request.cookies.get(SIGNIN_COOKIE))
        if rater is None:
            return None, None
        with store.session() as session:
            found = session.get(Study, rater.study_id)
        return rater, found

    def unknown() -> HTMLResponse:
        return message(
            _("Open your personal link"), _("This page needs the link you were given."), 401
        )

    def not_yours(rater: Rater, study: Study, position: int) -> HTMLResponse:
        text = (
            _("Item %(position)s is not for you to arbitrate.")
            if rater.role == "arbiter"
            else _("Item %(position)s is not in your queue.")
        )
        return message(_("Not yours"), text % {"position": position}, 403, rater.name, study.name)

    @app.get("/healthz", response_class=PlainTextResponse)
    def health() -> str:
        return "ok"

    @app.get("/r/{token}")
    def enter(token: str):
        with store.session() as session:
            rater = rater_by_token(session, token)
        if rater is None:
            return message(_("This link is not valid"), _("Ask for a new personal link."), 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", max_age=90 * 86400, secure=secure
        )
        response.delete_cookie(SIGNIN_COOKIE)
        return response

    @app.get("/signin/{token}")
    def sign_in(token: str):
        from medfactory.access.web import record_sign_in, set_session

        rater, user = directory_rater(token)
        if rater is None:
            return message(_("This link is not valid"), _("Ask for a new personal link."), 403)
        record_sign_in(store, user, f"review {study}")
        response = RedirectResponse("/", status_code=303)
        set_session(response, SIGNIN_COOKIE, token, secure)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/")
    def home(request: Request):
        rater, study = who(request)
        if rater is None:
            return unknown()
        with store.session() as session:
            position = next_position(session, rater)
        if position is None:
            if rater.role == "arbiter":
                text, link = _("No open disagreement is waiting."), None
            else:
                text = _("Every item of your queue is rated.")
                link = ("/item/1", _("Revise your ratings"))
            return message(_("All done"), text, 200, rater.name, study.name, link)
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
        choices = SINGLE_LABELS if view.kind == "single" else VERDICT_LABELS
        return page(
            "item.html", status, view=view, error=error, study=study.name, person=rater.name,
            csrf=csrf_for(rater), submit_key=uuid.uuid4().hex, started=time.time(),
            verdicts=[value for value, _label in choices],
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
        except NotYours:
            return not_yours(rater, study, position)

    @app.post("/item/{position}")
    @app.post("/arbitrate/{position}")
    async def send(position: int, request: Request):
        rater, study = who(request)
        if rater is None:
            return unknown()
        form = await request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), csrf_for(rater)):
            return message(_("Form expired"), _("Reload the page and submit again."), 403)
        key = str(form.get("submit_key", ""))[:64] or None
        arbiter = rater.role == "arbiter"
        submission = _submission(form, [] if arbiter else study.axes)
        try:
            if arbiter:
                arbitrate(store, rater.id, position, submission.verdict, submission.comment, key,
                          correction=submission.correction)  # fmt: skip
            else:
                submit(store, rater.id, position, submission, key)
        except NotYours:
            return not_yours(rater, study, position)
        except RatingError as error:
            said = _slip(submission, [] if arbiter else study.axes, _, labels["axis"])
            said = said or _("Not saved: %(reason)s") % {"reason": error}
            return item_page(rater, study, position, error=said, status=422)
        return RedirectResponse("/", status_code=303)

    return app


def _slip(submission: Submission, axes: list[str], _, axis_labels: dict) -> str | None:
    """What the form left out, in the page's language. The store's check stays the rule: this
    only words the refusals a rater can make with the page; a forged value keeps its reason."""
    if not submission.verdict:
        return _("Choose a verdict.")
    if submission.verdict == "edit" and not submission.correction.strip():
        return _("Write the corrected answer to choose Edit.")
    for axis in axes:
        for n, score in enumerate(submission.scores.get(axis, ()), 1):
            if score is None:
                name = axis_labels.get(axis, axis)
                return _("Score answer %(n)s on %(axis)s.") % {"n": n, "axis": name}
    return None


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


def serve_page(
    store: Store, host: str, port: int, lang: str = DEFAULT_LANGUAGE, study: str | None = None,
    ssl_options: dict | None = None,
) -> None:  # fmt: skip
    """Serve until Ctrl-C; the access log stays off so no link token is ever logged.
    `ssl_options`: uvicorn's, as deploy.tls.check_tls gives them."""
    import uvicorn

    app = create_app(store, lang, study, secure=bool(ssl_options))
    uvicorn.run(
        app, host=host, port=port, access_log=False, log_level="warning", **(ssl_options or {})
    )
