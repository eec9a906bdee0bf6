"""`data convert table`: spreadsheets and JSON through a column map, every row accounted for."""

import csv
import io
import json
import os
import re
import stat
from collections import Counter
from pathlib import Path

import openpyxl
import orjson
import pytest
from click.testing import CliRunner

from converters.column_map import build_column_map
from converters.convert import ConvertOptions, NothingConverted, convert
from converters.deid.audit import SAMPLES_PER_ENTITY
from converters.deid.engine import DeidOptions, deidentifier
from converters.formats import to_alpaca
from converters.records import Dialogue, SourceError
from converters.table_files import csv_layout, csv_range_rows, csv_ranges
from medfactory.cli import cli

QA = ("question=患者提问", "answer=医生回答")
HEADER = ["编号", "患者提问", "医生回答"]
ROWS = [
    ["1", "我叫李明，电话13912345678，头痛三天。", "建议测血压，必要时口服布洛芬200mg。"],
    ["2", "孩子发烧38.5度怎么办？", "物理降温，必要时布洛芬混悬液5ml。"],
    ["3", "", "问题是空的。"],
    ["4", "孩子发烧38.5度怎么办？", "物理降温，必要时布洛芬混悬液5ml。"],
]


def options(tmp_path, pairs=QA, **kw) -> ConvertOptions:
    kw.setdefault("fmt", "alpaca")
    kw.setdefault("name", "t")
    kw.setdefault("workers", 1)
    kw.setdefault("split", (1.0,))
    kw.setdefault("deid", "strict")
    return ConvertOptions(dataset_dir=tmp_path / "ds", table=build_column_map(pairs), **kw)


def written(tmp_path, name="t") -> list[dict]:
    path = tmp_path / "ds" / f"{name}_train.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def rejects(tmp_path, name="t") -> list[dict]:
    path = tmp_path / "ds" / f"{name}.rejects.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_csv(path: Path, rows, encoding="utf-8", delimiter=",") -> Path:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter).writerows(rows)
    path.write_bytes(out.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows, sheet="门诊") -> Path:
    book = openpyxl.Workbook()
    book.active.title = sheet
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def check_qa_result(tmp_path, summary, source: Path, header_row: int = 1):
    assert summary.read == 4 and summary.accounted == 4
    assert summary.written["train"] == 2 and summary.duplicates["exact"] == 1
    assert summary.rejected == {"empty_field": 1}
    first, second = written(tmp_path)
    assert first["instruction"] == "我叫[NAME]，电话[PHONE]，头痛三天。"
    assert first["output"] == "建议测血压，必要时口服布洛芬200mg。"
    assert second["instruction"] == "孩子发烧38.5度怎么办？"
    (reject,) = rejects(tmp_path)
    assert reject["source"] == str(source) and reject["line"] == header_row + 3  # as Excel shows
    assert reject["detail"] == "column '患者提问' (question) is empty"
    assert reject["record"] == dict(zip(HEADER, ROWS[2], strict=True))


@pytest.mark.parametrize(
    ("suffix", "encoding"),
    [(".csv", "utf-8"), (".csv", "gbk"), (".csv", "utf-8-sig"), (".csv", "gb18030"),
     (".tsv", "utf-8"), (".txt", "utf-16")],  # .txt in UTF-16: Excel's "Unicode text"
)  # fmt: skip
def test_a_csv_in_any_of_the_usual_encodings_converts(tmp_path, suffix, encoding):
    delimiter = "\t" if suffix in (".tsv", ".txt") else ","
    source = write_csv(tmp_path / f"门诊{suffix}", [HEADER, *ROWS], encoding, delimiter)
    check_qa_result(tmp_path, convert("table", [source], options(tmp_path)), source)


def test_a_spreadsheet_with_chinese_column_names_converts(tmp_path):
    source = write_xlsx(tmp_path / "门诊.xlsx", [HEADER, *ROWS])
    check_qa_result(tmp_path, convert("table", [source], options(tmp_path)), source)


TITLE = [["门诊问答导出"], ["导出时间：2026-12-01 08:00", "", "操作员：王芳"], []]


@pytest.mark.parametrize(("suffix", "encoding"), [(".csv", "gbk"), (".txt", "utf-16")])
def test_a_csv_with_a_title_above_its_header_converts(tmp_path, suffix, encoding):
    delimiter = "\t" if suffix == ".txt" else ","
    source = write_csv(tmp_path / f"导出{suffix}", [*TITLE, HEADER, *ROWS], encoding, delimiter)
    summary = convert("table", [source], options(tmp_path))
    check_qa_result(tmp_path, summary, source, header_row=4)


