"""The checked-in registry is what the demo's data stages register from the bundled samples."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medfactory.cli import cli
from medfactory.dev.demo import Outputs, plan

REPO = Path(__file__).resolve().parents[2]


def convert_samples(dataset_dir: Path, monkeypatch) -> None:
    """The `convert-*` stages of the demo (= `make data`), run in this process."""
    monkeypatch.setenv("MEDFACTORY_DATASET_DIR", str(dataset_dir))
    monkeypatch.chdir(REPO)
    stages = [s for s in plan(8000, "1", "1s", Outputs.from_recipes(REPO)) if "convert" in s.name]
    assert len(stages) == 3
    for stage in stages:
        result = CliRunner().invoke(cli, list(stage.args))
        assert result.exit_code == 0, result.output


def test_the_data_stages_register_exactly_the_checked_in_entries(tmp_path, monkeypatch):
    convert_samples(tmp_path, monkeypatch)
    fresh = json.loads((tmp_path / "dataset_info.json").read_text())
    checked_in = json.loads((REPO / "dataset_info" / "dataset_info.json").read_text())
    assert fresh == {name: checked_in[name] for name in fresh}, "run `make data` and commit"
    assert set(fresh) == {
        f"{name}_{split}"
        for name in ("huatuo_sample", "medical_o1_sample", "clinic_sample")
        for split in ("train", "val", "test")
    }
    for entry in fresh.values():
        assert (tmp_path / entry["file_name"]).stat().st_size > 0


def test_stats_reads_a_registered_split(tmp_path, monkeypatch):
    convert_samples(tmp_path, monkeypatch)
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
    assert f"{tmp_path / 'dataset_info.json'} has no dataset 'b_train'" in result.output
    assert "(registered: a_train)" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["data", "stats", "nope_test"],
        ["eval", "endpoint", "--endpoint", "http://127.0.0.1:9", "--dataset", "nope_test"],
        ["loadtest", "--endpoint", "http://127.0.0.1:9", "--dataset", "nope_test"],
    ],
    ids=["data stats", "eval endpoint", "loadtest"],
)
def test_every_command_reads_the_projects_registry_from_any_folder(tmp_path, monkeypatch, command):
    """Run from elsewhere, each command reads the project's dataset_info/ and names it."""
    monkeypatch.delenv("MEDFACTORY_DATASET_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    registry = REPO / "dataset_info" / "dataset_info.json"
    assert f"{registry} has no dataset 'nope_test'" in result.output
    assert "huatuo_sample_test" in result.output  # the project's entries, listed
