import json
import socket
import sys
from pathlib import Path

import pytest

from deploy.process import ServerStartError
from deploy.server import Server, ServerSpec, parse_adapters, server_argv, server_env


def spec(tmp_path, **kw):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return ServerSpec(
        python=kw.pop("python", sys.executable), model=model, port=kw.pop("port", 0), **kw
    )


def test_argv_is_a_list_binding_loopback_by_default(tmp_path):
    s = spec(tmp_path, port=8123, served_model_name="tiny", max_model_len=1024)
    argv = server_argv(s)
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--model") + 1] == str(s.model)
    assert argv[argv.index("--served-model-name") + 1] == "tiny"
    assert argv[argv.index("--max-model-len") + 1] == "1024"


def test_cpu_kv_cache_is_small_unless_the_user_set_it(tmp_path):
    s = spec(tmp_path)
    assert server_env(s, base={})["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert server_env(s, base={"VLLM_CPU_KVCACHE_SPACE": "8"})["VLLM_CPU_KVCACHE_SPACE"] == "8"


def test_port_in_use_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = Server(spec(tmp_path, port=port), tmp_path / "vllm.log")
        with pytest.raises(ServerStartError, match=f"port {port} .* already in use.*--port"):
            server.start(timeout=5)
    assert server.process is None


def test_missing_model_files_are_named(tmp_path):
    s = ServerSpec(python=sys.executable, model=tmp_path / "nowhere", port=1)
    with pytest.raises(ServerStartError, match="nowhere: not a model directory"):
        Server(s, tmp_path / "vllm.log").start(timeout=5)


def test_exit_during_start_up_shows_the_log_tail_and_leaves_nothing(tmp_path):
    # This interpreter has no vLLM, so the server process dies at once: the
    # same path a broken model or a bad flag takes.
    from deploy.process import free_port

    server = Server(spec(tmp_path, port=free_port()), tmp_path / "vllm.log")
    with pytest.raises(ServerStartError) as error:
        server.start(timeout=60)
    message = str(error.value)
    assert "exited with code 1 during start-up" in message
    assert "No module named 'vllm'" in message
    assert str(tmp_path / "vllm.log") in message
    assert server.process is None


def test_vllm_gets_the_chat_template_reasoning_parser_key_and_lora(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 12}')
    adapter2 = tmp_path / "adapter2"
    adapter2.mkdir()
    (adapter2 / "adapter_config.json").write_text('{"r": 40}')
    s = spec(
        tmp_path, chat_template=tmp_path / "t.jinja", reasoning_parser="deepseek_r1",
        enable_thinking=False, adapters=parse_adapters([str(adapter), f"v2={adapter2}"], "med"),
        api_key="k", served_model_name="med",
        gpu_memory_utilization=0.8, tensor_parallel_size=2,
    )  # fmt: skip
    argv = server_argv(s)
    assert argv[argv.index("--chat-template") + 1] == str(tmp_path / "t.jinja")
    assert argv[argv.index("--reasoning-parser") + 1] == "deepseek_r1"
    assert json.loads(argv[argv.index("--default-chat-template-kwargs") + 1]) == {
        "enable_thinking": False
    }
    modules = argv.index("--lora-modules")
    assert argv[modules + 1 : modules + 3] == [f"med-lora={adapter}", f"v2={adapter2}"]
    assert "--enable-lora" in argv
    assert argv[argv.index("--max-lora-rank") + 1] == "64"  # the next rank vLLM accepts
    assert argv[argv.index("--max-loras") + 1] == "2"  # both versions in one batch
    assert argv[argv.index("--api-key") + 1] == "k"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.8"
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"


def test_an_adapter_without_its_config_is_named(tmp_path):
    with pytest.raises(ServerStartError, match="adapter_config.json: cannot read the LoRA rank"):
        server_argv(spec(tmp_path, adapters=(("a", tmp_path),)))


def test_adapter_names_must_differ_and_llamafactory_serves_one(tmp_path):
    with pytest.raises(ServerStartError, match="served names must differ"):
        parse_adapters(["v1=a", "v1=b"], "med")
    with pytest.raises(ServerStartError, match="served names must differ"):
        parse_adapters(["med=a"], "med")
    assert parse_adapters(["saves/x=1/lora"], "med") == (("med-lora", Path("saves/x=1/lora")),)
    two = spec(tmp_path, backend="llamafactory", adapters=(("a", tmp_path), ("b", tmp_path)))
    with pytest.raises(ServerStartError, match="serves one adapter"):
        server_argv(two)


def test_llamafactory_backend_runs_its_api_with_env_settings(tmp_path):
    s = spec(
        tmp_path, backend="llamafactory", python="/x/llamafactory-cli", template="qwen",
        port=8100, api_key="k", served_model_name="med",
    )  # fmt: skip
    argv = server_argv(s)
    assert argv[:2] == ["/x/llamafactory-cli", "api"]
    assert argv[argv.index("--template") + 1] == "qwen"
    env = server_env(s, base={})
    assert env["API_HOST"] == "127.0.0.1" and env["API_PORT"] == "8100"
    assert env["API_KEY"] == "k" and env["API_MODEL_NAME"] == "med"


def test_eager_only_when_asked(tmp_path):
    assert "--enforce-eager" not in server_argv(spec(tmp_path))
    assert server_argv(spec(tmp_path, enforce_eager=True))[-1] == "--enforce-eager"
