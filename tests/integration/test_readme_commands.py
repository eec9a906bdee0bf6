"""The README's clinician-review and live A/B commands, typed as written, after `make abtest`.

The commands are read from the fenced blocks under the sections' headings of README.md
and run in order, by bash, in a copy of the project where the demo's outputs stand
ready: the bundled data converted, the tiny model's predictions before and after LoRA
(through the session's shared vLLM server), and `make abtest` done (as its own
`medfactory dev abtest --endpoint`, on the same server). What may differ from a
user's terminal: ports (a free one for each port a command names or a server
defaults to; the shared server's for the README's vLLM on 8000/8001) and the folder
(the copy). Nothing else of a command is changed. The rules below say which commands
start servers (run in the background, checked up, and stopped when their section
ends) and which are skipped, each with its reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from test_demo import project_copy

from deploy.process import free_port, stop_group
from medfactory import paths

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("## Clinician review", "## Live A/B", "## From verdicts to training data")
VLLM_PORTS = {"8000", "8001"}  # the README's `medfactory serve` (and a second one)

# (pattern on the command, reason): first match wins; a command matching none is run.
SKIPPED = (
    (r"^make abtest\b", "ran before the sections, as `medfactory dev abtest --endpoint` on the "
     "session's server (`make abtest` starts a vLLM of its own, a minute on two cores)"),
    (r"^make ", "a make target runs the section's own commands (make review: review create "
     "and review serve), and make in a copy would build the environments again"),
    (r"^medfactory serve\b", "starts vLLM (a minute on two cores): the session's shared server "
     "serves the same versions, `tiny` and `lora`, and stands in for it on its port"),
    (r"\$S\b|^medfactory (train|predict)\b.*\$M\b", "trains, predicts or works on the saves "
     "($S) of the DeepSeek-R1-Distill 7B fine-tune, which need a GPU (tests/gpu)"),
    (r"^medfactory review report\b", "the README runs it once the raters have rated; nobody "
     "rates between these commands (test_review and test_review_server cover the report)"),
    (r"^medfactory review export\b", "needs clinicians' settled verdicts; the review section's "
     "sheet comes back unrated here (test_review exports settled studies)"),
)  # fmt: skip
# Commands that serve until stopped: started in the background, stopped with their section.
SERVERS = r"^medfactory (review serve|gateway|chat|monitor)\b"
SERVER_PORTS = {"review serve": 8300, "chat": 7870}  # their defaults, when no --port is given


@dataclass
class Command:
    section: str
    text: str  # as written, continuation lines joined
    env: str  # `NAME=value ...;` lines of the block before it

    @property
    def bare(self) -> str:
        return re.sub(r"\s+#.*$", "", self.text).strip()


def readme_commands(readme: Path) -> list[Command]:
    """Every command of the fenced blocks under SECTIONS, in order."""
    commands, section = [], None
    text = readme.read_text(encoding="utf-8")
    for part in re.split(r"^(## .*)$", text, flags=re.M):
        if part.startswith("## "):
            section = part if part.startswith(SECTIONS) else None
            continue
        if section is None:
            continue
        for block in re.findall(r"^```bash\n(.*?)^```", part, re.S | re.M):
            env = ""
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if re.fullmatch(r"(\w+=\S+\s*)+", line.strip()):
                    env += line.strip() + "; "  # shell variables for the block's next lines
                    continue
                commands.append(Command(section, line.strip(), env))
    return commands


class Ports:
    """The README's port numbers, each replaced by one free port (the same every time)."""

    def __init__(self, vllm_port: int):
        self.map = {p: str(vllm_port) for p in VLLM_PORTS}

    def __call__(self, command: str) -> str:
        def swap(match: re.Match) -> str:
            port = match.group(2)
            self.map.setdefault(port, str(free_port()))
            return match.group(1) + self.map[port]

        return re.sub(r"(127\.0\.0\.1:|--port )(\d{2,5})\b", swap, command)

    def default(self, command: str, name: str) -> str:
        """A server's own default port, when the command names none, as a free one."""
        if "--port" in command or name not in SERVER_PORTS:
            return command
        self.map.setdefault(str(SERVER_PORTS[name]), str(free_port()))
        head, _, comment = command.partition(" #")
        return f"{head.rstrip()} --port {self.map[str(SERVER_PORTS[name])]}" + (
            f"  #{comment}" if comment else ""
        )


