"""A table or document in any of the encodings Chinese hospitals export -- UTF-8 (with a
BOM or without), UTF-16, GBK, GB18030 and Big5 -- is read with its text intact, or
refused naming the candidates; it is never registered as mojibake."""

import csv
import io
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from converters.documents import read_document
from converters.encodings import detect_encoding
from converters.records import SourceError
from medfactory.cli import cli

# Traditional Chinese, as a Taiwan or Hong Kong clinic writes it (Big5).
TRADITIONAL = [
    ["編號", "病人提問", "醫師回答"],
    ["1", "醫師您好，我咳嗽兩個星期了，晚上更嚴重，需要照胸部X光嗎？",
     "咳嗽超過兩週建議到門診照胸部X光，並檢查是否有過敏或胃食道逆流。"],
    ["2", "血壓一百六十，頭暈，該掛哪一科？", "請掛心臟內科或家醫科，每天早晚量血壓並記錄。"],
    ["3", "糖尿病患者可以吃水果嗎？", "可以，但要控制份量，選擇升糖指數低的水果，例如蘋果。"],
]  # fmt: skip
SIMPLIFIED = [
    ["编号", "患者提问", "医生回答"],
    ["1", "医生您好，我咳嗽两个星期了，晚上更严重，需要拍胸片吗？",
     "咳嗽超过两周建议到门诊拍胸片，并检查是否有过敏或胃食管反流。"],
    ["2", "血压一百六十，头晕，该挂哪个科？", "请挂心内科或全科，每天早晚测血压并记录。"],
    ["3", "糖尿病患者可以吃水果吗？", "可以，但要控制分量，选择升糖指数低的水果，例如苹果。"],
]  # fmt: skip
ASCII_HEADER = ["id", "question", "answer"]


def write_csv(path: Path, rows, encoding: str, delimiter: str = ",") -> Path:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter).writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def convert(path: Path, header: list[str], dataset_dir: Path, *extra: str):
    args = ["data", "convert", "table", str(path), "--column", f"question={header[1]}",
            "--column", f"answer={header[2]}", "--name", "clinic", "--dataset-dir",
            str(dataset_dir), "--format", "alpaca", "--split", "1", "--deid", "off",
            "--json", *extra]  # fmt: skip
    return CliRunner().invoke(cli, args)


def registered(dataset_dir: Path) -> list[tuple[str, str]]:
    lines = (dataset_dir / "clinic_train.jsonl").read_bytes().splitlines()
    return [(r["instruction"], r["output"]) for r in map(orjson.loads, lines)]


@pytest.mark.parametrize(
    ("encoding", "rows", "chinese_header"),
    [("big5", TRADITIONAL, True), ("big5", TRADITIONAL, False),
     ("gb18030", SIMPLIFIED, True), ("gbk", SIMPLIFIED, True), ("gbk", SIMPLIFIED, False),
     ("utf-16", TRADITIONAL, True), ("utf-8-sig", SIMPLIFIED, True),
     ("utf-8", TRADITIONAL, False)],
)  # fmt: skip
def test_a_csv_in_each_encoding_converts_with_its_text_intact(
    tmp_path, encoding, rows, chinese_header
):
    header = rows[0] if chinese_header else ASCII_HEADER
    suffix, delimiter = (".txt", "\t") if encoding == "utf-16" else (".csv", ",")
    source = write_csv(tmp_path / f"门诊{suffix}", [header, *rows[1:]], encoding, delimiter)
    result = convert(source, header, tmp_path / "ds")
    assert result.exit_code == 0, result.output
    assert registered(tmp_path / "ds") == [(q, a) for _, q, a in rows[1:]]


def test_an_undecidable_big5_file_is_refused_naming_both_readings_and_nothing_is_registered(
    tmp_path,
):
    # Two characters: as Big5 頭痛, as GBK 繷礹. Both decode; too few to tell apart.
    source = write_csv(tmp_path / "short.csv", [ASCII_HEADER, ["1", "頭痛", "ok"]], "big5")
    result = convert(source, ASCII_HEADER, tmp_path / "ds")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == (
        f"Error: {source}: cannot tell whether it is GBK/GB18030 or Big5: it reads as "
        "“繷礹” in GBK and as “頭痛” in Big5; pass the right one with --encoding "
        "gb18030 or --encoding big5\n"
    )
    assert not (tmp_path / "ds").exists()  # no registry, no rejects: nothing at all
    result = convert(source, ASCII_HEADER, tmp_path / "ds", "--encoding", "big5")
    assert result.exit_code == 0, result.output
    assert registered(tmp_path / "ds") == [("頭痛", "ok")]


