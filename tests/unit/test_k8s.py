"""`deploy k8s`: manifests that pass the Kubernetes schemas, follow the options, keep the
secrets in the Secret, and refuse bad input with one message."""

import base64
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from deploy.chat_templates import chat_template_path
from deploy.gateway import parse_arm
from deploy.k8s.render import render, write_manifests
from deploy.k8s.spec import DEMO_VERSIONS, K8sError, build_spec, parse_version

REPO = Path(__file__).resolve().parents[2]
# The schemas the manifests are checked against: a release current clusters run, with
# strict validation (an unknown or misspelled field fails).
KUBERNETES = "1.33.0"


def documents(files: dict[str, str]) -> list[dict]:
    return [doc for text in files.values() for doc in yaml.safe_load_all(text) if doc]


def find(files, kind, name):
    return next(d for d in documents(files) if d["kind"] == kind and d["metadata"]["name"] == name)


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture(scope="module")
def demo():
    spec = build_spec([], [], review_study="r1", autoscale_max=4)
    return spec, render(spec)


def test_the_demo_passes_the_kubernetes_schemas(demo):
    _, files = demo
    kinds = set()
    for doc in documents(files):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        kinds.add(doc["kind"])
    assert kinds == {
        "Namespace", "Secret", "PersistentVolumeClaim", "ConfigMap", "Service", "StatefulSet",
        "Deployment", "HorizontalPodAutoscaler",
    }  # fmt: skip


