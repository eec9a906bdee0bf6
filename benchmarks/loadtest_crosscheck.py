"""Cross-check our load-test figures against vLLM's own `vllm bench serve`.

Starts the tiny model on vLLM (`.venv-vllm`), then runs the same workload
twice against it: the test split's questions as single-turn chats, the same
output length (ignore_eos), the same concurrency.
  ours:   medfactory's locust run (deploy/locustfile.py), for --duration;
  vLLM's: `vllm bench serve --backend openai-chat`, run as a module from
          `.venv-vllm`, with as many prompts as our run completed.
Prints TTFT and output-token throughput of both and their ratios; goal: within 15 %.

    python benchmarks/loadtest_crosscheck.py [--users 4] [--duration 30] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from converters.conversations import load_conversations
from deploy.loadtest import LoadSpec, read_records, run_locust, summarize
from deploy.process import free_port
from deploy.server import Server, ServerSpec
from medfactory import paths
from medfactory.dev.tiny_model import ensure_tiny_model

REPO = Path(__file__).resolve().parents[1]

BENCH = """
import argparse, sys
from vllm.benchmarks.serve import add_cli_args, main
parser = argparse.ArgumentParser()
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


def vllm_bench(url, model, tokenizer, questions, users, max_tokens, count, out: Path) -> dict:
    # ShareGPT layout: read with the json module (the custom format needs pandas,
    # which the serving environment does not carry).
    dataset = out / "prompts.json"
    conversations = [
        {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": "-"}]}
        for q in questions
    ]
    dataset.write_text(json.dumps(conversations, ensure_ascii=False))
    argv = [
        str(paths.vllm_python()), "-c", BENCH, "--backend", "openai-chat", "--base-url", url,
        "--endpoint", "/v1/chat/completions", "--model", model, "--tokenizer", str(tokenizer),
        "--dataset-name", "sharegpt", "--dataset-path", str(dataset),
        "--sharegpt-output-len", str(max_tokens), "--ignore-eos", "--num-prompts", str(count),
        "--max-concurrency", str(users), "--request-rate", "inf", "--save-result",
        "--result-dir", str(out), "--result-filename", "vllm_bench.json",
        "--percentile-metrics", "ttft,tpot,itl,e2el",
        "--temperature", "0",  # as ours: sampling at the server's default costs more per token
    ]  # fmt: skip
    run = subprocess.run(argv, cwd=out, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"vllm bench serve failed:\n{run.stderr[-3000:]}")
    return json.loads((out / "vllm_bench.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    model = ensure_tiny_model(
        paths.cache_dir() / "tiny-model", paths.fixtures_dir() / "qwen2.5-0.5b-instruct-tokenizer"
    )
    subprocess.run(["make", "-s", "data"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    questions = [
        c.messages[-1]["content"]
        for c in load_conversations(REPO / "dataset_info", "huatuo_sample_test")
    ]
    spec = ServerSpec(
        python=paths.vllm_python(), model=model, port=free_port(), served_model_name="tiny",
        max_model_len=2048,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, Server(spec, Path(tmp) / "vllm.log").start():
        work = Path(tmp)
        prompts = [[{"role": "user", "content": q}] for q in questions]
        load = LoadSpec(
            url=spec.base_url, model="tiny", prompts=prompts, users=args.users, spawn_rate=100,
            duration_s=args.duration, max_tokens=args.max_tokens,
        )  # fmt: skip
        records = read_records(run_locust(load, work, paths.train_venv() / "bin/locust"))
        ours = summarize(records, args.duration, {})
        theirs = vllm_bench(
            spec.base_url, "tiny", model, questions, args.users, args.max_tokens,
            ours["completed"], work,
        )  # fmt: skip

    print(
        f"{args.users} concurrent users, {args.max_tokens} output tokens per request (ignore_eos)"
    )
    print(f"{'':28}{'medfactory':>12}{'vllm bench':>12}{'ratio':>8}")
    rows = [
        ("requests", ours["completed"], theirs["completed"]),
        ("TTFT mean (ms)", ours["ttft_ms"]["mean"], theirs["mean_ttft_ms"]),
        ("TTFT median (ms)", ours["ttft_ms"]["median"], theirs["median_ttft_ms"]),
        ("TPOT mean (ms)", ours["tpot_ms"]["mean"], theirs["mean_tpot_ms"]),
        ("output throughput (tok/s)", ours["output_throughput"], theirs["output_throughput"]),
    ]
    for name, mine, vllm in rows:
        print(f"{name:28}{mine:12.1f}{vllm:12.1f}{mine / vllm:8.2f}")
    print("goal: TTFT and output throughput ratios within 0.85-1.15")


if __name__ == "__main__":
    main()
