"""`medfactory models ui`: what it runs on which store, and one line for a taken port or a
store that is already a server (starting MLflow's server is the integration test's)."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from medfactory import paths
from medfactory.cli import cli
from medfactory.tracking.ui import server_argv, store_label


def test_the_embedded_store_is_served_with_its_artifacts_folder(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    argv = server_argv(uri, "127.0.0.1", 5000)
    assert argv[:2] == [str(paths.train_venv() / "bin" / "mlflow"), "server"]
    options = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert options["--backend-store-uri"] == uri
    assert options["--default-artifact-root"] == (tmp_path / "mlflow" / "artifacts").as_uri()
    assert (options["--port"], options["--workers"]) == ("5000", "1")
    proxied = server_argv("postgresql+psycopg://u:secret@db/mlflow", "0.0.0.0", 5001, tmp_path)
    assert proxied[proxied.index("--artifacts-destination") + 1] == tmp_path.as_uri()
    assert "--default-artifact-root" not in proxied


def test_a_database_store_is_named_without_its_password():
    assert store_label("postgresql+psycopg://mlflow:secret@db:5432/mlflow") == (
        "postgresql+psycopg://db:5432/mlflow"
    )
    assert store_label("sqlite:////srv/mlflow.db") == "/srv/mlflow.db"


def test_a_taken_port_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        store = f"sqlite:///{tmp_path / 'm.db'}"
        run = CliRunner().invoke(
            cli, ["models", "ui", "--port", str(port), "--tracking-uri", store]
        )
    assert run.exit_code == 1
    assert run.output == f"Error: port {port} on 127.0.0.1 is already in use; pass another --port\n"


def test_a_tracking_server_already_has_its_ui():
    run = CliRunner().invoke(cli, ["models", "ui", "--tracking-uri", "http://mlflow.lan:5000"])
    assert run.exit_code == 0
    assert (
        run.output
        == "http://mlflow.lan:5000 is an MLflow server: its UI is at http://mlflow.lan:5000/\n"
    )