def test_the_schema_check_is_not_a_no_op(demo):
    deployment = find(demo[1], "Deployment", "medfactory-vllm-base")
    container(deployment)["readinesProbe"] = {"httpGet": {"path": "/health", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_demo_versions_are_what_the_demo_trains():
    recipe = yaml.safe_load((REPO / "llamafactory_configs/tiny/train_lora.yaml").read_text())
    base, lora = DEMO_VERSIONS
    assert base.model == lora.model == recipe["model_name_or_path"]
    assert lora.adapter == recipe["output_dir"] and lora.rank == recipe["lora_rank"]
    assert base.template == lora.template == recipe["template"]


def test_vllm_serves_each_version_as_serve_does(demo):
    spec, files = demo
    lora = container(find(files, "Deployment", "medfactory-vllm-lora"))
    args = lora["args"]
    assert lora["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert args[args.index("--model") + 1] == "/models/.cache/tiny-model"
    assert args[args.index("--lora-modules") + 1] == "lora=/models/saves/tiny/lora/sft"
    assert args[args.index("--max-lora-rank") + 1] == "8"
    template = args[args.index("--chat-template") + 1]
    assert template == "/etc/medfactory/chat/qwen.jinja"
    # the mounted file is the one `serve` passes vLLM, byte for byte
    configmap = find(files, "ConfigMap", "medfactory-chat-templates")
    assert configmap["data"]["qwen.jinja"] == chat_template_path("qwen").read_text()
    mounts = {m["name"]: m["mountPath"] for m in lora["volumeMounts"]}
    assert mounts == {"models": "/models", "chat-templates": "/etc/medfactory/chat",
                      "shm": "/dev/shm"}  # fmt: skip
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert lora[probe]["httpGet"]["path"] == "/health"
    assert lora["resources"]["limits"] == {"nvidia.com/gpu": 1}
    volumes = find(files, "Deployment", "medfactory-vllm-lora")["spec"]["template"]["spec"]
    claim = next(v for v in volumes["volumes"] if v["name"] == "models")
    assert claim["persistentVolumeClaim"]["claimName"] == "medfactory-models"


def test_the_gateways_arms_point_at_the_vllm_services_and_parse(demo):
    _, files = demo
    gateway = container(find(files, "Deployment", "medfactory-gateway"))
    args = gateway["args"]
    arms = [parse_arm(args[i + 1]) for i, a in enumerate(args) if a == "--arm"]
    assert [(a.name, a.endpoint, a.model) for a in arms] == [
        ("base", "http://medfactory-vllm-base:8000", "base"),
        ("lora", "http://medfactory-vllm-lora:8000", "lora"),
    ]
    services = {d["metadata"]["name"] for d in documents(files) if d["kind"] == "Service"}
    assert {"medfactory-vllm-base", "medfactory-vllm-lora", "medfactory-gateway",
            "medfactory-chat", "medfactory-review", "medfactory-postgres"} == services  # fmt: skip
    assert args[args.index("--db") + 1] == "$(MEDFACTORY_DATABASE_URL)"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in gateway["env"]}
    assert env == {"MEDFACTORY_DATABASE_URL": "database-url",
                   "MEDFACTORY_GATEWAY_API_KEY": "gateway-api-key",
                   "MEDFACTORY_API_KEY": "vllm-api-key"}  # fmt: skip


def test_replicas_and_gpu_type_change_the_manifests():
    plain = render(build_spec([], []))
    scaled = render(
        build_spec([], ["lora=3"], gpu_type="NVIDIA-H100-80GB-HBM3", tensor_parallel_size=2)
    )
    for files, lora, base in ((plain, 1, 1), (scaled, 3, 1)):
        assert find(files, "Deployment", "medfactory-vllm-lora")["spec"]["replicas"] == lora
        assert find(files, "Deployment", "medfactory-vllm-base")["spec"]["replicas"] == base
    pod = find(scaled, "Deployment", "medfactory-vllm-lora")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["containers"][0]["resources"]["requests"] == {"nvidia.com/gpu": 2}
    args = pod["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    plain_pod = find(plain, "Deployment", "medfactory-vllm-lora")["spec"]["template"]["spec"]
    assert "nodeSelector" not in plain_pod
    assert "--tensor-parallel-size" not in plain_pod["containers"][0]["args"]
    for doc in documents(scaled):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_autoscaler_reads_vllms_queue(demo):
    _, files = demo
    hpa = find(files, "HorizontalPodAutoscaler", "medfactory-vllm-lora")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "medfactory-vllm-lora"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    assert "vllm:num_requests_waiting" in files["21-autoscale-lora.yaml"]  # the adapter rule
    assert not any("autoscale" in name for name in render(build_spec([], [])))


def test_secrets_appear_only_base64_in_the_secret(tmp_path):
    spec = build_spec([], [], review_study="r1", gateway_api_key="given-gateway-key-123")
    written = write_manifests(spec, tmp_path / "k8s")
    values = [v for v in vars(spec.secrets).values() if v]
    assert len(values) == 5 and "given-gateway-key-123" in values
    secret_file = tmp_path / "k8s" / "01-secret.yaml"
    for path in written:
        text = path.read_text()
        for value in values:
            assert value not in text, (path.name, value)
            encoded = base64.b64encode(value.encode()).decode()
            assert (encoded in text) == (path == secret_file), path.name
    data = yaml.safe_load(secret_file.read_text())["data"]
    decoded = {k: base64.b64decode(v).decode() for k, v in data.items()}
    assert decoded["gateway-api-key"] == "given-gateway-key-123"
    assert decoded["postgres-password"] in decoded["database-url"]
    # every env value that is not a plain setting comes from the Secret
    for doc in documents(render(spec)):
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            for env in c.get("env", []):
                assert "valueFrom" in env or env["name"] in ("HF_HUB_OFFLINE", "POSTGRES_USER",
                                                            "POSTGRES_DB", "PGDATA")  # fmt: skip


def test_two_renders_draw_different_secrets():
    first, second = build_spec([], []), build_spec([], [])
    assert first.secrets.gateway_api_key != second.secrets.gateway_api_key
    assert first.secrets.postgres_password != second.secrets.postgres_password


def test_an_external_database_has_no_postgresql_manifests():
    url = "postgresql://med:s3cret-pw@db.hospital.internal:5432/medfactory"
    spec = build_spec([], [], database_url=url)
    files = render(spec)
    assert "10-postgres.yaml" not in files
    assert not any(d["kind"] == "StatefulSet" for d in documents(files))
    data = yaml.safe_load(files["01-secret.yaml"])["data"]
    assert base64.b64decode(data["database-url"]).decode() == url
    assert "postgres-password" not in data
    assert not any("s3cret-pw" in text for text in files.values())


def test_tracking_deploys_an_mlflow_server_on_its_own_database_with_the_secret_hidden(tmp_path):
    spec = build_spec([], [], tracking=True)
    written = write_manifests(spec, tmp_path / "k8s")
    files = {path.name: path.read_text() for path in written}
    assert "11-mlflow.yaml" in files and "11-mlflow.yaml" not in render(build_spec([], []))
    for doc in documents(files):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    server = container(find(files, "Deployment", "medfactory-mlflow"))
    assert server["command"] == ["mlflow", "server"] and "--serve-artifacts" in server["args"]
    backend = server["args"][server["args"].index("--backend-store-uri") + 1]
    assert backend == "$(MLFLOW_BACKEND_STORE_URI)"
    [env] = [e for e in server["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI"]
    assert env["valueFrom"]["secretKeyRef"]["key"] == "tracking-backend-url"
    assert server["readinessProbe"]["httpGet"]["path"] == "/health"
    url = spec.secrets.tracking_backend_url
    assert url.startswith("postgresql+psycopg://medfactory:") and url.endswith(
        "@medfactory-postgres:5432/mlflow"
    )
    assert spec.secrets.postgres_password in url
    assert not any(spec.secrets.postgres_password in text for text in files.values())
    init = find(files, "ConfigMap", "medfactory-postgres-init")
    assert init["data"]["mlflow.sql"].startswith("CREATE DATABASE mlflow")
    gateway = container(find(files, "Deployment", "medfactory-gateway"))
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://medfactory-mlflow:5000"} in (
        gateway["env"]
    )
    service = find(files, "Service", "medfactory-mlflow")
    assert service["spec"]["ports"][0]["port"] == 5000


def test_the_mlflow_server_answers_clients_that_name_its_service_and_calls_no_one():
    # MLflow's own Host check: by default it refuses a Service name with 403 while /health,
    # exempt, keeps the pod ready (tests/integration/test_k8s_mlflow_server.py runs it).
    from mlflow.server.security_utils import is_allowed_host_header

    from medfactory.tracking.ui import QUIET_SERVER

    spec = build_spec([], [], tracking=True, namespace="wards")
    files = render(spec)
    server = container(find(files, "Deployment", "medfactory-mlflow"))
    allowed = server["args"][server["args"].index("--allowed-hosts") + 1].split(",")
    gateway = container(find(files, "Deployment", "medfactory-gateway"))
    [uri] = [e["value"] for e in gateway["env"] if e["name"] == "MLFLOW_TRACKING_URI"]
    named = urlsplit(uri).netloc  # the Host header the gateway's MLflow client sends
    assert named == "medfactory-mlflow:5000"
    service = find(files, "Service", "medfactory-mlflow")["metadata"]
    for host in (named, f"{service['name']}.{service['namespace']}.svc.cluster.local:5000",
                 "medfactory-mlflow.wards:5000", "127.0.0.1:5000", "localhost:5000"):  # fmt: skip
        assert is_allowed_host_header(allowed, host), host
    for host in ("evil.example", "medfactory-mlflow.evil.example", "medfactory-mlflow.b.svc"):
        assert not is_allowed_host_header(allowed, host), host
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert {name: env.get(name) for name in QUIET_SERVER} == QUIET_SERVER


def test_an_mlflow_server_elsewhere_is_only_the_gateways_tracking_uri():
    files = render(build_spec([], [], tracking_uri="https://mlflow.hospital.internal"))
    assert (
        "11-mlflow.yaml" not in files
        and "medfactory-postgres-init" not in files["10-postgres.yaml"]
    )
    gateway = container(find(files, "Deployment", "medfactory-gateway"))
    assert {"name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.hospital.internal"} in (
        gateway["env"]
    )
    external = build_spec([], [], tracking=True, database_url="postgresql://m:pw@db:5432/med",
                          tracking_backend_url="postgresql://m:pw2@db:5432/mlflow")  # fmt: skip
    assert external.secrets.tracking_backend_url == "postgresql+psycopg://m:pw2@db:5432/mlflow"
    assert "pw2" not in "".join(render(external).values())


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tracking": True, "tracking_uri": "http://m:5000"}, "give one of them"),
        ({"tracking_backend_url": "postgresql://a@b/c"}, "goes with --tracking"),
        ({"tracking": True, "database_url": "postgresql://a:b@db/x"}, "--tracking-backend-url"),
        ({"tracking_uri": "not a url"}, "--tracking-uri"),
    ],
)
def test_tracking_options_that_do_not_fit_are_one_message(options, message):
    with pytest.raises(K8sError, match=message):
        build_spec([], [], **options)


def test_given_versions_and_an_existing_claim(tmp_path):
    spec = build_spec(
        ["med=saves/med/merged,template=deepseekr1,weight=3", "base=models/r1-distill"], [],
        models_claim="shared-models", namespace="wards",
    )  # fmt: skip
    files = render(spec)
    assert "02-models-volume.yaml" not in files and "41-review.yaml" not in files
    med = container(find(files, "Deployment", "medfactory-vllm-med"))["args"]
    assert med[med.index("--reasoning-parser") + 1] == "deepseek_r1"
    assert "/etc/medfactory/chat/deepseekr1.jinja" in med
    assert {d["metadata"].get("namespace") for d in documents(files)} == {"wards", None}
    gateway = container(find(files, "Deployment", "medfactory-gateway"))["args"]
    assert "med=http://medfactory-vllm-med:8000,model=med,weight=3" in gateway


@pytest.mark.parametrize(
    "versions, replicas, options, message",
    [
        (["Lora=m"], [], {}, "the name must be lower-case"),
        (["lora"], [], {}, "expected NAME=MODEL"),
        (["a=/abs/model"], [], {}, "must be a path relative to the models volume"),
        (["a=../up"], [], {}, "must be a path relative"),
        (["a=m,template=nope"], [], {}, "no serving chat template for LLaMA-Factory template"),
        (["a=m,adapter=not/here"], [], {}, "cannot read the LoRA rank .* add rank=R"),
        (["a=m,rank=8"], [], {}, "rank=R goes with adapter=PATH"),
        (["a=m,size=2"], [], {}, "'size=2' is not one of adapter="),
        (["a=m,weight=0"], [], {}, "weight must be a positive number"),
        (["a=m", "a=n"], [], {}, "each name once"),
        ([], ["gpu=2"], {}, r"NAME one of the versions \(base, lora\)"),
        ([], ["lora=0"], {}, "N must be a whole number from 1"),
        ([], [], {"namespace": "Wards"}, "--namespace 'Wards'"),
        ([], [], {"gpu_type": "H100 80GB"}, "--gpu-type 'H100 80GB'"),
        ([], [], {"models_size": "lots"}, "--models-size 'lots'"),
        ([], [], {"database_url": "sqlite:///x.db"}, "--database-url: expected postgresql://"),
        ([], [], {"image": "my image"}, "--image 'my image'"),
    ],
)
def test_bad_input_is_one_clear_error(versions, replicas, options, message):
    with pytest.raises(K8sError, match=message):
        build_spec(versions, replicas, **options)


def test_an_adapter_here_gives_its_rank(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text('{"r": 12}')
    assert parse_version("v=base,adapter=lora").rank == 16  # the next rank vLLM takes


def test_out_must_be_new_or_empty_and_force_replaces_only_yaml(tmp_path):
    out = tmp_path / "k8s"
    write_manifests(build_spec([], ["lora=2"]), out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(K8sError, match="not empty; .* --force"):
        write_manifests(build_spec([], []), out)
    write_manifests(build_spec(["solo=m"], []), out, force=True)
    assert "notes.txt" in {p.name for p in out.iterdir()}
    assert not (out / "20-vllm-lora.yaml").exists() and (out / "20-vllm-solo.yaml").exists()


def test_the_help_example_writes_what_it_says_and_how_to_apply(tmp_path, monkeypatch):
    from medfactory.cli import cli

    example = cli.commands["deploy"].commands["k8s"].example  # as `--help` shows it
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, shlex.split(example)[1:])
    assert result.exit_code == 0, result.output
    out = tmp_path / "k8s"
    assert "kubectl apply -f k8s\n" in result.output and (out / "11-mlflow.yaml").is_file()
    vllm = find(
        {"v": (out / "20-vllm-lora.yaml").read_text()}, "Deployment", "medfactory-vllm-lora"
    )
    selector = vllm["spec"]["template"]["spec"]["nodeSelector"]
    assert selector["nvidia.com/gpu.product"] == "NVIDIA-L40S"
    secret = yaml.safe_load((out / "01-secret.yaml").read_text())["data"]
    for value in secret.values():  # nothing secret is printed
        assert base64.b64decode(value).decode() not in result.output
    lora = yaml.safe_load_all((out / "20-vllm-lora.yaml").read_text())
    assert [d for d in lora if d["kind"] == "Deployment"][0]["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--replicas", "lora=x"], "--replicas 'lora=x': N must be a whole number"),
        (["--version", "Bad=m"], "the name must be lower-case"),
        (["--tensor-parallel-size", "0"], "Invalid value for '--tensor-parallel-size'"),
    ],
)
def test_the_command_shows_one_message(tmp_path, args, message):
    from medfactory.cli import cli

    result = CliRunner().invoke(cli, ["deploy", "k8s", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
