"""The MLflow server `deploy k8s --tracking` renders, run as its manifests say: the
container's command line and env, its backend URL decoded from the Secret, its database
made by the PostgreSQL init script, on a real PostgreSQL. A client that names it by its
Service is answered, and a run's artifact lands in the artifacts volume's folder."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import psycopg
import pytest
import yaml

from deploy.k8s.render import render
from deploy.k8s.spec import build_spec
from deploy.process import free_port, healthy, stop_group, wait_until_up

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def manifest(files: dict[str, str], kind: str, name: str) -> dict:
    docs = [d for text in files.values() for d in yaml.safe_load_all(text) if d]
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of a container's args from its env."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)


@pytest.fixture
def rendered_server(postgres_server, tmp_path):
    """The rendered mlflow container on this machine: PostgreSQL's host and the listening
    address and artifacts path swapped for local ones, all else as rendered; its port."""
    spec = build_spec([], [], tracking=True)
    files = render(spec)
    secret = manifest(files, "Secret", "medfactory-secrets")["data"]
    init = manifest(files, "ConfigMap", "medfactory-postgres-init")["data"]["mlflow.sql"]
    pod = manifest(files, "Deployment", "medfactory-mlflow")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    local_db = postgres_server.removeprefix("postgresql://").partition("@")[2]
    env = {}
    for item in container["env"]:
        if "valueFrom" in item:
            key = item["valueFrom"]["secretKeyRef"]["key"]
            env[item["name"]] = base64.b64decode(secret[key]).decode()
        else:
            env[item["name"]] = item["value"]
    url = env["MLFLOW_BACKEND_STORE_URI"]
    assert "@medfactory-postgres:5432/" in url  # the in-cluster PostgreSQL's Service
    env["MLFLOW_BACKEND_STORE_URI"] = url.replace("medfactory-postgres:5432", local_db)
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as connection:
        connection.execute(init)  # what the PostgreSQL image runs on its first start
    port, artifacts = free_port(), tmp_path / "artifacts"
    mount = pod["volumes"][0]["name"]
    [mounted] = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == mount]
    local = {"0.0.0.0": "127.0.0.1", "5000": str(port), mounted: str(artifacts)}
    args = [local.get(a, expand(a, env)) for a in container["args"]]
    command = [str(VENV_BIN / container["command"][0]), *container["command"][1:]]
    log = tmp_path / "mlflow.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, *args], env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp_path,
        )  # fmt: skip
    try:
        wait_until_up(
            process, lambda: healthy(f"http://127.0.0.1:{port}", paths=("/health",)), log,
            "mlflow server", timeout=180, poll=0.3,
        )  # fmt: skip
        yield {"port": port, "artifacts": artifacts, "tracking": spec.tracking_address}
    finally:
        stop_group(process.pid, grace=10, reap=process.poll)
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as connection:
            connection.execute("DROP DATABASE IF EXISTS mlflow WITH (FORCE)")


def test_the_rendered_mlflow_server_answers_its_service_name_and_keeps_artifacts(
    rendered_server,
):
    from mlflow import MlflowClient

    port, service = rendered_server["port"], rendered_server["tracking"]
    search = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
    # the Host header a workload's client sends for MLFLOW_TRACKING_URI
    host = service.removeprefix("http://")
    with urllib.request.urlopen(urllib.request.Request(search, headers={"Host": host})) as r:
        assert r.status == 200
    with pytest.raises(urllib.request.HTTPError) as refused:  # MLflow's check is on
        urllib.request.urlopen(urllib.request.Request(search, headers={"Host": "evil.example"}))
    assert refused.value.code == 403

    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    run = client.create_run(client.create_experiment("k8s"))
    client.log_text(run.info.run_id, "recipe: sft\n", "recipe.yaml")
    assert [p.read_text() for p in rendered_server["artifacts"].rglob("recipe.yaml")] == [
        "recipe: sft\n"
    ]
