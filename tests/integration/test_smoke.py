"""Both environments, for real: LLaMA-Factory LoRA training and a vLLM answer."""

import os
import time

import pytest
from safetensors import safe_open

from deploy.process import free_port, port_in_use
from deploy.server import Server, ServerSpec
from medfactory import paths
from medfactory.dev.smoke import SMOKE_DATASET, run_smoke


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_lora_training_then_vllm_answers_and_nothing_is_left_running(tiny_model, tmp_path):
    # Its own server: the smoke run starts and stops one, and that is what it proves.
    lines = []
    result = run_smoke(tmp_path, tiny_model, steps=3, say=lines.append)

    # Training: llamafactory-cli logged three finite losses and wrote a LoRA
    # adapter whose B matrices (zero at initialisation) were updated.
    assert len(result.losses) == 3
    assert result.losses[-1] < result.losses[0]
    assert "llamafactory-cli train" in lines[1]
    assert SMOKE_DATASET in (tmp_path / "train_lora.yaml").read_text()
    with safe_open(result.adapter_dir / "adapter_model.safetensors", "pt") as adapter:
        lora_b = [k for k in adapter.keys() if "lora_B" in k]  # noqa: SIM118 (not a dict)
        assert lora_b
        assert all(adapter.get_tensor(k).abs().sum() > 0 for k in lora_b)

    # Serving: the vLLM server answered with tokens it counted itself.
    assert result.answer.strip()
    assert result.finish_reason in {"stop", "length"}
    assert 0 < result.completion_tokens <= 32
    assert result.prompt_tokens > 10
    assert "vllm" in (tmp_path / "vllm.log").read_text().lower()

    # Nothing left: the server's whole process group is gone.
    assert not group_alive(result.server_pid)


def test_interrupting_start_up_leaves_no_process(tiny_model, tmp_path):
    # Its own server: this test interrupts its start-up.
    spec = ServerSpec(python=paths.vllm_python(), model=tiny_model, port=free_port())
    server = Server(spec, tmp_path / "vllm.log")
    seen = {}

    def interrupt(waited: float) -> None:
        seen["pid"] = server.process.pid
        if waited > 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        server.start(timeout=120, on_wait=interrupt)
    assert server.process is None
    assert not group_alive(seen["pid"])
    time.sleep(0.5)
    assert not port_in_use(spec.host, spec.port)
