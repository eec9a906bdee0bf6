"""What to deploy: the versions, their replicas, the GPUs, the store and the secrets.

Every input mistake is a K8sError naming the option and what to write instead. Secrets
not given are drawn here at random; they leave this module only for the Secret.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deploy.chat_templates import TemplateError, chat_template_path
from deploy.server import VLLM_LORA_RANKS
from deploy.urls import URLError, parse_url

# A version's name becomes part of Kubernetes object names (DNS-1123 labels, 63 at most,
# "medfactory-vllm-" in front) and the gateway's arm.
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
VERSION_FORM = "NAME=MODEL[,adapter=PATH][,rank=R][,template=T][,weight=W]"
VERSION_KEYS = ("adapter", "rank", "template", "weight")
VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"  # the GPU build pyproject.toml pins (serve-gpu)
POSTGRES_IMAGE = "postgres:17"
MLFLOW_PORT = 5000
MLFLOW_SERVICE = "medfactory-mlflow"  # the tracking server's Service, as clients name it


class K8sError(ValueError):
    """A `deploy k8s` input the user can fix; the message names the option."""


@dataclass(frozen=True)
class Version:
    """One served version: a model folder on the models volume, maybe a LoRA adapter."""

    name: str
    model: str  # relative to the models volume's root
    template: str = "qwen"
    adapter: str | None = None
    rank: int | None = None  # the adapter's LoRA rank, as vLLM's --max-lora-rank takes it
    weight: float = 1.0


# `make demo` trains a LoRA adapter on the tiny model (llamafactory_configs/tiny/
# train_lora.yaml: model, output_dir, lora_rank, template); `make abtest` compares the
# two. A test keeps these in step with that recipe.
DEMO_VERSIONS = (
    Version("base", ".cache/tiny-model"),
    Version("lora", ".cache/tiny-model", adapter="saves/tiny/lora/sft", rank=8),
)


@dataclass(frozen=True)
class Secrets:
    gateway_api_key: str
    vllm_api_key: str
    chat_access_code: str
    database_url: str
    postgres_password: str | None  # None with an external database
    tracking_backend_url: str | None = None  # the in-cluster MLflow server's store


@dataclass(frozen=True)
class ClusterSpec:
    versions: tuple[Version, ...]
    replicas: dict[str, int]
    secrets: Secrets
    namespace: str = "medfactory"
    gpu_type: str | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_model_len: int | None = None
    image: str = "medfactory:latest"
    vllm_image: str = VLLM_IMAGE
    models_claim: str | None = None  # an existing PersistentVolumeClaim; else one is rendered
    models_size: str = "200Gi"
    storage_class: str | None = None
    external_database: bool = False
    review_study: str | None = None
    experiment: str = "ab"
    autoscale_max: int | None = None
    queue_target: int = 5
    tracking: bool = False  # an MLflow tracking server in the namespace
    tracking_uri: str | None = None  # or one outside it

    @property
    def tracking_address(self) -> str | None:
        """What MLFLOW_TRACKING_URI the workloads get."""
        if self.tracking:
            return f"http://{MLFLOW_SERVICE}:{MLFLOW_PORT}"
        return self.tracking_uri

    @property
    def gpus_per_replica(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size


def _volume_path(option: str, text: str) -> str:
    """A path inside the models volume: relative, no `..`, as a POSIX path."""
    path = PurePosixPath(text.strip())
    if not text.strip() or path.is_absolute() or ".." in path.parts:
        raise K8sError(
            f"{option}: {text!r} must be a path relative to the models volume's root "
            "(e.g. saves/med/lora/merged), the same path you copy the folder to"
        )
    return str(path)


def _adapter_rank(option: str, adapter: str, given: str | None) -> int:
    """The rank given as rank=R, else read from the adapter's local copy."""
    if given is not None:
        if not given.isdigit() or int(given) < 1:
            raise K8sError(f"{option}: rank must be a whole number from 1, got {given!r}")
        rank = int(given)
    else:
        config = Path(adapter) / "adapter_config.json"
        try:
            rank = int(json.loads(config.read_text())["r"])
        except (OSError, ValueError, KeyError):
            raise K8sError(
                f"{option}: cannot read the LoRA rank from {config} on this machine; "
                "add rank=R (the recipe's lora_rank)"
            ) from None
    # vLLM's --max-lora-rank takes only some ranks: the smallest that holds this one
    return next((r for r in VLLM_LORA_RANKS if r >= rank), rank)


