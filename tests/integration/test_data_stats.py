import json

from click.testing import CliRunner

from medfactory.cli import cli


def test_stats_counts_tokens_with_the_given_tokenizer(tiny_model, data_dir):
    from transformers import AutoTokenizer

    result = CliRunner().invoke(
        cli,
        ["data", "stats", "medical_o1_sample_test", "--dataset-dir", str(data_dir),
         "--tokenizer", str(tiny_model), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    records = [json.loads(x) for x in (data_dir / "medical_o1_sample_test.jsonl").open()]
    counts = sorted(
        sum(
            len(tokenizer(r[k], add_special_tokens=False)["input_ids"])
            for k in ("instruction", "output")
        )
        for r in records
    )
    assert stats["records"] == len(records)
    assert stats["tokens"]["max"] == counts[-1]
    assert stats["tokens"]["p50"] == counts[len(counts) // 2]
    assert stats["tokens"]["max"] < stats["chars"]["max"]
