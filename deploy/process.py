"""Processes the project starts: free ports, process groups, waiting until up, log tails.

Servers, the WebUI, training runs and the demo's stages each run in a process
group of their own, so that stopping one -- also after Ctrl-C -- ends its
workers too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class ServerStartError(RuntimeError):
    """A server could not be started; the message says why and what to do."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def healthy(base_url: str, paths: tuple[str, ...] = ("/health", "/v1/models")) -> bool:
    """The server answers HTTP 200 (or 401: up, behind an API key) on one of `paths`.

    vLLM has /health; LLaMA-Factory's api has only /v1/models; a Gradio app answers "/".
    """
    for path in paths:
        try:
            with urllib.request.urlopen(base_url + path, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except urllib.error.HTTPError as error:
            if error.code == 401:  # up, and guarded by an API key
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    return False


def wait_until_up(
    process: subprocess.Popen,
    is_up: Callable[[], bool],
    log_path: Path,
    name: str,
    timeout: float,
    on_wait: Callable[[float], None] | None = None,
    poll: float = 1.0,
) -> None:
    """Block until `is_up()`; ServerStartError with the log's tail if it exits or times out."""
    started = time.monotonic()
    while not is_up():
        code = process.poll()
        if code is not None:
            raise ServerStartError(
                f"{name} exited with code {code} during start-up; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        waited = time.monotonic() - started
        if waited > timeout:
            raise ServerStartError(
                f"{name} did not become healthy within {timeout:.0f} s; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        if on_wait:
            on_wait(waited)
        time.sleep(poll)


def stop_group(pgid: int, grace: float = 20.0, reap: Callable[[], object] = lambda: None) -> None:
    """SIGTERM a process group, SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pgid):
            reap()  # reap the leader so the group can empty
            time.sleep(0.2)
        if not group_alive(pgid):
            return


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