def parse_version(text: str) -> Version:
    """`NAME=MODEL[,adapter=PATH][,rank=R][,template=T][,weight=W]` -> Version."""
    option = f"--version {text!r}"
    name, sep, rest = text.partition("=")
    parts = rest.split(",")
    if not sep or not parts[0].strip():
        example = "lora=.cache/tiny-model,adapter=saves/tiny/lora/sft"
        raise K8sError(f"{option}: expected {VERSION_FORM}, e.g. {example}")
    name = name.strip()
    if not NAME.match(name):
        raise K8sError(
            f"{option}: the name must be lower-case letters, digits and '-', start with a "
            "letter and be at most 40 long (it names Kubernetes objects)"
        )
    keys: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in VERSION_KEYS or key.strip() in keys:
            known = ", ".join(k + "=" for k in VERSION_KEYS)
            raise K8sError(f"{option}: {part!r} is not one of {known} (each at most once)")
        keys[key.strip()] = value.strip()
    template = keys.get("template", "qwen")
    try:
        chat_template_path(template)
    except TemplateError as error:
        raise K8sError(f"{option}: {error}") from None
    adapter = _volume_path(option, keys["adapter"]) if "adapter" in keys else None
    if "rank" in keys and not adapter:
        raise K8sError(f"{option}: rank=R goes with adapter=PATH")
    try:
        weight = float(keys.get("weight", "1"))
    except ValueError:
        weight = -1.0
    if not 0 < weight < float("inf"):
        raise K8sError(f"{option}: weight must be a positive number")
    return Version(
        name=name, model=_volume_path(option, parts[0]), template=template, adapter=adapter,
        rank=_adapter_rank(option, adapter, keys.get("rank")) if adapter else None,
        weight=weight,
    )  # fmt: skip


def parse_replicas(values: list[str], versions: tuple[Version, ...]) -> dict[str, int]:
    """`--replicas NAME=N` (repeatable) -> replicas per version, 1 where not given."""
    names = [v.name for v in versions]
    replicas = dict.fromkeys(names, 1)
    for text in values:
        name, sep, count = text.partition("=")
        if not sep or name.strip() not in replicas:
            raise K8sError(
                f"--replicas {text!r}: expected NAME=N with NAME one of the versions "
                f"({', '.join(names)})"
            )
        if not count.strip().isdigit() or int(count) < 1:
            raise K8sError(f"--replicas {text!r}: N must be a whole number from 1")
        replicas[name.strip()] = int(count)
    return replicas


def check_versions(versions: tuple[Version, ...]) -> tuple[Version, ...]:
    names = [v.name for v in versions]
    if len(set(names)) < len(names):
        raise K8sError(f"--version: each name once (got {', '.join(names)})")
    return versions


