import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from medfactory.cli import cli

REPO = Path(__file__).resolve().parents[2]


def test_stats_counts_tokens_with_the_given_tokenizer(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    subprocess.run(["make", "-s", "data", f"DATA_DIR={tmp_path}"], cwd=REPO, check=True)
    result = CliRunner().invoke(
        cli,
        ["data", "stats", "medical_o1_sample_test", "--dataset-dir", str(tmp_path),
         "--tokenizer", str(tiny_model), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    records = [json.loads(x) for x in (tmp_path / "medical_o1_sample_test.jsonl").open()]
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
