"""Two doctors and an arbiter review a model's drafts in a real headless Chromium; the
export holds what they accepted and how they corrected it, and LLaMA-Factory loads it."""

import json
import shutil

import pytest
from language_helpers import assert_speaks, options, t
from review_helpers import Page, medfactory
from selenium.webdriver.common.by import By
from test_llamafactory_loading import load_with_llamafactory
from test_review_browser import CONTENT, LANGUAGE_AND_STORE, open_link, submit_form

from medfactory import paths

# The Chinese one is the README's docs/review-drafts.png.
SCREENSHOTS = {lang: paths.cache_dir() / "review" / f"drafts-{lang}.png" for lang in ("zh", "en")}
# Words the page must show, written here rather than read from the catalogue under test.
WORDS = {
    "zh": ("起草的答案", "来源", "结论", "接受", "修改", "拒绝", "修改后的答案", "提交"),
    "en": ("Drafted answer", "Source", "Verdict", "Accept", "Edit", "Reject", "Corrected answer",
           "Submit"),
}  # fmt: skip
ANSWER_2 = {"zh": "回答 2", "en": "Answer 2"}
DRAFTS = [
    ("成人高血压的诊断标准是什么？", "诊室血压≥140/90 mmHg。", "诊断：血压≥140/90 mmHg。"),
    ("ACEI 最常见的不良反应是什么？", "主要是皮疹。", "ACEI最常见的不良反应是干咳。"),
    ("高血压患者每天吃多少盐？", "不超过10克。", "每日食盐摄入应少于5克。"),
]  # fmt: skip
# What each doctor does with each draft: (d1, d2); the last disagreement goes to the arbiter.
CHOICES = [("accept", "accept"), ("edit", "edit"), ("edit", "reject")]
FIXED = {2: "ACEI最常见的不良反应是干咳，不能耐受时可换用ARB。", 3: "每日食盐摄入应少于5克。"}


