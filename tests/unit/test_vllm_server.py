import socket
import sys

import pytest

from deploy.vllm_server import ServerSpec, ServerStartError, VllmServer, vllm_argv, vllm_env


def spec(tmp_path, **kw):
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return ServerSpec(
        python=kw.pop("python", sys.executable), model=model, port=kw.pop("port", 0), **kw
    )


def test_argv_is_a_list_binding_loopback_by_default(tmp_path):
    s = spec(tmp_path, port=8123, served_model_name="tiny", max_model_len=1024)
    argv = vllm_argv(s)
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--model") + 1] == str(s.model)
    assert argv[argv.index("--served-model-name") + 1] == "tiny"
    assert argv[argv.index("--max-model-len") + 1] == "1024"


def test_cpu_kv_cache_is_small_unless_the_user_set_it(tmp_path):
    s = spec(tmp_path)
    assert vllm_env(s, base={})["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert vllm_env(s, base={"VLLM_CPU_KVCACHE_SPACE": "8"})["VLLM_CPU_KVCACHE_SPACE"] == "8"


def test_port_in_use_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = VllmServer(spec(tmp_path, port=port), tmp_path / "vllm.log")
        with pytest.raises(ServerStartError, match=f"port {port} .* already in use.*--port"):
            server.start(timeout=5)
    assert server.process is None


def test_missing_model_files_are_named(tmp_path):
    s = ServerSpec(python=sys.executable, model=tmp_path / "nowhere", port=1)
    with pytest.raises(ServerStartError, match="nowhere: not a model directory"):
        VllmServer(s, tmp_path / "vllm.log").start(timeout=5)


def test_exit_during_start_up_shows_the_log_tail_and_leaves_nothing(tmp_path):
    # This interpreter has no vLLM, so the server process dies at once: the
    # same path a broken model or a bad flag takes.
    from deploy.vllm_server import free_port

    server = VllmServer(spec(tmp_path, port=free_port()), tmp_path / "vllm.log")
    with pytest.raises(ServerStartError) as error:
        server.start(timeout=60)
    message = str(error.value)
    assert "exited with code 1 during start-up" in message
    assert "No module named 'vllm'" in message
    assert str(tmp_path / "vllm.log") in message
    assert server.process is None
