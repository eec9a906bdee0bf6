"""`data convert sql` on SQLite: chunks, the high-water mark, rows added to the same splits,
the one-line errors, and the password kept out of every message."""

import json
import sqlite3
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from converters.column_map import build_column_map
from converters.convert import ConvertOptions
from converters.records import SourceError
from converters.split import SPLIT_NAMES
from converters.sql.convert import convert_sql
from converters.sql.database import Database, SqlSource
from converters.sql.record import HighWater, UncomparableMark, decode_mark, encode_mark
from medfactory.cli import cli

QA = ("question=问题", "answer=回答")
QUERY = "SELECT 问题, 回答, 科室, 更新时间 FROM consult WHERE 科室 = '心内科'"


def make_db(path: Path, rows: int = 300, start: int = 0, day: int = 1) -> Path:
    """A consultation table with Chinese column names; one row in ten has no answer."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS consult (问题 TEXT, 回答 TEXT, 科室 TEXT, 更新时间 TEXT)"
        )
        db.executemany(
            "INSERT INTO consult VALUES (?, ?, ?, ?)",
            [
                (
                    f"第{i}例：胸闷{i % 7 + 1}天，活动后加重，怎么办？",
                    "" if i % 10 == 3 else f"建议心电图和心肌酶检查（{i}）。",
                    "心内科" if i % 5 else "骨科",
                    f"2024-03-{day + i % 3:02d} 08:{i % 60:02d}:00",
                )
                for i in range(start, start + rows)
            ],
        )
    return path


def options(tmp_path, **kw) -> ConvertOptions:
    kw.setdefault("fmt", "sharegpt")
    kw.setdefault("name", "cardio")
    kw.setdefault("workers", 1)
    kw.setdefault("deid", "basic")
    return ConvertOptions(dataset_dir=tmp_path / "ds", table=build_column_map(QA), **kw)


def split_lines(tmp_path, name="cardio") -> dict[str, list[bytes]]:
    folder = tmp_path / "ds"
    return {
        split: (folder / f"{name}_{split}.jsonl").read_bytes().splitlines()
        for split in SPLIT_NAMES
        if (folder / f"{name}_{split}.jsonl").exists()
    }


def source(db: Path, **kw) -> SqlSource:
    kw.setdefault("query", QUERY)
    return SqlSource(f"sqlite:///{db}", **kw)


def test_second_run_adds_exactly_the_new_rows_to_the_same_splits(tmp_path):
    db = make_db(tmp_path / "his.db")
    first = convert_sql(source(db, since_column="更新时间", chunk_rows=37), options(tmp_path))
    # 240 rows of 心内科, 30 of them without an answer
    assert first.summary.read == 240
    assert first.summary.rejected == {"empty_field": 30}
    assert first.new == 210 and first.mode == "full"
    assert first.mark_after == {"type": "text", "value": "2024-03-03 08:59:00"}
    before = split_lines(tmp_path)

    make_db(db, rows=125, start=1000, day=5)  # 100 心内科 rows, 13 without an answer
    second = convert_sql(source(db, since_column="更新时间", chunk_rows=37), options(tmp_path))
    assert second.mode == "incremental"
    assert second.mark_before == first.mark_after
    # only rows at or past the mark are read: the new ones and those written at it
    at_mark = 5  # rows 59, 119, 179, 239 and 299 (day 3, 08:59)
    assert second.summary.read == 100 + at_mark
    assert (second.new, second.already_present) == (100 - 13, at_mark)
    assert second.summary.rejected == {"empty_field": 13}
    assert second.accounted == second.summary.read
    after = split_lines(tmp_path)
    for split, lines in before.items():  # nothing written before moved or changed
        assert after[split][: len(lines)] == lines
    assert sum(map(len, after.values())) == 210 + 87
    assert second.total == {split: len(lines) for split, lines in after.items()}
    record = json.loads((tmp_path / "ds" / "cardio.source.json").read_text(encoding="utf-8"))
    assert record["high_water_mark"] == {"type": "text", "value": "2024-03-07 08:59:00"}
    assert [run["new"] for run in record["runs"]] == [210, 87]
    rejects = (tmp_path / "ds" / "cardio.rejects.jsonl").read_text(encoding="utf-8")
    assert len(rejects.splitlines()) == 30 + 13  # both runs' rejected rows


def test_a_run_with_nothing_new_changes_nothing_but_the_record(tmp_path):
    db = make_db(tmp_path / "his.db")
    convert_sql(source(db, since_column="更新时间"), options(tmp_path))
    before = split_lines(tmp_path)
    again = convert_sql(source(db, since_column="更新时间"), options(tmp_path))
    assert again.new == 0 and again.already_present == 5
    assert split_lines(tmp_path) == before


def test_full_reads_everything_again_and_rewrites(tmp_path):
    db = make_db(tmp_path / "his.db")
    convert_sql(source(db, since_column="更新时间"), options(tmp_path))
    before = split_lines(tmp_path)
    full = convert_sql(source(db, since_column="更新时间"), options(tmp_path), full=True)
    assert full.mode == "full" and full.summary.read == 240 and full.new == 210
    assert split_lines(tmp_path) == before  # the content hash places every record again


def test_table_and_identifiers_replaced_in_chinese_columns(tmp_path):
    db = tmp_path / "his.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE 问诊 (编号 INTEGER, 患者提问 TEXT, 医生回答 TEXT)")
        connection.executemany(
            "INSERT INTO 问诊 VALUES (?, ?, ?)",
            [
                (
                    1,
                    "患者宰超，住院号20240311，电话13912345678，头痛三天。",
                    "口服王不留行、白术。",
                ),
                (2, "我是双娟娟，高血压十年，能用常山吗？", "莘平女士的方子不要自己用。"),
            ],
        )
    opts = options(tmp_path, deid="strict", split=(1.0,))
    opts = ConvertOptions(
        **{**opts.__dict__, "table": build_column_map(("question=患者提问", "answer=医生回答"))}
    )
    run = convert_sql(SqlSource(f"sqlite:///{db}", table="问诊"), opts)
    text = b"".join(split_lines(tmp_path)["train"]).decode()
    for planted in ("宰超", "20240311", "13912345678", "双娟娟", "莘平"):
        assert planted not in text
    for kept in ("王不留行", "白术", "高血压", "常山"):
        assert kept in text
    assert run.summary.pii["name"] == 3


def test_conversation_rows_grouped_as_for_a_file(tmp_path):
    db = tmp_path / "his.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE msg (会话 TEXT, 顺序 INTEGER, 角色 TEXT, 内容 TEXT)")
        connection.executemany(
            "INSERT INTO msg VALUES (?, ?, ?, ?)",
            [("a", 2, "医生", "多喝水。"), ("b", 1, "患者", "咳嗽"), ("a", 1, "患者", "发烧")],
        )
    pairs = ("conversation=会话", "turn=顺序", "role=角色", "content=内容")
    opts = ConvertOptions(
        fmt="sharegpt", name="conv", dataset_dir=tmp_path / "ds", split=(1.0,), workers=1,
        table=build_column_map(pairs), deid="off",
    )  # fmt: skip
    run = convert_sql(SqlSource(f"sqlite:///{db}", table="msg"), opts)
    record = orjson.loads(split_lines(tmp_path, "conv")["train"][0])
    assert [m["value"] for m in record["conversations"]] == ["发烧", "多喝水。"]
    assert run.summary.rejected == {"no_answered_question": 1}
    with pytest.raises(SourceError, match="conversation's rows cannot be read in part"):
        convert_sql(SqlSource(f"sqlite:///{db}", table="msg", since_column="顺序"), opts)


def nothing_written(tmp_path) -> bool:
    folder = tmp_path / "ds"
    return not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * FROM nowhere", "the query cannot be read: no such table: nowhere"),
        ("SELEC 1", 'the query cannot be read: near "SELEC": syntax error'),
        ("SELECT 问题 FROM consult", "result has no column '回答' (mapped to answer by --column)"),
    ],
)
def test_query_errors_are_one_line_and_write_nothing(tmp_path, query, message):
    db = make_db(tmp_path / "his.db", rows=5)
    with pytest.raises(SourceError) as raised:
        convert_sql(source(db, query=query), options(tmp_path))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert nothing_written(tmp_path)


def test_since_column_missing_or_uncomparable(tmp_path):
    db = make_db(tmp_path / "his.db", rows=5)
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE consult ADD COLUMN 附件 BLOB")
        connection.execute("UPDATE consult SET 附件 = x'00ff'")
    with pytest.raises(SourceError, match="no column '修改时间' \\(--since-column\\)"):
        convert_sql(source(db, since_column="修改时间"), options(tmp_path))
    query = "SELECT 问题, 回答, 附件 FROM consult"
    with pytest.raises(SourceError, match="--since-column 附件: its values \\(bytes\\) cannot"):
        convert_sql(source(db, query=query, since_column="附件"), options(tmp_path))
    assert not (tmp_path / "ds" / "dataset_info.json").exists()
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name != ".dataset_info.json.lock"]


def test_connection_error_is_one_line(tmp_path):
    missing = tmp_path / "no" / "such" / "his.db"
    with pytest.raises(SourceError, match="cannot connect to sqlite:///.*unable to open"):
        convert_sql(source(missing), options(tmp_path))
    assert nothing_written(tmp_path)


def test_an_incremental_run_keeps_the_placement_settings(tmp_path):
    db = make_db(tmp_path / "his.db", rows=20)
    convert_sql(source(db, since_column="更新时间"), options(tmp_path))
    with pytest.raises(SourceError, match="built with seed 42 \\(now 7\\).*--full"):
        convert_sql(source(db, since_column="更新时间"), options(tmp_path, seed=7))


def test_password_comes_from_the_environment_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("HIS_PASSWORD", "s3cret:pw@x")
    url = "postgresql://reader@127.0.0.1:1/his"  # nothing listens on port 1
    database = Database(SqlSource(url, table="consult", password_env="HIS_PASSWORD"))
    assert database.shown == url
    assert database.masked("password s3cret:pw@x rejected") == "password *** rejected"
    with pytest.raises(SourceError) as raised, database.rows():
        pass
    assert "cannot connect to postgresql://reader@127.0.0.1:1/his" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    with pytest.raises(SourceError, match=r"reader:\*\*\*@.*holds a password.*--password-env"):
        Database(SqlSource("mysql+pymysql://reader:hunter2@his/qa", table="t"))
    with pytest.raises(SourceError, match="--password-env NOT_SET_ANYWHERE: the variable is not"):
        Database(SqlSource(url, table="t", password_env="NOT_SET_ANYWHERE"))


def test_the_mark_keeps_its_type():
    import datetime as dt
    import decimal

    for value in (
        dt.datetime(2024, 3, 1, 8, 30, tzinfo=dt.UTC), dt.date(2024, 3, 1), 17, 2.5,
        decimal.Decimal("10.25"), "2024-03-01",
    ):  # fmt: skip
        assert decode_mark(encode_mark(value)) == value
    high = HighWater("t", 0)
    high.update([(3,), (None,), (decimal.Decimal("7.5"),)])
    high.update([(2.0,)])
    assert high.value == decimal.Decimal("7.5")
    with pytest.raises(UncomparableMark):
        high.update([("2024",)])


def test_cli_converts_and_prints_the_database_summary(tmp_path):
    db = make_db(tmp_path / "his.db", rows=50)
    args = [
        "data", "convert", "sql", f"sqlite:///{db}", "--query", QUERY, "--column", QA[0],
        "--column", QA[1], "--since-column", "更新时间", "--deid", "basic", "--name", "cardio",
        "--dataset-dir", str(tmp_path / "ds"), "--workers", "1",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["database"]["new"] == 35 and summary["database"]["rejected"] == 5
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "already present" in result.output
    result = CliRunner().invoke(cli, [*args, "--password-env", "HOME"])
    assert (
        result.output
        == f"Error: --password-env: sqlite:///{db} is a file, which takes no password\n"
    )
    result = CliRunner().invoke(cli, [*args[:4], "--table", "nowhere", *args[6:]])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    assert "the table nowhere cannot be read: no such table: nowhere" in result.output
    result = CliRunner().invoke(cli, [*args, "--table", "consult"])
    assert "say what to read: --query SQL or --table NAME (one of them)" in result.output
