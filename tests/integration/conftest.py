"""Integration fixtures: the bundled data converted once, one shared vLLM server."""

from __future__ import annotations

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
    """A vLLM server (`.venv-vllm`) with the tiny model on a free loopback port.

    It requires API key `test-key` (in `server.spec.api_key`).
    """
    spec = ServerSpec(
        python=paths.vllm_python(), model=tiny_model, port=free_port(),
        served_model_name="tiny", max_model_len=2048, api_key="test-key",
    )  # fmt: skip
    with Server(spec, tmp_path_factory.mktemp("vllm") / "vllm.log").start() as server:
        yield server