def check_database_url(url: str, option: str = "--database-url") -> str:
    """An external store's SQLAlchemy URL: PostgreSQL, with a host the pods can reach."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("postgresql"):
        what = (
            "the MLflow server's own database" if option != "--database-url"
            else "the store the gateway and the review page share"
        )  # fmt: skip
        raise K8sError(f"{option}: expected postgresql://USER:PASSWORD@HOST:5432/DB ({what})")
    host = rest.rpartition("@")[2].partition("/")[0]
    try:
        parse_url(f"http://{host}")
    except URLError as error:
        raise K8sError(f"{option}: the host part is not usable ({error})") from None
    if option != "--database-url" and scheme == "postgresql":  # psycopg 3 is the driver
        url = "postgresql+psycopg" + url[len(scheme) :]
    return url


def check_tracking(
    tracking: bool, tracking_uri: str | None, backend_url: str | None, database_url: str | None
) -> None:
    """An MLflow server here (--tracking) or one elsewhere (--tracking-uri), not both."""
    if tracking and tracking_uri:
        raise K8sError("--tracking runs an MLflow server here; --tracking-uri names one "
                       "elsewhere: give one of them")  # fmt: skip
    if backend_url and not tracking:
        raise K8sError("--tracking-backend-url goes with --tracking")
    if tracking and database_url and not backend_url:
        raise K8sError(
            "--tracking with --database-url: give --tracking-backend-url "
            "postgresql://USER:PASSWORD@HOST/mlflow, a database of its own for MLflow"
        )
    if tracking_uri:
        try:
            parse_url(tracking_uri)
        except URLError as error:
            raise K8sError(f"--tracking-uri: {error}") from None


def check_cluster_options(
    namespace: str, gpu_type: str | None, models_size: str, review_study: str | None
) -> None:
    if not NAMESPACE.match(namespace):
        raise K8sError(
            f"--namespace {namespace!r}: lower-case letters, digits and '-', at most 63 long"
        )
    if gpu_type is not None and (not gpu_type or not LABEL_VALUE.match(gpu_type)):
        raise K8sError(
            f"--gpu-type {gpu_type!r}: the value of the node label nvidia.com/gpu.product, "
            "e.g. NVIDIA-H100-80GB-HBM3 (letters, digits, '-', '_' and '.')"
        )
    if not QUANTITY.match(models_size):
        raise K8sError(f"--models-size {models_size!r}: a Kubernetes quantity, e.g. 200Gi")
    if review_study is not None and not re.match(r"^[A-Za-z0-9][-A-Za-z0-9_.]*$", review_study):
        raise K8sError(f"--review-study {review_study!r}: a study name as `review create` made")


def make_secrets(
    database_url: str | None, gateway_api_key: str | None, chat_access_code: str | None,
    tracking_backend_url: str | None = None, tracking: bool = False,
) -> Secrets:  # fmt: skip
    """The given values, and fresh random ones for the rest (the in-cluster PostgreSQL's
    password, in the URL the gateway and the review page use, and in the MLflow server's,
    a database of its own on the same PostgreSQL)."""
    password = None if database_url else secrets.token_urlsafe(24)
    if tracking and not tracking_backend_url and password:
        # MLflow reads PostgreSQL through SQLAlchemy with psycopg 3 (installed in the image)
        tracking_backend_url = (
            f"postgresql+psycopg://medfactory:{password}@medfactory-postgres:5432/mlflow"
        )
    return Secrets(
        tracking_backend_url=tracking_backend_url if tracking else None,
        gateway_api_key=gateway_api_key or secrets.token_urlsafe(32),
        vllm_api_key=secrets.token_urlsafe(32),
        chat_access_code=chat_access_code or secrets.token_urlsafe(12),
        database_url=database_url
        or f"postgresql://medfactory:{password}@medfactory-postgres:5432/medfactory",
        postgres_password=password,
    )


def build_spec(
    versions: list[str], replicas: list[str], *, namespace: str = "medfactory",
    gpu_type: str | None = None, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
    max_model_len: int | None = None, image: str = "medfactory:latest",
    vllm_image: str = VLLM_IMAGE, models_claim: str | None = None, models_size: str = "200Gi",
    storage_class: str | None = None, database_url: str | None = None,
    gateway_api_key: str | None = None, chat_access_code: str | None = None,
    review_study: str | None = None, experiment: str = "ab", autoscale_max: int | None = None,
    queue_target: int = 5, tracking: bool = False, tracking_uri: str | None = None,
    tracking_backend_url: str | None = None,
) -> ClusterSpec:  # fmt: skip
    """The `deploy k8s` options, checked, with the demo's two versions when none is given."""
    parsed = check_versions(tuple(parse_version(v) for v in versions) or DEMO_VERSIONS)
    check_cluster_options(namespace, gpu_type, models_size, review_study)
    for option, value in (("--tensor-parallel-size", tensor_parallel_size),
                          ("--pipeline-parallel-size", pipeline_parallel_size),
                          ("--max-model-len", max_model_len or 1), ("--queue-target", queue_target),
                          ("--autoscale", autoscale_max or 1)):  # fmt: skip
        if value < 1:
            raise K8sError(f"{option} must be a whole number from 1, got {value}")
    for option, value in (("--image", image), ("--vllm-image", vllm_image),
                          ("--models-claim", models_claim), ("--storage-class", storage_class),
                          ("--experiment", experiment)):  # fmt: skip
        if value is not None and (not value.strip() or any(c.isspace() for c in value)):
            raise K8sError(f"{option} {value!r}: a name without spaces")
    check_tracking(tracking, tracking_uri, tracking_backend_url, database_url)
    return ClusterSpec(
        versions=parsed, replicas=parse_replicas(replicas, parsed),
        secrets=make_secrets(
            check_database_url(database_url) if database_url else None, gateway_api_key,
            chat_access_code,
            check_database_url(tracking_backend_url, "--tracking-backend-url")
            if tracking_backend_url else None,
            tracking,
        ),  # fmt: skip
        namespace=namespace, gpu_type=gpu_type, tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size, max_model_len=max_model_len, image=image,
        vllm_image=vllm_image, models_claim=models_claim, models_size=models_size,
        storage_class=storage_class, external_database=database_url is not None,
        review_study=review_study, experiment=experiment, autoscale_max=autoscale_max,
        queue_target=queue_target, tracking=tracking, tracking_uri=tracking_uri,
    )  # fmt: skip
