"""The clinicians' chat page (Gradio): streamed multi-turn chat through the A/B gateway.

Where the store has users (`medfactory users`), a clinician signs in by their
personal link `/signin/TOKEN` (an HttpOnly, SameSite=Strict cookie) and the
page asks for no name: it talks to the gateway with its own service key and
names the signed-in clinician in `X-Medfactory-User`. Without users, a
clinician enters a name (and the shared access code, when one is set), which
is the `user` the gateway splits on; thumbs up or down and "suggest a better
answer" under the replies go to the gateway's /v1/feedback. The page never
shows which version answered. Its strings come from the language's catalogue
(`medfactory.locales`), the same as the review page's.
"""

import hmac
import json
import uuid
from collections.abc import Iterator
from html import escape

from deploy.auth import USER_HEADER
from deploy.gateway import ARM_HEADER, CONVERSATION_HEADER
from medfactory.locales import DEFAULT_LANGUAGE, LANGUAGES, gettext

MAX_TOKENS = 512
COOKIE = "medfactory_chat"
CHAT_ROLES = ("clinician",)


class GatewayClient:
    """The page's way to the gateway: streamed chats and feedback, as one clinician."""

    def __init__(
        self, url: str, api_key: str | None = None, max_tokens: int = MAX_TOKENS,
        temperature: float | None = None, names_user: bool = False,
    ):  # fmt: skip
        """`names_user`: the key is a service key, and each request names its user in
        X-Medfactory-User (the gateway's --auth users)."""
        import httpx

        self.url = url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=600.0)
        self.max_tokens = max_tokens
        self.temperature = temperature  # None: the server's default
        self.names_user = names_user

    def headers_for(self, user: str) -> dict:
        return {USER_HEADER: user} if self.names_user else {}

    def check(self) -> None:
        """Reach the gateway once before serving the page: a wrong address or key is one
        message now, not an error under every question."""
        import httpx

        try:
            reply = self.http.get("/v1/models", timeout=10)
        except httpx.HTTPError:
            raise ChatError(
                f"no gateway answers at {self.url}; start one with `medfactory gateway` "
                "or check --gateway"
            ) from None
        if reply.status_code == 401:
            raise ChatError(f"the gateway at {self.url} refused the key; pass its --api-key")
        if reply.status_code != 200:
            raise ChatError(f"{self.url}/v1/models answered HTTP {reply.status_code}")

    def stream(self, user: str, conversation: str, messages: list[dict]) -> Iterator[tuple]:
        """Yield (text so far, completion id, arm) as the answer streams in."""
        body = {
            "model": "ab", "messages": messages, "user": user, "stream": True,
            "max_tokens": self.max_tokens,
        }  # fmt: skip
        if self.temperature is not None:
            body["temperature"] = self.temperature
        headers = {CONVERSATION_HEADER: conversation, **self.headers_for(user)}
        text, completion_id = "", None
        with self.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as reply:
            if reply.status_code >= 400:
                reply.read()
                raise ChatError(_message_of(reply.text) or f"HTTP {reply.status_code}")
            arm = reply.headers.get(ARM_HEADER)
            for line in reply.iter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                chunk = json.loads(line[5:])
                if "error" in chunk:
                    raise ChatError(_message_of(json.dumps(chunk)))
                completion_id = completion_id or chunk.get("id")
                for choice in chunk.get("choices") or []:
                    text += (choice.get("delta") or {}).get("content") or ""
                yield text, completion_id, arm

    def ask(self, user: str, conversation: str, messages: list[dict]) -> tuple[str, str, str]:
        """The whole streamed answer: (text, completion id, arm)."""
        answer = ("", "", "")
        for streamed in self.stream(user, conversation, messages):
            answer = streamed
        return answer

    def feedback(self, user: str, completion_id: str, **fields) -> None:
        reply = self.http.post(
            "/v1/feedback", json={"id": completion_id, "user": user, **fields}, timeout=30,
            headers=self.headers_for(user),
        )  # fmt: skip
        if reply.status_code >= 400:
            raise ChatError(_message_of(reply.text) or f"HTTP {reply.status_code}")


