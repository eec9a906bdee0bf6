"""Our splits, loaded by LLaMA-Factory's own dataset code with the tiny model's tokenizer.

LLaMA-Factory drops malformed samples with only a log line; the count it keeps
must equal the count we wrote, and Alpaca history must survive. The loading
runs in a fresh process, as in `llamafactory-cli train`: inside pytest's deep
call stack, CPython 3.11 thrashes its frame-stack chunks while `datasets`
fingerprints the tokenizer (a deep recursive pickle), which is 5x slower.
"""

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from converters.convert import ConvertOptions, convert

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "dataset_info" / "samples"


def load_with_llamafactory(
    model: Path, dataset_dir: Path, name: str, output_dir: Path, stage: str = "sft"
) -> dict:
    """What LLaMA-Factory keeps of NAME_train/_val/_test for `stage`, in a fresh process."""
    [result] = load_all_with_llamafactory(model, [(dataset_dir, name, output_dir, stage)])
    return result


def load_all_with_llamafactory(model: Path, jobs: list[tuple[Path, str, Path, str]]) -> list[dict]:
    """load_with_llamafactory for each (dataset_dir, name, output_dir, stage), all in one
    fresh process: importing LLaMA-Factory is most of a load's time."""
    script = Path(__file__).with_name("llamafactory_load.py")
    listed = json.dumps([[str(folder), name, str(out), stage] for folder, name, out, stage in jobs])
    out = subprocess.run(
        [sys.executable, str(script), str(model), listed], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = [x[len("RESULT ") :] for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    assert len(results) == len(jobs), out.stdout[-3000:]
    return [json.loads(result) for result in results]


def turns_of(record: dict) -> int:
    if "conversations" in record:
        return len(record["conversations"]) // 2
    return len(record["history"]) + 1


def first_question(record: dict) -> str:
    if "conversations" in record:
        return record["conversations"][0]["value"]
    return record["history"][0][0] if record["history"] else record["instruction"]


CASES = [
    ("huatuo", SAMPLES / "huatuo_sample.jsonl", "sharegpt", ""),
    ("huatuo", SAMPLES / "huatuo_sample.jsonl", "alpaca", "你是一名医生。"),
    ("medical-o1", SAMPLES / "medical_o1_sample.json", "alpaca", ""),
    ("medical-o1", SAMPLES / "medical_o1_sample.json", "sharegpt", "You are a doctor."),
]


@pytest.fixture(scope="module")
def loads(tiny_model, tmp_path_factory) -> dict:
    """Each case and the spreadsheet converted, then all loaded by LLaMA-Factory in one
    process; by case index, and "xlsx" (with the `data convert` run)."""
    folder = tmp_path_factory.mktemp("loading")
    converted, jobs = {}, []
    for index, (source, path, fmt, system) in enumerate(CASES):
        data_dir = folder / f"case{index}" / "data"
        options = ConvertOptions(fmt, "s", data_dir, system=system, workers=1)
        converted[index] = (data_dir, convert(source, [path], options))
        jobs.append((data_dir, "s", folder / f"case{index}", "sft"))
    run, data_dir = convert_spreadsheet(folder / "xlsx")
    converted["xlsx"] = (data_dir, run)
    if run.exit_code == 0:  # else its test reports the conversion's failure
        jobs.append((data_dir, "clinic", folder / "xlsx", "sft"))
    results = iter(load_all_with_llamafactory(tiny_model, jobs))
    return {
        key: (*converted[key], next(results) if key != "xlsx" or run.exit_code == 0 else None)
        for key in converted
    }


@pytest.mark.parametrize(("source", "path", "fmt", "system"), CASES)
def test_llamafactory_keeps_every_record_we_wrote(loads, source, path, fmt, system):
    data_dir, summary, loaded = loads[CASES.index((source, path, fmt, system))]
    aligned = loaded["aligned"]

    assert loaded["kept"] == summary.written
    assert len(aligned) == summary.written["train"]
    assert all(row["system"] == system for row in aligned)

    # Earlier turns survive: in LLaMA-Factory's aligned prompt and in the tokens.
    records = [orjson.loads(x) for x in (data_dir / "s_train.jsonl").read_bytes().splitlines()]
    index = max(range(len(records)), key=lambda i: turns_of(records[i]))
    turns = turns_of(records[index])
    assert turns >= (2 if source == "huatuo" else 1)
    assert len(aligned[index]["prompt"]) == 2 * turns - 1
    assert aligned[index]["prompt"][0]["content"] == first_question(records[index])
    text = loaded["decoded"][index]
    assert first_question(records[index]) in text
    assert text.count("<|im_start|>user") == turns


def convert_spreadsheet(folder: Path):
    """A hospital export as users have it: XLSX, Chinese column names, a system prompt
    per row, earlier turns in a column, identifiers in the patients' words; converted
    by `data convert table`. Returns the command's result and the dataset folder."""
    import openpyxl
    from click.testing import CliRunner

    from medfactory.cli import cli

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "门诊"
    sheet.append(["就诊号", "科室提示", "既往对话", "患者提问", "医生回答"])
    history = json.dumps([["我头痛三天了。", "有没有发热？"]], ensure_ascii=False)
    for i in range(24):
        sheet.append([
            f"MZ{i:04d}", "你是一名内科医生。", history if i % 2 else "",
            f"我叫王建国，电话1391234{i:04d}，第{i}次问：血压160/100怎么办？",
            f"建议低盐饮食，氨氯地平{5 + i % 2 * 5}mg每日一次，两周后复查（{i}）。",
        ])  # fmt: skip
    folder.mkdir(parents=True)
    source = folder / "门诊问答.xlsx"
    book.save(source)
    data_dir = folder / "data"
    args = ["data", "convert", "table", str(source), "--column", "question=患者提问",
            "--column", "answer=医生回答", "--column", "system=科室提示", "--column",
            "history=既往对话", "--format", "alpaca", "--name", "clinic", "--dataset-dir",
            str(data_dir), "--json"]  # fmt: skip
    return CliRunner().invoke(cli, args), data_dir


def test_a_spreadsheet_with_chinese_columns_converts_and_llamafactory_loads_it(loads):
    """The hospital export of convert_spreadsheet, converted and loaded."""
    data_dir, result, loaded = loads["xlsx"]
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["read"] == 24 and summary["deid"] == "strict"
    assert summary["pii_replaced"] == {"name": 24, "phone": 24}

    assert loaded["kept"] == {k: v for k, v in summary["written"].items() if v}
    records = [orjson.loads(x) for x in (data_dir / "clinic_train.jsonl").read_bytes().splitlines()]
    for record, aligned, decoded in zip(records, loaded["aligned"], loaded["decoded"], strict=True):
        assert aligned["system"] == "你是一名内科医生。"
        assert len(aligned["prompt"]) == 2 * len(record["history"]) + 1
        assert aligned["prompt"][-1]["content"] == record["instruction"]
        assert "我叫[NAME]，电话[PHONE]" in decoded and "王建国" not in decoded
        assert "血压160/100" in decoded and "mg每日一次" in decoded
