"""Render the manifests from templates/k8s/ and write them into a folder.

Plain YAML rather than a Helm chart: the output is what `kubectl apply -f DIR` reads
and what a platform team reviews line by line or hands to Kustomize or Argo CD, with no
templating language and no Helm release to run on the cluster; the options that would
be a chart's values are this command's.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path, PurePosixPath

import jinja2

from deploy.chat_templates import chat_template_path, reasoning_parser
from deploy.k8s.spec import (
    MLFLOW_PORT,
    MLFLOW_SERVICE,
    POSTGRES_IMAGE,
    ClusterSpec,
    K8sError,
    Version,
)
from deploy.server import ServerSpec, server_argv

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "k8s"
MODELS_MOUNT = PurePosixPath("/models")
CHAT_MOUNT = PurePosixPath("/etc/medfactory/chat")
VLLM_PORT, GATEWAY_PORT, CHAT_PORT, REVIEW_PORT = 8000, 8100, 7870, 8300
SECRET = "medfactory-secrets"
# The MLflow server calls no one outside (medfactory.tracking.ui.QUIET_SERVER, kept equal
# by a test; deploy does not import medfactory).
MLFLOW_QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def mlflow_allowed_hosts(namespace: str) -> str:
    """`mlflow server --allowed-hosts`: the Host headers it answers. Its default (localhost
    and private IPs) refuses clients that reach it by the Service's name; these are that
    name in each form cluster DNS resolves, with or without the port, and localhost for
    `kubectl port-forward`."""
    names = [MLFLOW_SERVICE, f"{MLFLOW_SERVICE}.{namespace}", f"{MLFLOW_SERVICE}.{namespace}.svc"]
    hosts = [host for name in names for host in (name, f"{name}:*")]
    hosts.append(f"{MLFLOW_SERVICE}.{namespace}.svc.*")  # the cluster's domain, any port
    return ",".join([*hosts, "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"])


def vllm_argv(spec: ClusterSpec, version: Version) -> list[str]:
    """The same command line `medfactory serve` builds, with the cluster's paths: the
    model and adapter on the models volume, the chat template from its ConfigMap."""
    adapters = ((version.name, MODELS_MOUNT / version.adapter),) if version.adapter else ()
    server = ServerSpec(
        python=Path("python3"), model=MODELS_MOUNT / version.model, port=VLLM_PORT,
        host="0.0.0.0",  # inside the pod; the Service decides who reaches it
        served_model_name=f"{version.name}-base" if adapters else version.name,
        max_model_len=spec.max_model_len,
        chat_template=CHAT_MOUNT / f"{version.template}.jinja",
        reasoning_parser=reasoning_parser(version.template), adapters=adapters,
        max_lora_rank=version.rank,
        tensor_parallel_size=spec.tensor_parallel_size if spec.tensor_parallel_size > 1 else None,
        pipeline_parallel_size=(
            spec.pipeline_parallel_size if spec.pipeline_parallel_size > 1 else None
        ),
    )  # fmt: skip
    return server_argv(server)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Every value goes in as JSON, which YAML reads as the same string, list or number:
    # no name or path can break the YAML around it.
    env.filters["q"] = lambda value: json.dumps(value, ensure_ascii=False)
    env.filters["b64"] = _b64
    return env


def render(spec: ClusterSpec) -> dict[str, str]:
    """File name -> manifest text, in the order `kubectl apply -f DIR` applies them."""
    env = _environment()
    base = {
        "spec": spec, "namespace": spec.namespace, "secret": SECRET,
        "vllm_port": VLLM_PORT, "gateway_port": GATEWAY_PORT, "chat_port": CHAT_PORT,
        "review_port": REVIEW_PORT, "postgres_image": POSTGRES_IMAGE,
        "models_claim": spec.models_claim or "medfactory-models", "mlflow_port": MLFLOW_PORT,
        "mlflow_service": MLFLOW_SERVICE,
    }  # fmt: skip
    files = {
        "00-namespace.yaml": env.get_template("namespace.yaml.j2").render(base),
        "01-secret.yaml": env.get_template("secret.yaml.j2").render(
            base, secrets={k: v for k, v in asdict(spec.secrets).items() if v is not None}
        ),
    }
    if not spec.models_claim:
        files["02-models-volume.yaml"] = env.get_template("models-pvc.yaml.j2").render(base)
    templates = sorted({v.template for v in spec.versions})
    files["03-chat-templates.yaml"] = env.get_template("chat-templates.yaml.j2").render(
        base, templates={t: chat_template_path(t).read_text(encoding="utf-8") for t in templates}
    )
    if not spec.external_database:
        files["10-postgres.yaml"] = env.get_template("postgres.yaml.j2").render(base)
    if spec.tracking:
        files["11-mlflow.yaml"] = env.get_template("mlflow.yaml.j2").render(
            base, allowed_hosts=mlflow_allowed_hosts(spec.namespace), quiet_env=MLFLOW_QUIET_ENV
        )
    for version in spec.versions:
        argv = vllm_argv(spec, version)
        files[f"20-vllm-{version.name}.yaml"] = env.get_template("vllm.yaml.j2").render(
            base, version=version, command=argv[:3], args=argv[3:],
            replicas=spec.replicas[version.name], chat_mount=str(CHAT_MOUNT),
            models_mount=str(MODELS_MOUNT),
        )  # fmt: skip
        if spec.autoscale_max:
            files[f"21-autoscale-{version.name}.yaml"] = env.get_template("hpa.yaml.j2").render(
                base, version=version, replicas=spec.replicas[version.name]
            )
    arms = [
        f"{v.name}=http://medfactory-vllm-{v.name}:{VLLM_PORT},model={v.name},weight={v.weight:g}"
        for v in spec.versions
    ]
    gateway_args = [a for arm in arms for a in ("--arm", arm)]
    files["30-gateway.yaml"] = env.get_template("gateway.yaml.j2").render(
        base, args=gateway_args, health=[
            f"http://medfactory-vllm-{v.name}:{VLLM_PORT}/health" for v in spec.versions
        ],
    )  # fmt: skip
    files["40-chat.yaml"] = env.get_template("chat.yaml.j2").render(base)
    if spec.review_study:
        files["41-review.yaml"] = env.get_template("review.yaml.j2").render(base)
    return dict(sorted(files.items()))


def write_manifests(spec: ClusterSpec, out: Path, force: bool = False) -> list[Path]:
    """Write the manifests into `out`, which must be new or empty; --force replaces the
    YAML files in it (and only those), so a removed version leaves no stale file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise K8sError(f"--out {out}: a file is there; pass a folder")
    present = sorted(out.iterdir()) if out.is_dir() else []
    if present and not force:
        raise K8sError(
            f"--out {out}: not empty; pass a new folder, or --force to replace the YAML files in it"
        )
    files = render(spec)  # everything rendered before anything is removed or written
    out.mkdir(parents=True, exist_ok=True)
    for old in present:
        if old.suffix in (".yaml", ".yml") and old.is_file():
            old.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