class ChatError(RuntimeError):
    """The gateway cannot be used or refused a request; the message says why."""


def _message_of(text: str) -> str:
    try:
        return json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return text[:300]


def _gradio_language(lang: str) -> str:
    """A script for the page's head that gives Gradio's own words (footer, buttons' labels,
    error notices) the page's language: its frontend reads only navigator.language. Gradio
    reads it again, after this script, when the launch passes an I18n (serve_chat_page)."""
    code = json.dumps(LANGUAGES[lang])
    return (
        f"<script>document.documentElement.lang = {code};"
        "for (const name of ['language', 'languages']) "
        f"Object.defineProperty(navigator, name, {{get: () => name === 'language' ? {code} "
        f": [{code}]}});</script>"
    )


def create_chat_page(
    client: GatewayClient, access_code: str | None = None, lang: str = DEFAULT_LANGUAGE,
    signed_in=None,
):  # fmt: skip
    """The Gradio Blocks of the page, in `lang`. `signed_in(cookie token) -> name | None`
    where clinicians sign in by link: the page then asks for no name."""
    import gradio as gr

    _ = gettext(lang)
    by_link = signed_in is not None

    def who(user: str, request) -> str:
        """The clinician of this event: the signed-in one, checked again on every event (a
        disabled user or an old link is out at once), or the name given at the start."""
        if not by_link:
            return user
        return (signed_in(request.cookies.get(COOKIE)) or "") if request is not None else ""

    def enter_by_link(request: gr.Request):
        name = who("", request)
        if not name:
            return (
                "",
                gr.update(),
                gr.update(visible=False),
                _("This page needs the link you were given."),
            )
        return name, gr.update(visible=False), gr.update(visible=True), ""

    def log_in(name: str, code: str):
        name = (name or "").strip()
        if not name:
            return "", gr.update(), gr.update(), _("Enter your name to start.")
        if access_code and not hmac.compare_digest((code or "").encode(), access_code.encode()):
            return "", gr.update(), gr.update(), _("Wrong access code.")
        return name, gr.update(visible=False), gr.update(visible=True), ""

    def ask(question: str, messages: list, user: str, conversation: str, ids: dict,
            request: gr.Request):  # fmt: skip
        # The conversation sent to the model is kept here, not read back from the chatbot,
        # which may reformat what it shows (whitespace, markdown).
        user = who(user, request)
        question = (question or "").strip()
        if not question or not user:
            yield as_text(messages), question, messages, ids, ""
            return
        asked = [*messages, {"role": "user", "content": question}]
        shown = [*as_text(asked), {"role": "assistant", "content": ""}]
        yield shown, "", messages, ids, ""
        # Later updates leave the question box alone: a clinician may already be typing
        # the next question there, and the conversation kept is the answer so far.
        text = ""
        try:
            for text, completion_id, _arm in client.stream(user, conversation, asked):
                shown[-1] = {"role": "assistant", "content": escape(text, quote=False)}
                ids = {**ids, str(len(shown) - 1): completion_id}
                answered = [*asked, {"role": "assistant", "content": text}]
                yield shown, gr.update(), answered, ids, ""
        except ChatError as error:
            said = _("The model could not answer: %(error)s") % {"error": error}
            yield as_text(messages), question, messages, ids, said
            return
        yield shown, gr.update(), [*asked, {"role": "assistant", "content": text}], ids, ""

    def rate(user: str, ids: dict, data: gr.LikeData, request: gr.Request):
        user = who(user, request)
        completion_id = ids.get(str(_index(data.index)))
        if completion_id is None or not user or data.liked not in (True, False):
            return ""
        try:
            client.feedback(user, completion_id, rating=1 if data.liked else -1)
        except ChatError as error:
            return _("Feedback not saved: %(error)s") % {"error": error}
        return _("Thank you: feedback saved.")

    def choose(data: gr.SelectData):
        return _index(data.index)

    def suggest(text: str, user: str, ids: dict, chosen: int | None, request: gr.Request):
        user = who(user, request)
        text = (text or "").strip()
        if not user:
            return text, _("This page needs the link you were given.")
        if not text:
            return text, _("Write the better answer first.")
        if not ids:
            return text, _("There is no answer to improve yet.")
        index = str(chosen) if str(chosen) in ids else max(ids, key=int)
        try:
            client.feedback(user, ids[index], correction=text)
        except ChatError as error:
            return text, _("Suggestion not saved: %(error)s") % {"error": error}
        return "", _("Thank you: your suggested answer is saved.")

    def restart():
        return [], [], str(uuid.uuid4()), {}, None, ""

    with gr.Blocks(
        title=_("medfactory chat"), analytics_enabled=False, head=_gradio_language(lang)
    ) as page:
        user = gr.State("")
        conversation = gr.State(lambda: str(uuid.uuid4()))
        messages = gr.State([])  # the conversation as the model got it
        ids = gr.State({})  # message index -> completion id
        chosen = gr.State(None)
        gr.Markdown("## " + _("medfactory chat"))
        with gr.Column(visible=True) as login_box:
            name = gr.Textbox(label=_("Your name"), elem_id="login-name", visible=not by_link)
            code = gr.Textbox(
                label=_("Access code"), type="password", visible=bool(access_code) and not by_link,
                elem_id="login-code",
            )  # fmt: skip
            enter = gr.Button(
                _("Start"), variant="primary", elem_id="login-button", visible=not by_link
            )
            refused = gr.Markdown(elem_id="login-message")
        with gr.Column(visible=False) as chat_box:
            # "Like" and "Dislike" are Gradio's names for the thumbs (it labels them itself).
            chatbot = gr.Chatbot(
                type="messages", label=_("Conversation"), elem_id="chat", height=420,
                feedback_options=("Like", "Dislike"), show_copy_button=True,
                sanitize_html=True,
            )  # fmt: skip
            question = gr.Textbox(
                label=_("Question"), placeholder=_("Ask the model"), elem_id="question", lines=2
            )
            with gr.Row():
                send = gr.Button(_("Send"), variant="primary", elem_id="send")
                new = gr.Button(_("New conversation"), elem_id="new-conversation")
            correction = gr.Textbox(
                label=_("Suggest a better answer (for the reply you clicked, else the last one)"),
                elem_id="correction", lines=3,
            )  # fmt: skip
            suggest_button = gr.Button(_("Send suggestion"), elem_id="send-suggestion")
            notice = gr.Markdown(elem_id="notice")

        if by_link:
            page.load(enter_by_link, None, [user, login_box, chat_box, refused])
        else:
            enter.click(log_in, [name, code], [user, login_box, chat_box, refused])
            name.submit(log_in, [name, code], [user, login_box, chat_box, refused])
        chat_inputs = [question, messages, user, conversation, ids]
        chat_outputs = [chatbot, question, messages, ids, notice]
        send.click(ask, chat_inputs, chat_outputs)
        question.submit(ask, chat_inputs, chat_outputs)
        chatbot.like(rate, [user, ids], notice)
        chatbot.select(choose, None, chosen)
        suggest_button.click(suggest, [correction, user, ids, chosen], [correction, notice])
        fresh = [chatbot, messages, conversation, ids, chosen, notice]
        new.click(restart, None, fresh)
        chatbot.clear(restart, None, fresh)
    return page


