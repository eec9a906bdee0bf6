"""`medfactory eval endpoint` against a real vLLM server with the tiny model."""

import json

from click.testing import CliRunner
from transformers import AutoTokenizer

from converters.conversations import load_conversations
from medfactory.cli import cli
from medfactory.evaluation.metrics import score_pair
from medfactory.evaluation.scoring import split_think


def test_endpoint_answers_the_test_split_with_its_history_and_scores_it(
    tiny_server, tiny_model, data_dir, tmp_path
):
    out = tmp_path / "eval"
    args = [
        "eval", "endpoint", "--endpoint", tiny_server.spec.base_url,
        "--dataset", "huatuo_sample_test", "--dataset-dir", str(data_dir),
        "--max-samples", "8", "--max-tokens", "12", "--concurrency", "3",
        "--out", str(out), "--workers", "1", "--api-key", "test-key",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output

    conversations = load_conversations(data_dir, "huatuo_sample_test", limit=8)
    rows = [json.loads(line) for line in (out / "generated_predictions.jsonl").open()]
    assert [r["label"] for r in rows] == [c.reference for c in conversations]
    assert [r["prompt"] for r in rows] == [c.messages[-1]["content"] for c in conversations]
    assert any(len(c.messages) > 1 for c in conversations)  # multi-turn ones are in the run

    # The server saw the whole conversation: its prompt token count is exactly
    # the chat-templated history, not just the last question.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for row, conversation in zip(rows, conversations, strict=True):
        ids = tokenizer.apply_chat_template(
            conversation.messages, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        assert row["prompt_tokens"] == len(ids)
        assert 0 < row["completion_tokens"] <= 12
        assert row["finish_reason"] in {"stop", "length"}

    scores = json.loads((out / "scores.json").read_text())
    assert scores["think"] == "strip" and scores["samples"] == 8
    expected = [score_pair(split_think(r["predict"])[1], r["label"]) for r in rows]
    assert scores["per_sample"] == expected


def test_wrong_api_key_or_address_is_one_message_before_any_request(tiny_server, data_dir):
    base = ["eval", "endpoint", "--dataset", "huatuo_sample_test", "--dataset-dir", str(data_dir)]
    result = CliRunner().invoke(cli, [*base, "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "no server answers at http://127.0.0.1:9" in result.output
    result = CliRunner().invoke(
        cli, [*base, "--endpoint", tiny_server.spec.base_url, "--api-key", "test-key",
              "--model-name", "other"]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "does not serve 'other' (it serves: tiny, lora)" in result.output
