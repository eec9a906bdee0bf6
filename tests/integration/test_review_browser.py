"""Two doctors and an arbiter in a real headless Chromium, in Chinese (the default) and in
English; the report says what they clicked."""

import json
import shutil

import pytest
from language_helpers import assert_speaks, options, t
from review_helpers import AXES, Page, create, medfactory
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from medfactory import paths

# The Chinese one is the README's docs/review.png.
SCREENSHOTS = {
    lang: paths.cache_dir() / "review" / f"screenshot-{lang}.png" for lang in ("zh", "en")
}
CONTENT = ".text, textarea"  # the conversation, the answers, what a rater wrote: data
# Words each page must show, written here rather than read from the catalogue under test.
WORDS = {
    "zh": ("结论", "回答 1", "回答 2", "回答 1 更好", "两者相当", "准确性", "提交", "快捷键"),
    "en": (
        "Verdict",
        "Answer 1",
        "Answer 2",
        "Answer 1 better",
        "Tie",
        "Accuracy",
        "Submit",
        "Keys",
    ),
}
RATERS = {"zh": ("评审者 1", "评审者 2"), "en": ("Rater 1", "Rater 2")}
# Each language once, and each store once: the pages' words do not depend on the store.
LANGUAGE_AND_STORE = pytest.mark.parametrize(
    "store_url, lang", [("sqlite", "zh"), ("postgresql", "en")], indirect=["store_url"]
)


def submit_form(browser) -> None:
    """Click Submit and wait for the next document: a form's navigation does not block click()."""
    browser.execute_script("window.medfactoryOldPage = true")
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script(
            "return document.readyState === 'complete' && !window.medfactoryOldPage"
        )
    )


def open_link(browser, link: str) -> None:
    browser.delete_all_cookies()
    browser.get(link)


def rate_on_page(browser, prefer_mark: str, use_keys: bool) -> str:
    """Prefer the answer bearing `prefer_mark`; returns which shown answer (1 or 2) won."""
    first = browser.find_element(By.ID, "answer-1").text
    chosen = "1" if prefer_mark in first else "2"
    if use_keys:  # the keyboard shortcut sets the verdict
        browser.find_element(By.TAG_NAME, "body").send_keys(chosen)
    else:
        browser.find_element(By.ID, f"verdict-{chosen}").click()
    for axis in AXES:
        for n in ("1", "2"):
            score = "4" if n == chosen else "3"
            Select(browser.find_element(By.ID, f"{axis}_{n}")).select_by_value(score)
    return chosen


@LANGUAGE_AND_STORE
def test_two_raters_disagree_once_and_the_arbiter_settles_it(browser, store_url, lang, tmp_path):
    create(store_url, tmp_path, ["d1", "d2"], count=4)  # both raters get all four items
    page = Page(store_url, "s1", *options(lang))
    screenshot = SCREENSHOTS[lang]
    clicks = []  # (rater, item, shown answer that won)
    try:
        for rater in ("d1", "d2"):
            open_link(browser, page.links[rater])
            for position in range(1, 5):
                body = browser.find_element(By.TAG_NAME, "body").text
                assert browser.current_url.endswith(f"/item/{position}"), body
                assert f"{position - 1} / 4" in browser.find_element(By.ID, "progress").text
                if (rater, position) == ("d1", 1):
                    assert_speaks(browser, lang, CONTENT, WORDS[lang])
                    submit_form(browser)  # nothing chosen: refused, in the page's language
                    error = browser.find_element(By.ID, "error").text
                    assert error == t(lang, "Choose a verdict.")
                    assert_speaks(browser, lang, CONTENT, (error,))
                # d2 prefers the base model's answer on the last item: one disagreement.
                mark = "多休息" if (rater, position) == ("d2", 4) else "就医"
                shown = rate_on_page(browser, mark, use_keys=position % 2 == 0)
                clicks.append((rater, position, shown))
                if (rater, position) == ("d1", 2):
                    browser.find_element(By.ID, "correction").send_keys(
                        "先复测血压并排除继发因素；若持续≥160/100mmHg，应尽快就诊，开始降压治疗。"
                    )
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    browser.save_screenshot(str(screenshot))
                submit_form(browser)
            assert browser.find_element(By.ID, "message").text == t(lang, "All done")
            assert_speaks(browser, lang, CONTENT, ({"zh": "全部完成", "en": "All done"}[lang],))

        open_link(browser, page.links["boss"])
        assert browser.current_url.endswith("/arbitrate/4")  # the one open disagreement
        text = assert_speaks(browser, lang, CONTENT, (*WORDS[lang][:5], *RATERS[lang]))
        assert "d1" not in text and "d2" not in text and "lora" not in text and "base" not in text
        first = browser.find_element(By.ID, "answer-1").text
        browser.find_element(By.ID, "verdict-1" if "就医" in first else "verdict-2").click()
        submit_form(browser)
        done = t(lang, "No open disagreement is waiting.")
        assert done in browser.find_element(By.TAG_NAME, "body").text
        assert_speaks(browser, lang, CONTENT, (done,))
    finally:
        page.stop()

    made = medfactory(
        "review", "report", "s1", "--db", store_url, "--json", "--out", str(tmp_path / "r")
    )
    assert made.returncode == 0, made.stderr
    report = json.loads(made.stdout)
    before, after = report["before_arbitration"], report["after_arbitration"]
    assert before["lora"]["win"]["count"] == 7 and before["lora"]["loss"]["count"] == 1
    assert before["base"]["win"]["count"] == 1 and before["lora"]["n"] == 8
    assert after["lora"]["win"]["count"] == 4 and after["lora"]["n"] == 4  # 3 agreed + 1 settled
    assert report["arbitrated"] == 1 and report["unresolved"] == 0
    assert report["agreement"]["pairs"]["d1 ~ d2"]["items"] == 4
    first_won = sum(shown == "1" for _, _, shown in clicks)
    assert report["position_bias"] == report["position_bias"] | {
        "decisive": 8, "first_shown_wins": first_won
    }  # fmt: skip
    means = report["axis_means"]
    assert (
        means["lora"]["accuracy"] == (7 * 4 + 3) / 8
        and means["base"]["accuracy"] == (3 * 7 + 4) / 8
    )
    assert set(report["median_seconds"]) == {"d1", "d2"}
    assert (tmp_path / "r" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert screenshot.read_bytes()[:4] == b"\x89PNG"
    shutil.copy(screenshot, tmp_path / "screenshot.png")
