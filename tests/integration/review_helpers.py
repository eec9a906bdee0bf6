"""Helpers of the review tests: studies made and pages served through the real CLI."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from deploy.process import free_port, stop_group

REPO = Path(__file__).resolve().parents[2]
AXES = ("accuracy", "safety", "completeness", "communication")


def medfactory(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medfactory", *args], cwd=REPO, capture_output=True, text=True, **kw
    )


QUESTIONS = [
    "孩子发烧38.5度，咳嗽两天，需要去医院吗？",
    "血压160/100mmHg，头晕，平时没有吃药，怎么办？",
    "空腹血糖7.8mmol/L，需要吃药吗？",
    "胃疼反酸一个月了，吃什么药好？",
]
# The two versions answer in a way a test can tell apart and a rater cannot trace to a model:
# the base model's answers say 多休息, the fine-tune's say 就医.
ANSWERS = {
    "base": "建议多休息，多喝水，注意观察。",
    "lora": "需要结合具体情况判断：如症状持续或加重，请及时就医，在医生指导下用药。",
}


def question(i: int) -> str:
    return f"{QUESTIONS[i % len(QUESTIONS)]}（第{i + 1}例）"


def prediction_files(folder: Path, count: int) -> list[Path]:
    paths = []
    for name in ("base", "lora"):
        path = folder / name / "generated_predictions.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"prompt": f"<|im_start|>system\n你是一名经验丰富的全科医生。<|im_end|>\n"
                       f"<|im_start|>user\n{question(i)}<|im_end|>\n<|im_start|>assistant\n",
             "predict": ANSWERS[name], "label": "参考答案"}
            for i in range(count)
        ]  # fmt: skip
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        paths.append(path)
    return paths


def create(store_url: str, folder: Path, raters: list[str], count: int, overlap: int = 2) -> None:
    base, lora = prediction_files(folder, count)
    made = medfactory(
        "review", "create", "s1", "--a", str(base), "--b", str(lora), "--raters", ",".join(raters),
        "--arbiter", "boss", "--overlap", str(overlap), "--seed", "3", "--db", store_url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr


class Page:
    """`medfactory review serve` in its own process group, and the links it printed."""

    def __init__(self, store_url: str, study: str = "s1", *options: str):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "medfactory", "review", "serve", study, "--db", store_url,
             "--port", str(self.port), *options],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.links, self.output = {}, []
        for line in self.process.stdout:
            self.output.append(line)
            if "Ctrl-C stops the page" in line:
                break
            if match := re.match(r"\s*(\S+)\s+(http://\S+/r/\S+)", line):
                self.links[match[1]] = match[2]
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError("".join(self.output))

    def login(self, name: str) -> requests.Session:
        session = requests.Session()
        assert session.get(self.links[name], timeout=10).ok
        return session

    def stop(self, sig=signal.SIGTERM) -> None:
        if sig == signal.SIGKILL:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        else:
            stop_group(self.process.pid, grace=10, reap=self.process.poll)


def form_of(html: str) -> dict:
    return dict(re.findall(r'name="(csrf|submit_key|started)" value="([^"]*)"', html))


def rate(session: requests.Session, url: str, position: int, verdict: str, **extra):
    html = session.get(f"{url}/item/{position}", timeout=10).text
    form = form_of(html) | {"verdict": verdict} | {f"{a}_{n}": "3" for a in AXES for n in (1, 2)}
    return session.post(f"{url}/item/{position}", data=form | extra, timeout=30), form


def my_items(session: requests.Session, url: str) -> list[int]:
    reply = session.get(f"{url}/item/1", timeout=10)
    html = reply.text
    if reply.status_code == 403:  # item 1 is someone else's: start from this rater's next
        html = session.get(session.get(url, timeout=10).url, timeout=10).text
    return [int(p) for p in re.findall(r'<a href="/item/(\d+)"', html)]