def write_drafts(folder) -> str:
    path = folder / "htn.drafts.jsonl"
    rows = [
        {"id": f"htn.md#{i}.1", "question": q, "answer": a, "chunk_text": chunk,
         "source": {"file": "guides/htn.md", "chunk": i, "heading": "高血压", "start": 40 * i,
                    "end": 40 * i + len(chunk)}}
        for i, (q, a, chunk) in enumerate(DRAFTS)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(path)


@LANGUAGE_AND_STORE
def test_doctors_accept_edit_and_reject_drafts_and_the_export_loads(
    browser, store_url, lang, tmp_path, tiny_model
):
    made = medfactory(
        "review", "create", "drafts", "--drafts", write_drafts(tmp_path), "--raters", "d1,d2",
        "--arbiter", "boss", "--db", store_url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    page = Page(store_url, "drafts", *options(lang))
    screenshot = SCREENSHOTS[lang]
    try:
        for who, rater in enumerate(("d1", "d2")):
            open_link(browser, page.links[rater])
            for position, choices in enumerate(CHOICES, 1):
                assert browser.current_url.endswith(f"/item/{position}")
                question, answer, chunk = DRAFTS[position - 1]
                assert browser.find_element(By.CSS_SELECTOR, "#answer-1 .text").text == answer
                source = browser.find_element(By.ID, "source").text
                assert chunk in source and "guides/htn.md" in source
                assert ANSWER_2[lang] not in browser.find_element(By.TAG_NAME, "body").text
                if position == 1:
                    assert_speaks(browser, lang, CONTENT, WORDS[lang])
                choice = choices[who]
                if choice == "accept" and who == 0:  # the keyboard shortcut
                    browser.find_element(By.TAG_NAME, "body").send_keys("a")
                else:
                    browser.find_element(By.ID, f"verdict-{choice}").click()
                if choice == "edit":
                    box = browser.find_element(By.ID, "correction")
                    assert box.get_attribute("value") == answer  # the draft, to start from
                    box.clear()
                    box.send_keys(FIXED[position])
                    if rater == "d1" and position == 2:
                        screenshot.parent.mkdir(parents=True, exist_ok=True)
                        browser.save_screenshot(str(screenshot))
                submit_form(browser)
            assert browser.find_element(By.ID, "message").text == t(lang, "All done")

        open_link(browser, page.links["boss"])
        assert browser.current_url.endswith("/arbitrate/3")  # edit against reject
        raters = {"zh": ("评审者 1", "评审者 2"), "en": ("Rater 1", "Rater 2")}[lang]
        text = assert_speaks(browser, lang, CONTENT, (*WORDS[lang], *raters))
        assert FIXED[3] in text
        browser.find_element(By.ID, "verdict-edit").click()
        box = browser.find_element(By.ID, "correction")
        box.clear()
        submit_form(browser)  # an edit without the answer: refused, in the page's language
        error = browser.find_element(By.ID, "error").text
        assert error == t(lang, "Write the corrected answer to choose Edit.")
        assert_speaks(browser, lang, CONTENT, (error,))
        browser.find_element(By.ID, "verdict-edit").click()
        box = browser.find_element(By.ID, "correction")
        box.clear()
        box.send_keys("成人每日食盐摄入应少于5克。")
        submit_form(browser)
        done = t(lang, "No open disagreement is waiting.")
        assert done in browser.find_element(By.TAG_NAME, "body").text
    finally:
        page.stop()

    report = medfactory("review", "report", "drafts", "--db", store_url, "--json",
                        "--out", str(tmp_path / "r"))  # fmt: skip
    assert report.returncode == 0, report.stderr
    counts = json.loads(report.stdout)
    assert {v: e["count"] for v, e in counts["after_arbitration"].items()} == {
        "accept": 1, "edit": 2, "reject": 0,
    }  # fmt: skip
    assert counts["arbitrated"] == 1 and counts["unsettled"] == 0

    data = tmp_path / "data"
    exported = medfactory(
        "review", "export", "drafts", "--name", "htn", "--dataset-dir", str(data),
        "--format", "alpaca", "--split", "1", "--db", store_url, "--json",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(x) for x in (data / "htn_sft_train.jsonl").read_text().splitlines()]
    assert [(r["instruction"], r["output"]) for r in rows] == [
        (DRAFTS[0][0], DRAFTS[0][1]), (DRAFTS[1][0], FIXED[2]),
        (DRAFTS[2][0], "成人每日食盐摄入应少于5克。"),
    ]  # fmt: skip
    assert rows[1]["source"] == f"guides/htn.md#chunk1[40:{40 + len(DRAFTS[1][2])}]"
    loaded = load_with_llamafactory(tiny_model, data, "htn_sft", tmp_path / "lf")
    assert loaded["kept"] == {"train": 3}  # the source column rides along unharmed
    assert all(FIXED[2] in text for text in loaded["decoded"][1:2])
    assert screenshot.read_bytes()[:4] == b"\x89PNG"
    shutil.copy(screenshot, tmp_path / "drafts.png")


EXAM_ROW = {
    "id": "htn.md#0.1", "subject": "htn", "question": "成人高血压的诊断标准是？",
    "options": ["≥120/80 mmHg", "≥130/85 mmHg", "≥140/90 mmHg", "≥160/100 mmHg"], "answer": "B",
    "source": {"file": "guides/htn.md", "chunk": 0, "heading": "诊断", "start": 0, "end": 20},
    "chunk_text": "诊室血压≥140/90 mmHg 可诊断高血压。",
}  # fmt: skip


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_doctor_corrects_an_exam_questions_key_and_the_exam_has_it(browser, store_url, tmp_path):
    exam = tmp_path / "htn.exam.jsonl"
    exam.write_text(json.dumps(EXAM_ROW, ensure_ascii=False) + "\n")
    made = medfactory("review", "create", "exam", "--drafts", str(exam), "--raters", "d1",
                      "--overlap", "1", "--db", store_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    page = Page(store_url, "exam")
    try:
        open_link(browser, page.links["d1"])
        shown = browser.find_element(By.CSS_SELECTOR, "#answer-1 .text").text
        assert shown.splitlines() == [
            "A. ≥120/80 mmHg", "B. ≥130/85 mmHg", "C. ≥140/90 mmHg", "D. ≥160/100 mmHg", "答案：B",
        ]  # fmt: skip
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "起草的选项与答案" in body and "修改后的选项与答案" in body
        assert EXAM_ROW["chunk_text"] in browser.find_element(By.ID, "source").text
        browser.find_element(By.ID, "verdict-edit").click()
        box = browser.find_element(By.ID, "correction")
        assert box.get_attribute("value") == shown  # the options and key, to start from
        box.clear()
        box.send_keys(shown.replace("答案：B", "答案：C"))
        submit_form(browser)
    finally:
        page.stop()
    out = tmp_path / "exam" / "htn.jsonl"
    written = medfactory("review", "export-exam", "exam", "--out", str(out), "--db", store_url)
    assert written.returncode == 0, written.stderr
    [question] = [json.loads(line) for line in out.read_text().splitlines()]
    assert question["answer"] == "C" and question["options"] == EXAM_ROW["options"]
    assert question["question"] == EXAM_ROW["question"] and question["reviewed"] == "edit"