def _run(command: str, copy: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _answers(port: str) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_server, tiny_model, data_dir):
    """A copy of the project where `make demo` and then `make abtest` have run."""
    copy = project_copy(tmp_path_factory.mktemp("project"))
    shutil.copytree(data_dir, copy / "dataset_info", dirs_exist_ok=True)
    (copy / ".cache").mkdir(exist_ok=True)
    (copy / ".cache" / "tiny-model").symlink_to(tiny_model)
    shims = tmp_path_factory.mktemp("bin")
    (shims / "medfactory").write_text(f'#!/bin/sh\nexec {sys.executable} -m medfactory "$@"\n')
    (shims / "medfactory").chmod(0o755)
    spec = tiny_server.spec
    env = {
        **os.environ, "COLUMNS": "200", "MEDFACTORY_HOME": str(copy),
        "PATH": f"{shims}:{os.environ['PATH']}",
        "MEDFACTORY_VENV": str(paths.train_venv()), "MEDFACTORY_VLLM_VENV": str(paths.vllm_venv()),
        "MEDFACTORY_FIXTURES": str(paths.fixtures_dir()),
        # The shared server stands in for the README's `medfactory serve`, behind a key:
        # the commands that talk to it read it here, as a user's shell would give it.
        "MEDFACTORY_API_KEY": spec.api_key,
    }  # fmt: skip
    for version in ("base", "lora"):  # the demo's predictions, through the served versions
        made = _run(
            f"medfactory eval endpoint --endpoint {spec.base_url} --model-name "
            f"{'tiny' if version == 'base' else 'lora'} --dataset huatuo_sample_test "
            f"--max-tokens 32 --out saves/tiny/{version}/predict", copy, env,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
    abtest = _run(f"medfactory dev abtest --endpoint {spec.base_url}", copy, env)
    assert abtest.returncode == 0, abtest.stdout + abtest.stderr
    assert "again with: medfactory ab report\n" in abtest.stdout + "\n"
    return copy, env, tiny_server.spec.port


def test_the_readme_sections_run_as_written_after_make_abtest(project):
    copy, env, vllm_port = project
    commands = readme_commands(REPO / "README.md")
    sections = {c.section for c in commands}
    assert {s for s in SECTIONS if any(x.startswith(s) for x in sections)} == set(SECTIONS)
    assert any("ab report" in c.text for c in commands)
    assert any("ab export" in c.text for c in commands)
    ports = Ports(vllm_port)
    ran, skipped, background = [], [], []
    section = None
    try:
        for command in commands:
            if command.section != section:
                _stop(background)
                section = command.section
            reason = next((r for p, r in SKIPPED if re.search(p, command.bare)), None)
            if reason:
                skipped.append((command.bare, reason))
                continue
            text = ports(command.text)
            server = re.match(SERVERS, command.bare)
            if server:
                text = ports.default(text, server.group(1))
                background.append(_start(text, copy, env, command.env))
                ran.append(text)
                continue
            done = _run(command.env + text, copy, env)
            output = done.stdout + done.stderr
            assert done.returncode == 0 and "Traceback" not in output, f"{text}\n{output}"
            ran.append(text)
            _check(text, done.stdout, copy)
    finally:
        _stop(background)
    print("\n".join(["ran:", *ran, "skipped:", *(f"{c}  ({r})" for c, r in skipped)]))
    assert any(t.startswith("medfactory ab report --since 7d") for t in ran)
    assert any(t.startswith("medfactory ab export --name ab_feedback --since 30d") for t in ran)


@dataclass
class Background:
    text: str
    process: subprocess.Popen
    log: Path


def _start(text: str, copy: Path, env: dict, assignments: str = "") -> Background:
    """A server command in its own process group; up when its port answers (a command
    without a port, `monitor`, when it has written its first row)."""
    log = copy / f".readme-{time.monotonic_ns()}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"{assignments}exec {text}"], cwd=copy, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    started = Background(text, process, log)
    port = re.search(r"--port (\d+)", text)
    csv = re.search(r"--csv (\S+)", text)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{text}\n{log.read_text()}"
        if port and _answers(port.group(1)):
            return started
        if not port and csv and (copy / csv.group(1)).is_file():
            return started
        time.sleep(0.5)
    raise AssertionError(f"{text}: not up in 120 s\n{log.read_text()}")


def _stop(background: list[Background]) -> None:
    while background:
        started = background.pop()
        alive = started.process.poll() is None
        stop_group(started.process.pid, grace=10, reap=started.process.poll)
        started.process.wait()
        output = started.log.read_text()
        assert alive, f"{started.text} stopped by itself\n{output}"
        assert "Traceback" not in output, f"{started.text}\n{output}"


def _check(text: str, stdout: str, copy: Path) -> None:
    """What the README says a command gives, beyond its exit status."""
    if text.startswith("medfactory ab report"):
        report = json.loads((copy / "saves/ab/ab/report.json").read_text())
        assert set(report["arms"]) == {"base", "lora"}
        assert sum(arm["requests"] for arm in report["arms"].values()) == 16  # 8 users x 2
        assert "per clinician (clustered)" in stdout and "per answer" in stdout
    if text.startswith("medfactory ab export"):
        name = re.search(r"--name (\S+)", text).group(1)
        registry = json.loads((copy / "dataset_info/dataset_info.json").read_text())
        assert any(entry.startswith(f"{name}_kto_") for entry in registry), registry.keys()
