"""Shared fixtures: the tiny model is built once per test session and cached."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from medfactory import paths

REPO = Path(__file__).resolve().parents[1]

# Runs are recorded to MLflow only where a test asks for it (--tracking-uri, or this
# variable set back to on): elsewhere a store would cost seconds per command, and the
# default store is the project's own saves/mlflow.
os.environ.setdefault("MEDFACTORY_TRACKING", "off")


def _cuda_missing_reason() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return "no CUDA device: nvidia-smi is not installed"
    if subprocess.run(["nvidia-smi"], capture_output=True).returncode != 0:
        return "no CUDA device: nvidia-smi finds no GPU"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device: torch.cuda.is_available() is False"
    return None


# A test's folder is its kind: `make test-unit` (-m "not integration and not gpu") can
# never pick up a test that starts LLaMA-Factory or vLLM, whatever its file declares.
MARKERS_BY_FOLDER = {"unit": (), "integration": ("integration",), "gpu": ("gpu", "integration")}


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(item.path).relative_to(REPO / "tests").parts[0]
        if folder not in MARKERS_BY_FOLDER:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, integration or gpu")
        for marker in MARKERS_BY_FOLDER[folder]:
            item.add_marker(marker)
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
