"""An MLflow client on the tracking store, checked to answer: a server that is down, a
database that refuses the connection, is one `TrackingUnreachable` line naming the store,
in seconds, not MLflow's minutes of retries and a traceback."""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

from medfactory.tracking.errors import TrackingUnreachable
from medfactory.tracking.settings import artifact_root, is_local_file_store

# Before MLflow is first imported: no usage data leaves the hospital's network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
EXPERIMENT = "medfactory"
PROBE_SECONDS = 5
_preloading: list[threading.Thread] = []
_preloaded: dict[str, object] = {}  # uri -> a client opened in the background


def _quiet() -> None:
    """MLflow and its migrations announce every table they create; a command says less."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow retries a failing server 7 times with backoff (minutes); a few seconds will do.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # lineage reads a few KB


def _probe_server(uri: str) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_SECONDS) as reply:
            reply.read(64)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingUnreachable(
            f"tracking server {uri} does not answer ({reason}); start it, or point "
            "--tracking-uri / MLFLOW_TRACKING_URI at one that runs"
        ) from None


def preload(uri: str) -> None:
    """Import MLflow (a second of a command's time) and open an existing embedded store in
    the background while a run trains, so that recording it afterwards costs only its
    writes. A new store is left to the recording, lest a run that fails at once cut
    MLflow's migrations short; any failure here is open_client's to report."""

    def work() -> None:
        try:
            if is_local_file_store(uri) and Path(uri.removeprefix("sqlite:///")).is_file():
                client = _connect(uri)
                client.search_registered_models(max_results=1)  # the registry's store too
                _preloaded[uri] = client
            else:
                import mlflow.tracking.client  # noqa: F401
        except Exception:  # noqa: BLE001, S110 - reported when the run is recorded
            pass

    thread = threading.Thread(target=work, name="mlflow-preload", daemon=True)
    _preloading.append(thread)
    thread.start()


def open_client(uri: str):
    """An MlflowClient for tracking and registry on `uri`, after checking it answers."""
    while _preloading:  # one import of MLflow at a time: wait for the background one
        _preloading.pop().join()
    if uri in _preloaded:
        return _preloaded.pop(uri)
    if uri.startswith(("http://", "https://")):
        _probe_server(uri)
    if is_local_file_store(uri):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return _connect(uri)


def _connect(uri: str):
    from mlflow import MlflowClient

    _quiet()  # after the import: importing mlflow sets its loggers' levels

    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)  # the first query: connects, migrates
    except Exception as error:  # noqa: BLE001 - MLflow, SQLAlchemy and drivers each raise their own
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingUnreachable(
            f"tracking store {uri} cannot be used ({first[:300]}); check --tracking-uri / "
            "MLFLOW_TRACKING_URI"
        ) from None
    return client


def experiment_id(client, uri: str) -> str:
    """The project's experiment (MLFLOW_EXPERIMENT_NAME, else `medfactory`), made on first
    use with its artifacts beside an embedded store."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(uri))