def as_text(messages: list[dict]) -> list[dict]:
    """The messages as the chatbot shows them: every tag, `<script>` and `<img onerror>` alike,
    shown as the characters it is made of. Model answers are untrusted input."""
    return [{**m, "content": escape(str(m.get("content") or ""), quote=False)} for m in messages]


def _index(index) -> int:
    return index[0] if isinstance(index, list | tuple) else int(index)


def service_user(db: str | None, api_key: str | None):
    """The directory's service user whose token the page was given as its gateway key, or
    None (no key, or a key that is not a directory token: the old name-and-code page)."""
    if not api_key:
        return None
    from medfactory import paths
    from medfactory.access.users import user_for_token
    from medfactory.store.db import default_url, open_store

    store = open_store(db or default_url(paths.PROJECT_ROOT))
    user = user_for_token(store, api_key)
    if user is None:
        return None
    if user.role != "service":
        raise ChatError(
            f"--gateway-api-key is the personal token of {user.name!r} ({user.role}); give the "
            "page a service key of its own: medfactory users add chatpage --role service"
        )
    return store


def add_sign_in(app, store, lang: str, secure: bool) -> None:
    """`/signin/TOKEN` on the page's server: a clinician's link becomes the session cookie."""
    from fastapi.responses import HTMLResponse, RedirectResponse
    from starlette.routing import Route

    from medfactory.access.web import page_user, record_sign_in, set_session

    _ = gettext(lang)

    def sign_in(request):
        token = request.path_params["token"]
        user = page_user(store, token, CHAT_ROLES)
        if user is None:
            heading, text = (
                escape(_("This link is not valid")),
                escape(_("Ask for a new personal link.")),
            )
            html = f"<!doctype html><html lang={LANGUAGES[lang]}><h1>{heading}</h1><p>{text}</p>"
            return HTMLResponse(html, status_code=403)
        record_sign_in(store, user, "chat page")
        response = RedirectResponse("/", status_code=303)
        set_session(response, COOKIE, token, secure)
        return response

    app.router.routes.insert(0, Route("/signin/{token}", sign_in, methods=["GET"]))


