"""Where runs are recorded and whether: `--tracking-uri`, else MLflow's own
MLFLOW_TRACKING_URI (so `mlflow ui` and MLflow's client see the same store), else an
embedded store under saves/: an SQLite file with the artifacts beside it. A team points
it at an MLflow server (`http://host:5000`) backed by PostgreSQL.

Recording is on by default; `--no-tracking` or MEDFACTORY_TRACKING=off turns it off
(a --tracking-uri given on the command line turns it back on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medfactory import paths

OFF_WORDS = {"off", "0", "false", "no", "none"}


def saves_dir() -> Path:
    """Where recipes write their output (`output_dir: saves/...`, relative to the project)."""
    return paths.PROJECT_ROOT / "saves"


def embedded_dir() -> Path:
    return saves_dir() / "mlflow"


def embedded_uri() -> str:
    return f"sqlite:///{embedded_dir() / 'mlflow.db'}"


def embedded_artifacts() -> Path:
    return embedded_dir() / "artifacts"


def tracking_uri(option: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the embedded SQLite store. A plain
    postgresql:// URL is read with psycopg 3, the driver installed (SQLAlchemy would look
    for psycopg2)."""
    uri = option or os.environ.get("MLFLOW_TRACKING_URI") or embedded_uri()
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg://" + uri.removeprefix("postgresql://")
    return uri


def is_server(uri: str) -> bool:
    """An MLflow tracking server, reached over HTTP (as opposed to a database or a file)."""
    return uri.startswith(("http://", "https://"))


def is_local_file_store(uri: str) -> bool:
    """An SQLite file: its artifacts go to a folder beside it, not MLflow's ./mlruns."""
    return uri.startswith("sqlite:///")


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside an SQLite store; a server decides
    for itself (None)."""
    if not is_local_file_store(uri):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()


def tracking_off_by_env() -> bool:
    return os.environ.get("MEDFACTORY_TRACKING", "").strip().lower() in OFF_WORDS


@dataclass(frozen=True)
class Tracking:
    """How a command that trains or exports records: the store's URI as given (None: the
    default), on or off, whether failing to reach the store fails the command, and the
    registered model's name (None: from the recipe's output folder)."""

    uri: str | None = None
    enabled: bool = True
    required: bool = False
    model_name: str | None = None

    @classmethod
    def from_options(
        cls, uri: str | None, no_tracking: bool, required: bool, model_name: str | None = None
    ) -> Tracking:
        # An explicit --tracking-uri or --require-tracking outranks the environment's off.
        enabled = not no_tracking and (required or uri is not None or not tracking_off_by_env())
        return cls(uri, enabled, required, model_name)

    @property
    def resolved_uri(self) -> str:
        return tracking_uri(self.uri)
