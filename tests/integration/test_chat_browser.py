"""The clinicians' chat page in the real Chromium, in Chinese (the default) and in English,
through the gateway, to the report."""

import json
import subprocess
import sys
import time

import pytest
import requests
from ab_helpers import REPO, Gateway
from language_helpers import assert_speaks, options, t

from deploy.gateway import Arm, assign
from deploy.process import free_port, stop_group
from medfactory import paths
from medfactory.ab.recorder import exchanges_since
from medfactory.store.db import open_store

# The Chinese one is the README's docs/chat.png.
SCREENSHOTS = {lang: paths.cache_dir() / "chat" / f"screenshot-{lang}.png" for lang in ("zh", "en")}
# Names no gibberish answer can contain: the page must never show them.
ARMS = ("arm-alpha-7x", "arm-beta-9z")
NAME_FIELD = "#login-name textarea, #login-name input"
QUESTIONS = ("孩子发烧38.5度，需要去医院吗？", "吃了退烧药还是不退烧怎么办？")
CONTENT = "#chat .message, textarea"  # the conversation and what a clinician typed: data
# Words each page must show, written here rather than read from the catalogue under test;
# the thumbs and the footer are Gradio's own words, in the page's language too.
LOGIN_WORDS = {
    "zh": ("medfactory 问答", "您的姓名", "访问码", "开始", "使用 Gradio 构建"),
    "en": ("medfactory chat", "Your name", "Access code", "Start", "Built with Gradio"),
}
CHAT_WORDS = {
    "zh": ("对话", "问题", "发送", "新对话", "建议更好的回答", "提交建议"),
    "en": ("Conversation", "Question", "Send", "New conversation", "Suggest a better answer",
           "Send suggestion"),
}  # fmt: skip
GRADIO_FOOTER = {"zh": "使用 Gradio 构建", "en": "Built with Gradio"}
THUMBS = {"zh": ("赞", "踩"), "en": ("Like", "Dislike")}  # Gradio's labels of the thumbs


def thumb(lang: str, up: bool) -> str:
    return f"#chat button[aria-label='{THUMBS[lang][0 if up else 1]}']"


def assert_gradio_speaks(browser, lang: str) -> None:
    text = browser.find_element("tag name", "body").text
    assert GRADIO_FOOTER[lang] in text
    assert not any(footer in text for other, footer in GRADIO_FOOTER.items() if other != lang)


def start_chat_page(gateway_url: str, log, lang: str, *extra: str):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "medfactory", "chat", "--gateway", gateway_url, "--port",
         str(port), "--access-code", "ward-7", "--max-tokens", "12", *options(lang), *extra],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            time.sleep(0.3)
    stop_group(process.pid, grace=5, reap=process.poll)
    raise AssertionError("the chat page did not start")


def wait(browser, condition, seconds=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, poll_frequency=0.3).until(lambda _: condition())


def chat_as(browser, url, name, store_url, correct: str | None, lang: str) -> None:
    from selenium.webdriver.common.by import By

    like = thumb(lang, up=True)

    browser.get(url)
    browser.find_element(By.CSS_SELECTOR, "#login-name textarea, #login-name input").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "#login-code input").send_keys("ward-7")
    browser.find_element(By.ID, "login-button").click()
    box = browser.find_element(By.CSS_SELECTOR, "#question textarea")
    wait(browser, box.is_displayed)
    for turn, text in enumerate(QUESTIONS, start=1):
        box.send_keys(text)
        browser.find_element(By.ID, "send").click()
        # Answered: the gateway recorded this turn and the page shows its thumbs.
        wait(browser, lambda t=turn: len(mine(store_url, name)) == t)
        wait(browser, lambda n=turn: len(browser.find_elements(By.CSS_SELECTOR, like)) == n)
    browser.find_elements(By.CSS_SELECTOR, like)[0].click()
    saved = t(lang, "Thank you: feedback saved.")
    wait(browser, lambda: browser.find_element(By.ID, "notice").text == saved)
    browser.find_elements(By.CSS_SELECTOR, thumb(lang, up=False))[1].click()
    wait(browser, lambda: thumbs(store_url, name) == [1, -1])
    if correct:
        browser.find_element(By.CSS_SELECTOR, "#correction textarea").send_keys(correct)
        browser.find_element(By.ID, "send-suggestion").click()
        kept = t(lang, "Thank you: your suggested answer is saved.")
        wait(browser, lambda: browser.find_element(By.ID, "notice").text == kept)


def mine(store_url: str, user: str) -> list[dict]:
    return [r for r in exchanges_since(open_store(store_url), "ab") if r["user"] == user]


