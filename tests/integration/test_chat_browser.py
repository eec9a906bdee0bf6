"""The clinicians' chat page in the real Chromium, through the gateway, to the report."""

import json
import subprocess
import sys
import time

import requests
from ab_helpers import REPO, Gateway

from deploy.gateway import Arm, assign
from deploy.process import free_port, stop_group
from medfactory import paths
from medfactory.ab.recorder import exchanges_since
from medfactory.store.db import open_store

SCREENSHOT = paths.cache_dir() / "chat" / "screenshot.png"  # the README's docs/chat.png
# Names no gibberish answer can contain: the page must never show them.
ARMS = ("arm-alpha-7x", "arm-beta-9z")
NAME_FIELD = "#login-name textarea, #login-name input"
LIKE = "#chat button[aria-label='Like']"
QUESTIONS = ("孩子发烧38.5度，需要去医院吗？", "吃了退烧药还是不退烧怎么办？")


def start_chat_page(gateway_url: str, log):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "medfactory", "chat", "--gateway", gateway_url, "--port",
         str(port), "--access-code", "ward-7", "--max-tokens", "12"],
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


def chat_as(browser, url, name, store_url, correct: str | None) -> None:
    from selenium.webdriver.common.by import By

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
        wait(browser, lambda t=turn: len(browser.find_elements(By.CSS_SELECTOR, LIKE)) == t)
    browser.find_elements(By.CSS_SELECTOR, LIKE)[0].click()
    wait(browser, lambda: "saved" in browser.find_element(By.ID, "notice").text)
    browser.find_elements(By.CSS_SELECTOR, "#chat button[aria-label='Dislike']")[1].click()
    wait(browser, lambda: thumbs(store_url, name) == [1, -1])
    if correct:
        browser.find_element(By.CSS_SELECTOR, "#correction textarea").send_keys(correct)
        browser.find_element(By.ID, "send-suggestion").click()
        wait(
            browser,
            lambda: "suggested answer is saved" in browser.find_element(By.ID, "notice").text,
        )


def mine(store_url: str, user: str) -> list[dict]:
    return [r for r in exchanges_since(open_store(store_url), "ab") if r["user"] == user]


def thumbs(store_url: str, user: str) -> list:
    return [r["rating"] for r in mine(store_url, user)]


def test_two_clinicians_chat_rate_and_correct_and_the_report_counts_exactly_that(
    ab_server, browser, tmp_path
):
    backend = ab_server.spec.base_url
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
        process, url = start_chat_page(gateway.url, log)
        try:
            from selenium.webdriver.common.by import By

            # A wrong access code keeps the chat closed.
            browser.get(url)
            browser.find_element(
                By.CSS_SELECTOR, "#login-name input, #login-name textarea"
            ).send_keys("x")
            browser.find_element(By.CSS_SELECTOR, "#login-code input").send_keys("guess")
            browser.find_element(By.ID, "login-button").click()
            wait(
                browser,
                lambda: "Wrong access code" in browser.find_element(By.ID, "login-message").text,
            )
            closed = browser.find_elements(By.CSS_SELECTOR, "#question textarea")
            assert not any(field.is_displayed() for field in closed)

            chat_as(browser, url, first, store_url, correct=better)
            page = browser.page_source
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            assert browser.save_screenshot(str(SCREENSHOT))
            chat_as(browser, url, second, store_url, correct=None)
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
