"""MLflow's own UI on the store the other commands use: `mlflow server` from the project's
environment (.venv), in the foreground until Ctrl-C.

The embedded store is served with its artifacts folder, so the UI lists each run's recipe,
manifests and results; a database store (`postgresql+psycopg://...`) is served as it is.
A store that is already an MLflow server (`http://...`) has the UI at its own address.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from medfactory import paths
from medfactory.tracking.errors import PortInUse, ServerExited
from medfactory.tracking.settings import artifact_root, is_local_file_store, is_server

START_SECONDS = 180  # two cores, a first start migrating a new store: about 15 s
# A UI on a hospital's machine calls no one: no usage telemetry, LiteLLM's price list
# read from its bundled copy (fetching it retries for seconds with no network), and no
# job runner (it serves GenAI jobs, not the registry). The environment still decides.
QUIET_SERVER = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def server_argv(uri: str, host: str, port: int, artifacts: Path | None = None) -> list[str]:
    """`mlflow server` on `uri`: one worker (one person's browser); new experiments'
    artifacts beside an embedded store, or proxied into `artifacts` when given."""
    argv = [str(paths.train_venv() / "bin" / "mlflow"), "server", "--backend-store-uri", uri,
            "--host", host, "--port", str(port), "--workers", "1"]  # fmt: skip
    if artifacts is not None:
        argv += ["--artifacts-destination", Path(artifacts).resolve().as_uri()]
    elif is_local_file_store(uri):
        argv += ["--default-artifact-root", artifact_root(uri), "--no-serve-artifacts"]
    return argv


def start_server(
    uri: str, host: str, port: int, log: Path, artifacts: Path | None = None
) -> subprocess.Popen:
    """`mlflow server` in its own process group; returns once /health answers."""
    from deploy.process import healthy, port_in_use, stop_group, wait_until_up

    if port_in_use(host, port):
        raise PortInUse(f"port {port} on {host} is already in use; pass another --port")
    if is_local_file_store(uri):  # SQLite makes the file, not its folder
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_argv(uri, host, port, artifacts), cwd=log.parent,
            env={**QUIET_SERVER, **os.environ}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_up(
            process, lambda: healthy(f"http://{host}:{port}", paths=("/health",)), log,
            "mlflow server", timeout=START_SECONDS, poll=0.3,
        )  # fmt: skip
    except BaseException:
        stop_group(process.pid, grace=5, reap=process.poll)
        raise
    return process


def stop_server(process: subprocess.Popen) -> None:
    from deploy.process import stop_group

    stop_group(process.pid, grace=10, reap=process.poll)


def store_label(uri: str) -> str:
    """The store in words, without a database URI's password."""
    if is_local_file_store(uri):
        return uri.removeprefix("sqlite:///")
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def run_ui(uri: str, host: str, port: int, say: Callable[[str], None]) -> None:
    """Serve MLflow's UI on `uri` until interrupted, then stop it; `say` gets the URL."""
    if is_server(uri):
        say(f"{uri} is an MLflow server: its UI is at {uri.rstrip('/')}/")
        return
    log = paths.cache_dir() / "logs" / "mlflow-ui.log"
    process = start_server(uri, host, port, log)
    try:
        say(f"MLflow UI: http://{host}:{port}/  (store {store_label(uri)}; log {log}; "
            "Ctrl-C stops it)")  # fmt: skip
        code = process.wait()
    except KeyboardInterrupt:
        return
    finally:
        stop_server(process)
    raise ServerExited(f"mlflow server stopped by itself (exit {code}); see {log}")
