"""LLaMA-Factory's WebUI in a real headless Chromium: our datasets are there and preview."""

import json
import re
from pathlib import Path

import pytest
import yaml

from deploy.process import free_port, group_alive, stop_group
from medfactory import paths
from medfactory.recipes.webui import prepare_workspace, start_webui

SCREENSHOT = paths.cache_dir() / "webui" / "screenshot.png"  # the README's docs/webui.png


@pytest.fixture(scope="module")
def saves(tmp_path_factory):
    return tmp_path_factory.mktemp("saves")


@pytest.fixture(scope="module")
def webui(tiny_model, data_dir, saves, tmp_path_factory):
    root = tmp_path_factory.mktemp("webui")
    workspace = prepare_workspace(root / "workspace", "tiny", data_dir, saves)
    port = free_port()
    process = start_webui(workspace, "127.0.0.1", port, root / "webui.log")
    yield f"http://127.0.0.1:{port}/"
    stop_group(process.pid, grace=5, reap=process.poll)
    assert not group_alive(process.pid)  # the WebUI and its workers are all gone


# A Gradio component found by its label, and the text field inside it.
BLOCK = "//span[@data-testid='block-info' and normalize-space()='{}']/ancestor::*[contains(@class,'block')][1]"  # noqa: E501
FIELD = BLOCK + "//*[self::input or self::textarea]"


def choose(browser, label: str, value: str) -> None:
    """Type `value` into the labelled field (a dropdown takes it with Enter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = browser.find_element(By.XPATH, FIELD.format(label))
    field.click()
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.ENTER)
    field.send_keys(Keys.ESCAPE)


def test_webui_lists_and_previews_our_datasets(webui, browser, data_dir, tiny_model):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(webui)
    block = BLOCK

    # The preset's model path is preselected.
    model_path = browser.find_element(By.XPATH, block.format("Model path") + "//textarea")
    assert model_path.get_attribute("value") == str(tiny_model)

    # The dataset picker lists exactly what we registered.
    picker = browser.find_element(By.XPATH, block.format("Dataset") + "//input")
    picker.click()
    options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "ul.options li")]
    registry = json.loads((data_dir / "dataset_info.json").read_text())
    assert sorted(options) == sorted(registry)

    picker.send_keys("huatuo_sample_train", Keys.ENTER)
    picker.send_keys(Keys.ESCAPE)
    preview = browser.find_element(By.XPATH, "//button[normalize-space()='Preview dataset']")
    WebDriverWait(browser, 20).until(lambda _: preview.is_enabled())
    preview.click()

    # The preview shows our file: its record count and its first record.
    rows = (data_dir / "huatuo_sample_train.jsonl").read_text(encoding="utf-8").splitlines()
    count = browser.find_element(By.XPATH, block.format("Count") + "//input")
    WebDriverWait(browser, 20).until(lambda _: count.get_attribute("value") == str(len(rows)))
    first_question = json.loads(rows[0])["conversations"][0]["value"]
    samples = browser.find_element(By.CSS_SELECTOR, "[data-testid=json] .json-holder")
    WebDriverWait(browser, 20).until(lambda _: first_question[:20] in samples.text)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert Path(SCREENSHOT).stat().st_size > 20_000


def test_a_run_started_from_the_webui_trains_on_our_data(webui, browser, saves, data_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(webui)
    choose(browser, "Dataset", "huatuo_sample_train")
    for label, value in (("Compute type", "fp32"), ("Max samples", "8"), ("Epochs", "1")):
        choose(browser, label, value)  # what a CPU and a quick run need
    browser.find_element(By.XPATH, "//button[normalize-space()='Start']").click()

    WebDriverWait(browser, 240, poll_frequency=2).until(
        lambda _: list(saves.glob("*/lora/*/all_results.json"))
    )
    run = next(saves.glob("*/lora/*/all_results.json")).parent
    args = yaml.safe_load((run / "training_args.yaml").read_text())
    assert (args["dataset"], args["dataset_dir"]) == ("huatuo_sample_train", "data")
    log = (run / "running_log.txt").read_text(errors="replace")
    assert "Loading dataset huatuo_sample_train.jsonl" in log
    assert re.search(r"Num examples = 8\b", log)
    results = json.loads((run / "all_results.json").read_text())
    assert results["epoch"] == 1.0 and results["train_loss"] > 0
    assert (run / "adapter_model.safetensors").stat().st_size > 0
