"""`data sample` end to end against the shared tiny vLLM server: vLLM's own `n` answers,
scored by the reward server's verifier, every prompt accounted for, and a rerun that
asks nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner

from medfactory.cli import cli

EXAM = [
    {"question": f"Question {i}: which organ does drug {i} damage most?", "A": "Liver",
     "B": "Kidney", "C": "Heart", "answer": "ABC"[i % 3]} for i in range(4)
]  # fmt: skip


def run(*arguments):
    result = CliRunner().invoke(cli, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_sampling_the_tiny_model_accounts_for_every_prompt(ab_server, tmp_path):
    exam, data = tmp_path / "exam.jsonl", tmp_path / "data"
    exam.write_text("".join(json.dumps(row) + "\n" for row in EXAM))
    run("data", "convert", "exam", str(exam), "--name", "exam", "--held-out", "0",
        "--dataset-dir", str(data))  # fmt: skip
    sample = ("data", "sample", "--endpoint", ab_server.spec.base_url, "--api-key", "test-key",
              "--model-name", "lora", "--dataset", "exam_train", "--n", "3", "--max-tokens", "8",
              "--verifier", "choice", "--answers", str(data / "exam.answers.jsonl"),
              "--format-penalty", "-1", "--min-score", "-2", "--name", "tiny_rft",
              "--dataset-dir", str(data))  # fmt: skip
    summary = run(*sample)
    assert summary["requests"] == summary["prompts"] == summary["sampled"] == 4
    assert summary["answers"] == 12  # n answers in each reply
    assert sum(summary["passed_histogram"].values()) == 4
    # --min-score -2: every answer passes, so every prompt keeps its best one
    assert summary["sft"] == 4 and summary["passed"] == 12
    report = json.loads((data / "tiny_rft.sample-report.json").read_text())
    assert [len(p["scores"]) for p in report["per_prompt"]] == [3, 3, 3, 3]
    assert all(s in (-1.0, 0.0, 1.0) for p in report["per_prompt"] for s in p["scores"])
    lines = (data / "tiny_rft_sft_train.jsonl").read_text().splitlines()
    assert len(lines) == 4
    again = run(*sample)
    assert again["requests"] == 0 and again["from_earlier_runs"] == 4
