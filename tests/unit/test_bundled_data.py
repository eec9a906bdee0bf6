"""The checked-in registry is what `make data` registers from the bundled samples."""

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from medfactory.cli import cli

REPO = Path(__file__).resolve().parents[2]


def test_make_data_registers_exactly_the_checked_in_entries(tmp_path):
    out = subprocess.run(
        ["make", "-s", "data", f"DATA_DIR={tmp_path}"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    fresh = json.loads((tmp_path / "dataset_info.json").read_text())
    checked_in = json.loads((REPO / "dataset_info" / "dataset_info.json").read_text())
    assert fresh == {name: checked_in[name] for name in fresh}, "run `make data` and commit"
    assert set(fresh) == {
        f"{name}_{split}"
        for name in ("huatuo_sample", "medical_o1_sample")
        for split in ("train", "val", "test")
    }
    for entry in fresh.values():
        assert (tmp_path / entry["file_name"]).stat().st_size > 0


def test_stats_reads_a_registered_split(tmp_path):
    subprocess.run(["make", "-s", "data", f"DATA_DIR={tmp_path}"], cwd=REPO, check=True)
    lines = (tmp_path / "huatuo_sample_train.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    result = CliRunner().invoke(
        cli, ["data", "stats", "huatuo_sample_train", "--dataset-dir", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["records"] == len(records)
    assert stats["formatting"] == "sharegpt"
    turns = {}
    for record in records:
        count = len(record["conversations"]) // 2
        turns[str(count)] = turns.get(str(count), 0) + 1
    assert stats["turns"] == turns
    longest = max(sum(len(m["value"]) for m in r["conversations"]) for r in records)
    assert stats["chars"]["max"] == longest


def test_stats_on_an_unknown_name_lists_the_known_ones(tmp_path):
    (tmp_path / "dataset_info.json").write_text('{"a_train": {"file_name": "a.jsonl"}}')
    result = CliRunner().invoke(cli, ["data", "stats", "b_train", "--dataset-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no dataset 'b_train'; known: a_train" in result.output
