"""Run a tool of the LLaMA-Factory environment with its output kept in a log."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from deploy.vllm_server import log_tail


class CommandFailed(RuntimeError):
    """A wrapped tool exited non-zero; the message carries the log's last lines."""


def run_logged(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None, what: str | None = None
) -> None:
    """Run `argv` with stdout+stderr appended to `log_path`; raise CommandFailed on error."""
    executable = Path(argv[0])
    if not executable.is_file():
        raise CommandFailed(f"{executable} does not exist; run `make install` first")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        code = subprocess.call(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    if code != 0:
        raise CommandFailed(
            f"{what or executable.name} failed (exit {code}); "
            f"last lines of {log_path}:\n{log_tail(log_path)}"
        )