def test_a_sheet_with_a_merged_title_above_its_header_converts(tmp_path):
    source = write_xlsx(tmp_path / "导出.xlsx", [*TITLE, HEADER, *ROWS])
    book = openpyxl.load_workbook(source)
    book.active.merge_cells("A1:C1")  # the title across the table, as exports have it
    book.save(source)
    summary = convert("table", [source], options(tmp_path))
    check_qa_result(tmp_path, summary, source, header_row=4)


def test_rows_grouped_into_conversations_keep_their_numbers_below_a_title(tmp_path):
    rows = [["会话", "角色", "内容"], ["1", "患者", "头痛三天"], ["1", "医生", "测血压"],
            ["2", "医生", "您好"], ["2", "患者", "咳嗽"]]  # fmt: skip
    source = write_csv(tmp_path / "chats.csv", [*TITLE, *rows])
    pairs = ("conversation=会话", "role=角色", "content=内容")
    summary = convert("table", [source], options(tmp_path, pairs=pairs))
    assert summary.accounted == 2 and len(written(tmp_path)) == 1
    (reject,) = rejects(tmp_path)
    assert reject["line"] == 7  # conversation 2 starts on row 7, as Excel shows it


@pytest.mark.parametrize("layout", ["jsonl", "json"])
def test_json_lines_and_arrays_convert(tmp_path, layout):
    records = [dict(zip(HEADER, row, strict=True)) for row in ROWS]
    path = tmp_path / f"门诊.{layout}"
    if layout == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in records[:2]]
        lines += ["[1, 2]", "{broken", *(json.dumps(r, ensure_ascii=False) for r in records[2:])]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    summary = convert("table", [path], options(tmp_path))
    assert summary.written["train"] == 2 and summary.duplicates["exact"] == 1
    if layout == "jsonl":
        assert summary.rejected == {"empty_field": 1, "not_an_object": 1, "invalid_json": 1}
        assert [r["line"] for r in rejects(tmp_path)] == [3, 4, 5]
    assert summary.accounted == summary.read


def test_record_to_summary_tasks_use_instruction_input_output(tmp_path):
    rows = [["任务", "病历", "摘要"], ["总结病历", "患者男，45岁，胸痛2小时。", "急性胸痛待查。"]]
    source = write_csv(tmp_path / "summary.csv", rows)
    pairs = ("instruction=任务", "input=病历", "output=摘要")
    convert("table", [source], options(tmp_path, pairs))
    (record,) = written(tmp_path)
    assert record["instruction"] == "总结病历\n患者男，45岁，胸痛2小时。"
    assert record["output"] == "急性胸痛待查。"


def test_a_system_and_a_history_column_are_kept_and_registered(tmp_path):
    history = json.dumps([["我头痛", "多久了？"]], ensure_ascii=False)
    rows = [["系统", "历史", "问", "答"], ["你是医生。", history, "三天了", "建议就诊。"]]
    source = write_csv(tmp_path / "h.csv", rows)
    pairs = ("system=系统", "history=历史", "question=问", "answer=答")
    convert("table", [source], options(tmp_path, pairs))
    (record,) = written(tmp_path)
    assert record == {
        "instruction": "三天了", "input": "", "output": "建议就诊。", "system": "你是医生。",
        "history": [["我头痛", "多久了？"]],
    }  # fmt: skip
    registry = json.loads((tmp_path / "ds" / "dataset_info.json").read_text())
    assert registry["t_train"]["columns"]["system"] == "system"


def test_rows_become_conversations_in_turn_order(tmp_path):
    rows = [
        ["会话", "轮次", "角色", "内容"],
        ["A", "2", "医生", "多久了？"],
        ["B", "1", "患者", "孩子咳嗽"],
        ["A", "1", "患者", "我头痛"],
        ["A", "3", "患者", "三天"],
        ["A", "3.5", "患者", "还有点恶心"],  # two messages in a row: one turn
        ["A", "4", "医生", "建议测血压。"],
        ["B", "2", "护士", "请稍等"],  # an unknown role: the conversation is rejected
        ["C", "1", "医生", "您好"],  # starts with the doctor: rejected
        ["D", "1", "user", "Hello"],
        ["D", "2", "assistant", "Hi, how can I help?"],
        ["D", "3", "user", "Thanks"],  # a trailing question is dropped
    ]
    source = write_csv(tmp_path / "conv.csv", rows)
    pairs = ("conversation=会话", "turn=轮次", "role=角色", "content=内容")
    summary = convert("table", [source], options(tmp_path, pairs, fmt="sharegpt"))
    assert summary.rejected == {"unknown_role": 1, "answer_first": 1}
    assert summary.dropped_trailing_questions == 1
    first, second = written(tmp_path)
    assert [m["value"] for m in first["conversations"]] == [
        "我头痛", "多久了？", "三天\n还有点恶心", "建议测血压。"
    ]  # fmt: skip
    assert [m["value"] for m in second["conversations"]] == ["Hello", "Hi, how can I help?"]
    reasons = {r["reason"]: r for r in rejects(tmp_path)}
    # filed under the row the problem is on, the number its detail names
    assert reasons["unknown_role"]["line"] == 8
    assert reasons["unknown_role"]["detail"].startswith("row 8 (conversation 'B'): role '护士'")
    assert reasons["answer_first"]["line"] == 9
    assert reasons["answer_first"]["detail"] == "row 9: conversation 'C' starts with an answer"


