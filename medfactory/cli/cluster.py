"""`medfactory deploy`: the loop on a cluster."""

from __future__ import annotations

from pathlib import Path

import click

from deploy.k8s.spec import VLLM_IMAGE, K8sError
from medfactory.cli.common import ExampleGroup, with_example

# The errors a user can fix that these commands raise; shown without a traceback.
ERRORS: tuple[type[Exception], ...] = (K8sError,)
POSITIVE = click.IntRange(min=1)


@click.group(cls=ExampleGroup)
def deploy() -> None:
    """Run the loop past one machine."""


@with_example(
    "medfactory deploy k8s --out k8s/ --replicas lora=3 --gpu-type NVIDIA-L40S --tracking"
)
@deploy.command()
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="A new or empty folder for the manifests.")  # fmt: skip
@click.option(
    "--version", "versions", multiple=True,
    metavar="NAME=MODEL[,adapter=PATH][,rank=R][,template=T][,weight=W]",
    help="A version to serve (repeatable): MODEL and PATH relative to the models volume; "
    "rank: the adapter's LoRA rank when its folder is not here; template: the training "
    "template [default: qwen]; weight: its share of users. [default: the demo's base and lora]",
)  # fmt: skip
@click.option("--replicas", multiple=True, metavar="NAME=N",
              help="vLLM replicas of a version (repeatable) [default: 1 each].")  # fmt: skip
@click.option("--gpu-type", metavar="PRODUCT",
              help="Only nodes whose nvidia.com/gpu.product label is this, e.g. "
              "NVIDIA-H100-80GB-HBM3.")  # fmt: skip
@click.option("--tensor-parallel-size", default=1, show_default=True, type=POSITIVE,
              help="GPUs a layer is split over, per replica.")  # fmt: skip
@click.option("--pipeline-parallel-size", default=1, show_default=True, type=POSITIVE,
              help="Stages the layers are split into, per replica (GPUs: tp x pp).")  # fmt: skip
@click.option("--max-model-len", type=POSITIVE, help="vLLM's --max-model-len.")
@click.option("--namespace", default="medfactory", show_default=True)
@click.option("--image", default="medfactory:latest", show_default=True,
              help="An image with medfactory installed (gateway, chat, review).")  # fmt: skip
@click.option("--vllm-image", default=VLLM_IMAGE, show_default=True)
@click.option("--models-claim", metavar="PVC",
              help="An existing PersistentVolumeClaim holding the models [default: render "
              "one].")  # fmt: skip
@click.option("--models-size", default="200Gi", show_default=True,
              help="Size of the rendered models volume.")  # fmt: skip
@click.option("--storage-class", help="StorageClass of the rendered volumes.")
@click.option("--database-url", envvar="MEDFACTORY_DATABASE_URL", metavar="URL",
              help="An external PostgreSQL (postgresql://USER:PASSWORD@HOST/DB); it goes into "
              "the Secret [default: a PostgreSQL StatefulSet in the namespace].")  # fmt: skip
@click.option("--gateway-api-key", help="The gateway's key [default: random, in the Secret].")
@click.option("--chat-access-code", help="The chat page's code [default: random, in the Secret].")
@click.option("--review-study", metavar="NAME",
              help="Also deploy the review page for this study.")  # fmt: skip
@click.option("--experiment", default="ab", show_default=True, help="The gateway's experiment.")
@click.option("--autoscale", "autoscale_max", type=POSITIVE, metavar="MAX",
              help="A HorizontalPodAutoscaler per version, up to MAX replicas, on vLLM's "
              "queue (needs prometheus-adapter).")  # fmt: skip
@click.option("--queue-target", default=5, show_default=True, type=POSITIVE,
              help="--autoscale: waiting requests per replica to scale at.")  # fmt: skip
@click.option("--tracking", is_flag=True,
              help="Also deploy an MLflow tracking server (its own database on the store's "
              "PostgreSQL, artifacts on a volume it serves).")  # fmt: skip
@click.option(
    "--tracking-uri",
    metavar="URL",
    help="Instead: an MLflow server outside the namespace, for MLFLOW_TRACKING_URI.",
)
@click.option("--tracking-backend-url", metavar="URL",
              help="--tracking with --database-url: MLflow's own PostgreSQL database; it goes "
              "into the Secret.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace the YAML files already in --out.")
def k8s(out, versions, replicas, force, **options) -> None:
    """Render Kubernetes manifests for the loop: vLLM per version, gateway, pages, store.

    Plain YAML for `kubectl apply -f OUT`: a Deployment and Service per version (GPUs,
    the models volume, the chat template `serve` uses, /health probes), the gateway
    with an arm per version, the chat page, the review page, PostgreSQL (or
    --database-url), the MLflow server with --tracking, and one Secret with the keys
    and the database URLs, drawn at random where not given. Copy the model folders
    onto the models volume at the paths given in --version, then:

    \b
        medfactory deploy k8s --out k8s/ --force --tensor-parallel-size 2 --review-study r1 \\
            --version med=saves/med/lora/merged --version base=models/Qwen2.5-7B-Instruct
        kubectl apply -f k8s/
    """
    from deploy.k8s.render import write_manifests
    from deploy.k8s.spec import build_spec

    spec = build_spec(list(versions), list(replicas), **options)
    written = write_manifests(spec, out, force)
    click.echo(f"wrote {len(written)} manifests to {out}:")
    click.echo("\n".join(f"  {path.name}" for path in written))
    click.echo(f"apply them with: kubectl apply -f {out}")
    click.echo(
        f"the chat page's access code: kubectl -n {spec.namespace} get secret "
        "medfactory-secrets -o jsonpath='{.data.chat-access-code}' | base64 -d"
    )