CLINICAL_TRADITIONAL = [
    "病人主訴胸悶氣短，心電圖顯示ST段壓低。", "糖尿病患者應定期監測血糖，並注意飲食控制。",
    "門診病歷摘要", "護理紀錄：體溫正常", "咳嗽三天", "頭痛", "發燒", "醫師", "量血壓",
    "兒童發燒超過三天應回診", "藥物過敏史：盤尼西林",
]  # fmt: skip
CLINICAL_SIMPLIFIED = [
    "病人主诉胸闷气短，心电图显示ST段压低。", "糖尿病患者应定期监测血糖，并注意饮食控制。",
    "门诊病历摘要", "护理记录：体温正常", "咳嗽三天", "头晕", "发烧", "量血压",
    "儿童发烧超过三天应复诊", "药物过敏史：青霉素",
]  # fmt: skip


@pytest.mark.parametrize(
    ("texts", "encoding", "family"),
    [(CLINICAL_TRADITIONAL, "big5", "big5"), (CLINICAL_SIMPLIFIED, "gbk", "gb18030"),
     (CLINICAL_TRADITIONAL, "gbk", "gb18030")],
)  # fmt: skip
def test_detection_is_right_or_refuses_never_wrong(tmp_path, texts, encoding, family):
    """Each text alone, with an ASCII header: the short ones may be refused, none is
    read in the other encoding."""
    decided = 0
    for number, text in enumerate(texts):
        path = write_csv(tmp_path / f"{number}.csv", [["q"], [text]], encoding)
        try:
            found = detect_encoding(path)
        except SourceError as error:
            assert "--encoding" in str(error)
            continue
        decided += 1
        assert found == family, (text, found)
        assert path.read_bytes().decode(found) == f"q\r\n{text}\r\n"
    assert decided >= len(texts) // 2  # the longer ones are told apart


def test_a_big5_document_reads_intact_and_an_undecidable_one_asks_for_encoding(tmp_path):
    text = "# 門診須知\n\n" + "".join(row[2] for row in TRADITIONAL[1:])
    document = tmp_path / "須知.md"
    document.write_bytes(text.encode("big5"))
    assert read_document(document) == text
    short = tmp_path / "短.txt"
    short.write_bytes("頭痛".encode("big5"))
    with pytest.raises(SourceError, match="pass the right one with --encoding gb18030 or"):
        read_document(short)
    assert read_document(short, "big5") == "頭痛"


def test_synthesize_reads_documents_in_the_encoding_given(tmp_path):
    short = tmp_path / "短.md"
    short.write_bytes("頭痛".encode("big5"))
    args = ["data", "synthesize", str(short), "--endpoint", "http://127.0.0.1:9", "--name", "x",
            "--dataset-dir", str(tmp_path / "ds"), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "--encoding gb18030 or --encoding big5" in result.output
    # Given, the document is read; then the (absent) server is needed, and says so.
    result = CliRunner().invoke(cli, [*args, "--encoding", "big5"])
    assert result.exit_code == 1 and "no server answers at http://127.0.0.1:9" in result.output


def test_a_file_that_turns_undecodable_late_is_refused_naming_the_line(tmp_path):
    rows = [SIMPLIFIED[0], *SIMPLIFIED[1:] * 2000]
    source = write_csv(tmp_path / "门诊.csv", rows, "gbk")
    source.write_bytes(source.read_bytes() + b"4,\x80\xff,x\r\n")  # past what scoring reads
    with pytest.raises(SourceError) as refused:
        detect_encoding(source)
    assert str(refused.value) == (
        f"{source}: GBK/GB18030 at first, then not (line 6002, byte {source.stat().st_size - 6}); "
        "pass its encoding with --encoding, or mend that line"
    )