def test_a_map_file_names_columns_roles_and_encoding(tmp_path):
    rows = [["会话", "角色", "内容"], ["A", "病人", "我头痛"], ["A", "主治", "多久了？"]]
    source = write_csv(tmp_path / "conv.csv", rows, encoding="gbk")
    map_file = tmp_path / "map.yaml"
    map_file.write_text(
        "columns:\n  conversation: 会话\n  role: 角色\n  content: 内容\n"
        "roles:\n  病人: user\n  主治: assistant\nencoding: gb18030\n",
        encoding="utf-8",
    )
    column_map = build_column_map(map_file=map_file)
    assert column_map.encoding == "gb18030" and column_map.layout == "conversation"
    options_ = ConvertOptions(
        "sharegpt", "m", tmp_path / "ds", split=(1.0,), workers=1, table=column_map
    )
    assert convert("table", [source], options_).written["train"] == 1
    # --column wins over the map file
    assert build_column_map(("content=正文",), map_file).fields["content"] == "正文"


@pytest.mark.parametrize(
    ("pairs", "map_text", "message"),
    [
        (("questio=问",), None, "unknown field questio; known: answer, content"),
        (("question=问",), None, "the qa layout takes question, answer (and optionally system, history): missing answer"),  # noqa: E501
        (("question=问", "output=答"), None, "map the columns of one layout"),
        (("question问",), None, "--column 'question问': expected FIELD=COLUMN"),
        ((), "colums:\n  question: 问\n", "unknown key colums; known: columns, roles, encoding, sheet"),  # noqa: E501
        ((), "columns:\n  question: 问\n  answer: 答\nroles:\n  医生: doctor\n", "'doctor' is not user, assistant or system"),  # noqa: E501
    ],
)  # fmt: skip
def test_a_wrong_column_map_is_one_clear_message(tmp_path, pairs, map_text, message):
    map_file = None
    if map_text:
        map_file = tmp_path / "map.yaml"
        map_file.write_text(map_text, encoding="utf-8")
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_column_map(pairs, map_file)


def run(*args: str):
    return CliRunner().invoke(cli, ["data", "convert", *args])


def test_a_column_the_file_lacks_is_named_with_the_files_columns(tmp_path):
    source = write_csv(tmp_path / "门诊.csv", [HEADER, *ROWS])
    result = run("table", str(source), "--column", "question=提问", "--column", "answer=医生回答",
                 "--name", "x", "--dataset-dir", str(tmp_path / "ds"))  # fmt: skip
    assert result.exit_code != 0
    assert result.output.strip() == (
        f"Error: {source}: no column '提问' (mapped to question); "
        "the file's columns: 编号, 患者提问, 医生回答"
    )
    assert not (tmp_path / "ds" / "dataset_info.json").exists()


