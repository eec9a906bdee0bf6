"""Shared fixtures: the tiny model is built once per test session and cached."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from medfactory import paths

REPO = Path(__file__).resolve().parents[1]


def _cuda_missing_reason() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return "no CUDA device: nvidia-smi is not installed"
    if subprocess.run(["nvidia-smi"], capture_output=True).returncode != 0:
        return "no CUDA device: nvidia-smi finds no GPU"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device: torch.cuda.is_available() is False"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and (reason := _cuda_missing_reason()):
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = paths.fixtures_dir()
    if not (path / "qwen2.5-0.5b-instruct-tokenizer").is_dir():
        pytest.fail(f"shared fixtures not found at {path}; set MEDFACTORY_FIXTURES")
    return path


@pytest.fixture(scope="session")
def tiny_model(fixtures_dir) -> Path:
    """The tiny Qwen2 model, built under .cache/ once and reused while it matches."""
    from medfactory.dev.tiny_model import ensure_tiny_model

    return ensure_tiny_model(
        paths.cache_dir() / "tiny-model", fixtures_dir / "qwen2.5-0.5b-instruct-tokenizer"
    )