def serve_chat_page(
    gateway: str, host: str, port: int, api_key: str | None = None,
    access_code: str | None = None, max_tokens: int = MAX_TOKENS, on_ready=print,
    lang: str = DEFAULT_LANGUAGE, db: str | None = None, tls_cert=None, tls_key=None,
) -> None:  # fmt: skip
    """Serve until Ctrl-C (ChatError first when the gateway cannot be reached). Where the
    gateway key is a service key of the store's users directory, clinicians sign in by
    their personal links (`/signin/TOKEN`) instead of typing a name."""
    import os

    from deploy.tls import check_tls, plain_http_warning, scheme

    ssl_options = check_tls(tls_cert, tls_key)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    store = service_user(db, api_key)
    client = GatewayClient(gateway, api_key, max_tokens, names_user=store is not None)
    client.check()
    import gradio as gr

    signed_in = None
    if store is not None:
        from medfactory.access.web import page_user

        def signed_in(token):
            user = page_user(store, token, CHAT_ROLES)
            return user.name if user is not None else None

    page = create_chat_page(client, access_code, lang, signed_in)
    if warning := plain_http_warning(host, bool(ssl_options)):
        on_ready(warning)
    url = f"{scheme(bool(ssl_options))}://{host}:{port}"
    how = f"; clinicians sign in at {url}/signin/TOKEN" if store is not None else ""
    on_ready(f"chat page on {url} for {client.url}{how} (Ctrl-C stops it)")
    # Gradio checks its own address after starting: a self-signed certificate must pass.
    app, _local, _share = page.queue(default_concurrency_limit=32).launch(
        server_name=host, server_port=port, share=False, show_api=False, quiet=True,
        inbrowser=False, i18n=gr.I18n(**{LANGUAGES[lang]: {}}), prevent_thread_lock=True,
        **ssl_options, **({"ssl_verify": False} if ssl_options else {}),
    )  # fmt: skip
    if store is not None:
        add_sign_in(app, store, lang, secure=bool(ssl_options))
    page.block_thread()