def test_bad_tables_are_refused_before_any_work(tmp_path):
    merged = tmp_path / "merged.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "病例"
    for row in [["问", "答"], ["a", "b"], ["c", "d"]]:
        book.active.append(row)
    book.active.merge_cells("B2:B3")
    book.save(merged)
    empty = tmp_path / "empty.xlsx"
    openpyxl.Workbook().save(empty)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("问,答\n".encode() + b"caf\xe9,ok\n")  # UTF-8, then Latin-1
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    qa = ["--column", "question=问", "--column", "answer=答", "--name", "x"]
    cases = {
        (str(merged),): f"{merged}: sheet '病例', rows 2-3, column '答': merged cells (B2:B3); "
        "unmerge them and fill every row's value",
        (str(empty),): f"{empty}: sheet 'Sheet' is empty: no header row",
        (str(merged), "--sheet", "x"): f"{merged}: no sheet 'x'; sheets: 病例",
        (str(latin),): f"{latin}: neither UTF-8, GBK/GB18030 nor Big5 (line 2, byte 11); pass "
        "its encoding with --encoding (e.g. shift_jis, latin-1)",
        (str(latin), "--encoding", "utf-8"): f"{latin}: not utf-8 (line 2, byte 11); pass",
        (str(old),): f"{old}: not a table file (save it as .xlsx or .csv)",
    }
    for args, message in cases.items():
        result = run("table", *args, *qa, "--dataset-dir", str(tmp_path / "ds"))
        assert result.exit_code != 0
        assert result.output.startswith(f"Error: {message}"), result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "ds" / "x.rejects.jsonl").exists()
    latin.write_bytes(b"q,a\ncaf\xe9,ok\n")  # Latin-1 throughout: --encoding reads it
    result = run("table", str(latin), "--column", "question=q", "--column", "answer=a",
                 "--name", "x", "--encoding", "latin-1", "--dataset-dir", str(tmp_path / "ds"),
                 "--json", "--split", "1", "--format", "alpaca")  # fmt: skip
    assert json.loads(result.output)["written"]["train"] == 1
    assert written(tmp_path, "x")[0]["instruction"] == "café"


def test_options_that_contradict_each_other_are_refused(tmp_path):
    source = write_csv(tmp_path / "门诊.csv", [HEADER, *ROWS])
    huatuo = (
        Path(__file__).resolve().parents[2] / "dataset_info" / "samples" / "huatuo_sample.jsonl"
    )  # noqa: E501
    common = ["--name", "x", "--dataset-dir", str(tmp_path / "ds")]
    cases = [
        (["huatuo", str(huatuo), "--column", "question=a", *common], "--column: only for the table source"),  # noqa: E501
        (["table", str(source), *common], "table: say which column holds what"),
        (["table", str(source), "--column", QA[0], "--column", QA[1], "--no-scrub", "--deid", "strict", *common], "--no-scrub and --deid strict disagree"),  # noqa: E501
        (["huatuo", str(huatuo), "--pseudonymize", *common], "--pseudonymize and --ner-config work with --deid strict"),  # noqa: E501
    ]  # fmt: skip
    for args, message in cases:
        result = run(*args)
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_strict_is_the_default_for_tables_and_basic_for_the_public_sets(tmp_path):
    source = write_csv(tmp_path / "门诊.csv", [HEADER, *ROWS])
    result = run("table", str(source), "--column", QA[0], "--column", QA[1], "--name", "x",
                 "--dataset-dir", str(tmp_path / "ds"), "--json", "--split", "1")  # fmt: skip
    summary = json.loads(result.output)
    assert summary["deid"] == "strict" and summary["pii_replaced"] == {"name": 1, "phone": 1}
    huatuo = (
        Path(__file__).resolve().parents[2] / "dataset_info" / "samples" / "huatuo_sample.jsonl"
    )  # noqa: E501
    result = run(
        "huatuo", str(huatuo), "--name", "h", "--dataset-dir", str(tmp_path / "ds"), "--json"
    )  # noqa: E501
    assert json.loads(result.output)["deid"] == "basic"


def test_the_audit_file_counts_and_samples_what_was_replaced(tmp_path):
    rows = [HEADER] + [
        [str(i), f"患者张{'伟明强军'[i % 4]}{i}号，电话139{i:08d}，头痛。", f"建议复查{i}次。"]
        for i in range(60)
    ]  # fmt: skip
    source = write_csv(tmp_path / "门诊.csv", rows)
    summary = convert("table", [source], options(tmp_path, seed=5))
    audit_path = tmp_path / "ds" / "t.deid-audit.json"
    assert stat.S_IMODE(os.stat(audit_path).st_mode) == 0o600  # it shows the originals
    audit = json.loads(audit_path.read_text(encoding="utf-8"))
    assert audit["deid"] == "strict" and audit["replaced"] == dict(summary.pii)
    assert audit["replaced"]["phone"] == 60
    phones = audit["samples"]["PHONE"]
    assert len(phones) == SAMPLES_PER_ENTITY
    for sample in phones:
        row = rows[sample["line"] - 1]  # the header is row 1
        assert sample["source"] == str(source) and sample["original"] in row[1]
        assert sample["context"] == row[1].replace(sample["original"], f"【{sample['original']}】")
    # the same seed draws the same sample
    convert("table", [source], options(tmp_path, seed=5, force=True))
    assert json.loads(audit_path.read_text(encoding="utf-8")) == audit


