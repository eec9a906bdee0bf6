"""Integration fixtures: the bundled data converted once, one shared vLLM server."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.process import free_port
from deploy.server import Server, ServerSpec
from medfactory import paths

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """The bundled samples converted and registered by `make data`, in a fresh folder."""
    folder = tmp_path_factory.mktemp("data")
    subprocess.run(["make", "-s", "data", f"DATA_DIR={folder}"], cwd=REPO, check=True)
    return folder


@pytest.fixture(scope="session")
def tiny_server(tiny_model, tmp_path_factory):
    """The one vLLM server (`.venv-vllm`) of the test session, as `medfactory serve` starts it
    (the qwen chat template): the tiny model as `tiny` and a random LoRA adapter as `lora`, on
    a free loopback port, behind API key `test-key` (in `server.spec.api_key`), eager as every
    server of the tiny model in the tests. Every test that only talks to a server shares it;
    a vLLM start costs a minute on two cores."""
    from deploy.server import parse_adapters
    from deploy.serving import serving_spec
    from medfactory.dev.tiny_model import build_tiny_adapter

    folder = tmp_path_factory.mktemp("vllm")
    adapter = build_tiny_adapter(tiny_model, folder / "adapter")
    spec = serving_spec(ServerSpec(
        python=paths.vllm_python(), model=tiny_model, port=free_port(), template="qwen",
        served_model_name="tiny", max_model_len=2048, api_key="test-key", enforce_eager=True,
        adapters=parse_adapters([f"lora={adapter}"], "tiny"),
    ))  # fmt: skip
    with Server(spec, folder / "vllm.log").start() as server:
        yield server


def _postgres_bin(name: str) -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL's {name} not found; `make install` installs Debian's postgresql")
    return found[-1]


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server of our own on a loopback port, for the store's tests.

    initdb and postgres refuse to run as root, so as root they run as the
    `postgres` user, in a folder it owns.
    """
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="medfactory-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [*as_user, str(_postgres_bin("initdb")), "-D", str(folder / "data"), "-A", "trust",
         "-U", "medfactory", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off"
    subprocess.run(
        [*as_user, str(_postgres_bin("pg_ctl")), "-D", str(folder / "data"), "-o", options,
         "-l", str(folder / "server.log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://medfactory@127.0.0.1:{port}"
    finally:
        stop = [str(_postgres_bin("pg_ctl")), "-D", str(folder / "data"), "-m", "fast", "stop"]
        subprocess.run([*as_user, *stop], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A fresh, empty store: an SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'review.db'}"
    import uuid

    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"review_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture
def browser(tmp_path):
    """Debian's headless Chromium through Selenium; never a downloaded browser."""
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(10)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def ab_server(tiny_server):
    """The A/B tests' two versions (`tiny` and `lora`) are the shared server's."""
    return tiny_server
