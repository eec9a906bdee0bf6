"""The clinicians' chat page (Gradio): streamed multi-turn chat through the A/B gateway.

A clinician enters a name (and the shared access code, when one is set), which
is the `user` the gateway splits on; thumbs up or down and "suggest a better
answer" under the replies go to the gateway's /v1/feedback. The page never
shows which version answered. Its strings come from the language's catalogue
(`medfactory.locales`), the same as the review page's.
"""

import hmac
import json
import uuid
from collections.abc import Iterator

from deploy.gateway import ARM_HEADER, CONVERSATION_HEADER
from medfactory.locales import DEFAULT_LANGUAGE, LANGUAGES, gettext

MAX_TOKENS = 512


class GatewayClient:
    """The page's way to the gateway: streamed chats and feedback, as one clinician."""

    def __init__(
        self, url: str, api_key: str | None = None, max_tokens: int = MAX_TOKENS,
        temperature: float | None = None,
    ):  # fmt: skip
        import httpx

        self.url = url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=600.0)
        self.max_tokens = max_tokens
        self.temperature = temperature  # None: the server's default

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
        headers = {CONVERSATION_HEADER: conversation}
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
            "/v1/feedback", json={"id": completion_id, "user": user, **fields}, timeout=30
        )
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
    client: GatewayClient, access_code: str | None = None, lang: str = DEFAULT_LANGUAGE
):
    """The Gradio Blocks of the page, in `lang`."""
    import gradio as gr

    _ = gettext(lang)

    def log_in(name: str, code: str):
        name = (name or "").strip()
        if not name:
            return "", gr.update(), gr.update(), _("Enter your name to start.")
        if access_code and not hmac.compare_digest((code or "").encode(), access_code.encode()):
            return "", gr.update(), gr.update(), _("Wrong access code.")
        return name, gr.update(visible=False), gr.update(visible=True), ""

    def ask(question: str, messages: list, user: str, conversation: str, ids: dict):
        # The conversation sent to the model is kept here, not read back from the chatbot,
        # which may reformat what it shows (whitespace, markdown).
        question = (question or "").strip()
        if not question or not user:
            yield messages, question, messages, ids, ""
            return
        asked = [*messages, {"role": "user", "content": question}]
        shown = [*asked, {"role": "assistant", "content": ""}]
        yield shown, "", messages, ids, ""
        text = ""
        try:
            for text, completion_id, _arm in client.stream(user, conversation, asked):
                shown[-1] = {"role": "assistant", "content": text}
                ids = {**ids, str(len(shown) - 1): completion_id}
                yield shown, "", messages, ids, ""
        except ChatError as error:
            said = _("The model could not answer: %(error)s") % {"error": error}
            yield messages, question, messages, ids, said
            return
        yield shown, "", [*asked, {"role": "assistant", "content": text}], ids, ""

    def rate(user: str, ids: dict, data: gr.LikeData):
        completion_id = ids.get(str(_index(data.index)))
        if completion_id is None or data.liked not in (True, False):
            return ""
        try:
            client.feedback(user, completion_id, rating=1 if data.liked else -1)
        except ChatError as error:
            return _("Feedback not saved: %(error)s") % {"error": error}
        return _("Thank you: feedback saved.")

    def choose(data: gr.SelectData):
        return _index(data.index)

    def suggest(text: str, user: str, ids: dict, chosen: int | None):
        text = (text or "").strip()
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
            name = gr.Textbox(label=_("Your name"), elem_id="login-name")
            code = gr.Textbox(
                label=_("Access code"), type="password", visible=bool(access_code),
                elem_id="login-code",
            )  # fmt: skip
            enter = gr.Button(_("Start"), variant="primary", elem_id="login-button")
            refused = gr.Markdown(elem_id="login-message")
        with gr.Column(visible=False) as chat_box:
            # "Like" and "Dislike" are Gradio's names for the thumbs (it labels them itself).
            chatbot = gr.Chatbot(
                type="messages", label=_("Conversation"), elem_id="chat", height=420,
                feedback_options=("Like", "Dislike"), show_copy_button=True,
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


def _index(index) -> int:
    return index[0] if isinstance(index, list | tuple) else int(index)


def serve_chat_page(
    gateway: str, host: str, port: int, api_key: str | None = None,
    access_code: str | None = None, max_tokens: int = MAX_TOKENS, on_ready=print,
    lang: str = DEFAULT_LANGUAGE,
) -> None:  # fmt: skip
    """Serve until Ctrl-C (ChatError first when the gateway cannot be reached)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    client = GatewayClient(gateway, api_key, max_tokens)
    client.check()
    import gradio as gr

    page = create_chat_page(client, access_code, lang)
    on_ready(f"chat page on http://{host}:{port} for {client.url} (Ctrl-C stops it)")
    page.queue(default_concurrency_limit=32).launch(
        server_name=host, server_port=port, share=False, show_api=False, quiet=True,
        inbrowser=False, i18n=gr.I18n(**{LANGUAGES[lang]: {}}),
    )  # fmt: skip