def test_csv_ranges_cut_only_where_a_row_ends(tmp_path):
    rows = [["id", "text"]] + [
        [str(i), f'line one\nline "two" of row {i}' if i % 3 == 0 else f"row {i}, plain"]
        for i in range(200)
    ]  # fmt: skip
    source = write_csv(tmp_path / "multi.csv", rows, encoding="gb18030")
    layout = csv_layout(source, None)
    assert layout.header == ("id", "text") and layout.encoding == "utf-8"
    read, base = [], 1
    for start, end in csv_ranges(source, layout, 97):  # many tiny ranges
        records, spanned = csv_range_rows(str(source), layout, start, end)
        read += [(base + row, record) for row, record in records]
        base += spanned
    assert read == [(i + 2, {"id": r[0], "text": r[1]}) for i, r in enumerate(rows[1:])]


def test_strict_conversion_with_the_precheck_equals_presidio_on_every_record(tmp_path):
    """The tuned path (RE2 pre-check, then Presidio on what it finds, in worker
    processes) against its plain twin: Presidio over every text."""
    from medfactory.dev.deid_samples import labelled_set

    snippets = [item["text"] for item in labelled_set(400, seed=21)]
    medical = [
        "多饮水，注意休息。",
        "血压150/95mmHg，复查血常规。",
        "Metformin 500 mg twice daily.",
    ]
    questions = [snippets[i] if i % 2 else f"第{i}次咨询：头痛怎么办？" for i in range(400)]
    answers = [medical[i % 3] + snippets[-i] for i in range(400)]
    rows = [HEADER] + [[str(i), questions[i], answers[i]] for i in range(400)]
    source = write_csv(tmp_path / "t.csv", rows)
    convert("table", [source], options(tmp_path, workers=2, dedup=False))
    engine = deidentifier(DeidOptions())
    expected = []
    for _, question, answer in rows[1:]:
        question, answer = engine.record([question, answer], Counter())
        expected.append(to_alpaca(Dialogue(turns=((question, answer),))))
    assert written(tmp_path) == expected


def test_nothing_convertible_registers_nothing(tmp_path):
    source = write_csv(tmp_path / "x.csv", [HEADER, ["1", "", ""], ["2", "问", ""]])
    with pytest.raises(NothingConverted, match="none of the 2 records could be read as table"):
        convert("table", [source], options(tmp_path))
    assert not (tmp_path / "ds" / "dataset_info.json").exists()
    assert len(rejects(tmp_path)) == 2


@pytest.mark.parametrize("kind", ["csv", "xlsx", "jsonl"])
def test_blank_rows_are_counted_as_blank_and_rows_below_keep_their_numbers(tmp_path, kind):
    blank = ["", "", ""]
    rows = [HEADER, ROWS[0], blank, ROWS[1], blank, blank, ROWS[2], ["  ", "", " "]]
    if kind == "csv":
        source = write_csv(tmp_path / "门诊.csv", rows)
    elif kind == "xlsx":
        source = write_xlsx(tmp_path / "门诊.xlsx", [[c or None for c in r] for r in rows])
    else:
        source = tmp_path / "门诊.jsonl"
        lines = [json.dumps(dict(zip(HEADER, r, strict=True)), ensure_ascii=False)
                 if r is not blank and r[0].strip() else "" for r in rows[1:]]  # fmt: skip
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = convert("table", [source], options(tmp_path))
    assert summary.blank == 4 and summary.as_dict()["blank"] == 4
    assert summary.read == 3 and summary.written["train"] == 2
    (reject,) = rejects(tmp_path)  # ROWS[2], the empty question, on the sheet's row 7
    assert reject["line"] == (6 if kind == "jsonl" else 7)  # a JSON-lines file has no header
    result = run("table", str(source), *(a for p in QA for a in ("--column", p)), "--name", "c",
                 "--dataset-dir", str(tmp_path / "cli"), "--split", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.search(r"blank rows \(skipped\)\s+│ 4", result.output), result.output


def test_a_json_lines_conversation_is_rejected_on_the_line_its_detail_names(tmp_path):
    rows = [("A", "患者", "头痛"), ("A", "医生", "多久了"), ("B", "患者", "咳嗽"),
            ("B", "护士", "稍等"), ("B", "医生", "吃药")]  # fmt: skip
    source = tmp_path / "chats.jsonl"
    lines = [dict(zip(("会话", "角色", "内容"), row, strict=True)) for row in rows]
    source.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    pairs = ("conversation=会话", "role=角色", "content=内容")
    convert("table", [source], options(tmp_path, pairs=pairs, fmt="sharegpt"))
    (reject,) = rejects(tmp_path)
    assert reject["line"] == 4 and reject["detail"].startswith("row 4 (conversation 'B')")