def thumbs(store_url: str, user: str) -> list:
    return [r["rating"] for r in mine(store_url, user)]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_two_clinicians_chat_rate_and_correct_and_the_report_counts_exactly_that(
    tiny_server, browser, tmp_path, lang
):
    backend = tiny_server.spec.base_url
    arm_list = [Arm(ARMS[0], backend, "tiny"), Arm(ARMS[1], backend, "lora")]
    names = [f"Dr. Li {i}" for i in range(40)]
    # The first two clinicians the hash sends to different versions.
    doctors = {assign("ab", n, arm_list).name: n for n in reversed(names)}
    first, second = doctors[ARMS[0]], doctors[ARMS[1]]
    store_url = f"sqlite:///{tmp_path / 'ab.db'}"
    better = "发烧超过三天或精神差，请尽快到儿科就诊。"
    arms = [f"{a.name}={a.endpoint},model={a.model}" for a in arm_list]
    with (
        Gateway(arms, store_url, tmp_path / "gateway.log") as gateway,
        (tmp_path / "chat.log").open("w") as log,
    ):
        process, url = start_chat_page(gateway.url, log, lang)
        try:
            from selenium.webdriver.common.by import By

            # A wrong access code keeps the chat closed.
            browser.get(url)
            browser.find_element(
                By.CSS_SELECTOR, "#login-name input, #login-name textarea"
            ).send_keys("x")
            browser.find_element(By.CSS_SELECTOR, "#login-code input").send_keys("guess")
            browser.find_element(By.ID, "login-button").click()
            wrong = t(lang, "Wrong access code.")
            wait(browser, lambda: browser.find_element(By.ID, "login-message").text == wrong)
            closed = browser.find_elements(By.CSS_SELECTOR, "#question textarea")
            assert not any(field.is_displayed() for field in closed)
            assert_speaks(browser, lang, CONTENT, (*LOGIN_WORDS[lang], wrong))
            assert_gradio_speaks(browser, lang)

            chat_as(browser, url, first, store_url, better, lang)
            assert_speaks(browser, lang, CONTENT, CHAT_WORDS[lang])
            assert_gradio_speaks(browser, lang)
            page = browser.page_source
            screenshot = SCREENSHOTS[lang]
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(screenshot))
            chat_as(browser, url, second, store_url, None, lang)
            page += browser.page_source
        finally:
            stop_group(process.pid, grace=5, reap=process.poll)

    assert not any(arm in page for arm in ARMS)  # the version is never shown
    rows = exchanges_since(open_store(store_url), "ab")
    for doctor in (first, second):
        turns = [r for r in rows if r["user"] == doctor]
        assert [len(r["messages"]) for r in turns] == [1, 3]  # the second turn has the first
        assert turns[1]["messages"][1]["content"] == turns[0]["answer"]
        assert len({r["conversation"] for r in turns}) == 1

    report = subprocess.run(
        [sys.executable, "-m", "medfactory", "ab", "report", "--db", store_url, "--json",
         "--out", str(tmp_path / "report")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    arms_seen = json.loads(report.stdout)["arms"]
    expected = {
        ARMS[0]: {"users": 1, "conversations": 1, "answers": 2, "thumbs_up": 1, "thumbs_down": 1,
                  "corrections": 1},
        ARMS[1]: {"users": 1, "conversations": 1, "answers": 2, "thumbs_up": 1, "thumbs_down": 1,
                  "corrections": 0},
    }  # fmt: skip
    assert {arm: {k: arms_seen[arm][k] for k in expected[arm]} for arm in ARMS} == expected
    corrected = [r for r in rows if r["correction"]]
    assert [(r["user"], r["correction"]) for r in corrected] == [(first, better)]
    assert corrected[0]["id"] == max(r["id"] for r in rows if r["user"] == first)  # last reply


def test_a_clinician_signs_in_by_link_and_is_the_gateway_user_hostile_text_shown_as_text(
    tiny_server, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    from medfactory.access.users import add_user

    store_url = f"sqlite:///{tmp_path / 'ab.db'}"
    store = open_store(store_url)
    _doctor, token = add_user(store, "dr.zhang", "clinician")
    _page, service = add_user(store, "chatpage", "service")
    arms = [f"{ARMS[0]}={tiny_server.spec.base_url},model=tiny"]
    hostile = '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> 头痛怎么办'
    with (
        Gateway(arms, store_url, tmp_path / "gateway.log", "--auth", "users") as gateway,
        (tmp_path / "chat.log").open("w") as log,
    ):
        process, url = start_chat_page(
            gateway.url, log, "en", "--gateway-api-key", service, "--db", store_url
        )
        try:
            browser.get(url)  # no link yet: no name to type, no chat
            needs = t("en", "This page needs the link you were given.")
            wait(browser, lambda: browser.find_element(By.ID, "login-message").text == needs)
            assert not any(
                f.is_displayed() for f in browser.find_elements(By.CSS_SELECTOR, NAME_FIELD)
            )
            assert requests.get(f"{url}signin/forged-token", timeout=10).status_code == 403
            browser.get(f"{url}signin/{token}")
            box = browser.find_element(By.CSS_SELECTOR, "#question textarea")
            wait(browser, box.is_displayed)
            box.send_keys(hostile)
            browser.find_element(By.ID, "send").click()
            wait(browser, lambda: len(mine(store_url, "dr.zhang")) == 1)
            wait(browser, lambda: "头痛怎么办" in browser.find_element(By.ID, "chat").text)
            shown = browser.find_element(By.ID, "chat").text
            assert '<img src=x onerror="window.pwned=1">' in shown and "<script>" in shown
            assert not browser.find_elements(By.CSS_SELECTOR, "#chat img[src='x']")
            assert browser.execute_script("return window.pwned === undefined")
        finally:
            stop_group(process.pid, grace=5, reap=process.poll)
    rows = exchanges_since(open_store(store_url), "ab")
    assert [r["user"] for r in rows] == ["dr.zhang"]  # the signed-in user, never a typed name
    assert rows[0]["messages"][-1]["content"] == hostile  # the model got it as written
