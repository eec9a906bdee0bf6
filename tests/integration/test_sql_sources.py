"""`medfactory data convert sql` against real servers: the tests' PostgreSQL and a MariaDB
of our own, with Chinese column names, utf8mb4 text, a password from the environment,
planted identifiers, and a second run that adds exactly the new rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from deploy.process import free_port

REPO = Path(__file__).resolve().parents[2]
MEDFACTORY = REPO / ".venv" / "bin" / "medfactory"
PASSWORD = "pw:with@odd/chars"
CREATE = (
    "CREATE TABLE 问诊记录 (编号 INTEGER PRIMARY KEY, 问题 VARCHAR(500), 回答 VARCHAR(500), "
    "科室 VARCHAR(20), 更新时间 TIMESTAMP{null})"
)
# Identifiers a hospital export holds, each to come out replaced; medicines that must stay.
PLANTED = [
    ("患者宰超，住院号20240311，胸闷两天。", "宰超", "20240311"),
    ("我是双娟娟，电话13912345678，心慌怎么办？", "双娟娟", "13912345678"),
    ("莘平女士，身份证110105194912310021，血压高。", "莘平", "110105194912310021"),
]
KEPT = "可用王不留行、白术，高血压者慎用常山。😀"  # 😀: four bytes in UTF-8 (utf8mb4)


def _mariadb_binary(name: str) -> str:
    for folder in ("/usr/sbin", "/usr/bin"):
        if Path(folder, name).exists():
            return str(Path(folder, name))
    pytest.fail(f"MariaDB's {name} not found; `make install` installs Debian's mariadb-server")


@pytest.fixture(scope="session")
def mariadb_server():
    """A MariaDB server of our own in a temporary folder, on a loopback port, with a
    user `reader` whose password is PASSWORD. As root, it runs as the `mysql` user."""
    folder = Path(tempfile.mkdtemp(prefix="medfactory-mariadb-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(folder, "mysql", "mysql")
        as_user = ["--user=mysql"]
    subprocess.run(
        [_mariadb_binary("mariadb-install-db"), "--no-defaults", f"--datadir={folder / 'data'}",
         "--auth-root-authentication-method=normal", "--skip-test-db", *as_user],
        check=True, capture_output=True,
    )  # fmt: skip
    port, socket = free_port(), folder / "mariadb.sock"
    server = subprocess.Popen(
        [_mariadb_binary("mariadbd"), "--no-defaults", f"--datadir={folder / 'data'}",
         f"--socket={socket}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--pid-file={folder / 'mariadb.pid'}", f"--log-error={folder / 'error.log'}",
         "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--character-set-server=utf8mb4",
         "--collation-server=utf8mb4_unicode_ci", *as_user],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        import pymysql

        for _ in range(120):
            try:
                root = pymysql.connect(unix_socket=str(socket), user="root", charset="utf8mb4")
                break
            except pymysql.err.OperationalError:
                if server.poll() is not None:
                    pytest.fail(f"mariadbd stopped: {(folder / 'error.log').read_text()[-2000:]}")
                time.sleep(0.25)
        else:
            pytest.fail("mariadbd did not answer in 30 s")
        with root.cursor() as cursor:
            cursor.execute("CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY %s", (PASSWORD,))
            cursor.execute("GRANT ALL ON *.* TO 'reader'@'127.0.0.1'")
        root.close()
        yield f"mysql+pymysql://reader@127.0.0.1:{port}", socket
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


class MariaDB:
    def __init__(self, server):
        import pymysql

        url, socket = server
        self.name = f"his_{uuid.uuid4().hex[:8]}"
        self.connection = pymysql.connect(
            unix_socket=str(socket), user="root", charset="utf8mb4", autocommit=True
        )
        self.execute(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
        self.connection.select_db(self.name)
        self.url = f"{url}/{self.name}?charset=utf8mb4"
        self.create = CREATE.format(null=" NULL")

    def execute(self, sql: str, rows=None) -> None:
        with self.connection.cursor() as cursor:
            if rows is None:
                cursor.execute(sql)
            else:
                cursor.executemany(sql.replace("?", "%s"), rows)


class PostgreSQL:
    def __init__(self, server: str):
        import psycopg

        self.name = f"his_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {self.name} ENCODING 'UTF8'")
        self.connection = psycopg.connect(f"{server}/{self.name}", autocommit=True)
        self.url = f"{server}/{self.name}"
        self.create = CREATE.format(null="")

    def execute(self, sql: str, rows=None) -> None:
        if rows is None:
            self.connection.execute(sql)
        else:
            with self.connection.cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), rows)


@pytest.fixture(params=["mariadb", "postgresql"])
def database(request):
    if request.param == "mariadb":
        db = MariaDB(request.getfixturevalue("mariadb_server"))
        env = {"HIS_PASSWORD": PASSWORD}
    else:
        db = PostgreSQL(request.getfixturevalue("postgres_server"))
        env = {}  # the tests' PostgreSQL trusts loopback connections
    db.execute(db.create)
    db.env = env
    return db


def rows(start: int, count: int, day: int) -> list[tuple]:
    """`count` consultations of 心内科 and as many of 骨科; one in ten without an answer;
    the first ones carry the planted identifiers."""
    out = []
    for i in range(start, start + count):
        question = f"第{i}例：活动后胸闷，{i % 9 + 1}天。"
        if i - start < len(PLANTED):
            question = PLANTED[i - start][0] + f"（{i}）"
        answer = None if i % 10 == 7 else f"{KEPT}（{i}）"
        stamp = f"2024-03-{day:02d} {8 + i % 10:02d}:{i % 60:02d}:00"
        out.append((i, question, answer, "心内科", stamp))
        out.append((100_000 + i, f"膝痛{i}", "理疗。", "骨科", stamp))
    return out


INSERT = "INSERT INTO 问诊记录 (编号, 问题, 回答, 科室, 更新时间) VALUES (?, ?, ?, ?, ?)"
QUERY = "SELECT 问题, 回答, 科室, 更新时间 FROM 问诊记录 WHERE 科室 = '心内科'"


def convert(db, out: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [
        str(MEDFACTORY), "data", "convert", "sql", db.url, "--query", QUERY,
        "--column", "question=问题", "--column", "answer=回答", "--column", "system=科室",
        "--since-column", "更新时间", "--deid", "strict", "--name", "cardio",
        "--dataset-dir", str(out), "--chunk-rows", "64", "--json", *extra,
    ]  # fmt: skip
    if db.env:
        args += ["--password-env", "HIS_PASSWORD"]
    return subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, **db.env}, cwd=REPO
    )


def split_lines(out: Path) -> dict[str, list[str]]:
    return {
        path.stem.removeprefix("cardio_"): path.read_text(encoding="utf-8").splitlines()
        for path in sorted(out.glob("cardio_*.jsonl"))
    }


def test_second_run_adds_exactly_the_new_rows(database, tmp_path):
    out = tmp_path / "datasets"
    database.execute(INSERT, rows(0, 400, day=1))
    first = convert(database, out)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)["database"]
    assert (summary["new"], summary["already_present"], summary["rejected"]) == (360, 0, 40)
    assert summary["mode"] == "full"
    before = split_lines(out)
    text = "\n".join(line for lines in before.values() for line in lines)
    for _, *identifiers in PLANTED:
        for identifier in identifiers:
            assert identifier not in text
    assert KEPT in json.loads(before["train"][0])["conversations"][1]["value"]
    assert PASSWORD not in first.stdout + first.stderr
    assert PASSWORD not in (out / "cardio.source.json").read_text(encoding="utf-8")

    database.execute(INSERT, rows(1000, 100, day=2))  # 100 new rows of the query
    second = convert(database, out)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)["database"]
    assert summary["mode"] == "incremental"
    at_mark = 6  # day 1, 17:59: rows 59, 119, ... 359 are read again, and found present
    assert (summary["new"], summary["already_present"], summary["rejected"]) == (90, at_mark, 10)
    assert summary["high_water_mark"]["after"] == {
        "type": "datetime",
        "value": "2024-03-02T17:59:00",
    }
    after = split_lines(out)
    for split, lines in before.items():  # no record written before moved split
        assert after[split][: len(lines)] == lines
    assert sum(map(len, after.values())) == 360 + 90
    registry = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert sorted(registry) == [f"cardio_{split}" for split in sorted(after)]


def test_errors_are_the_database_own_one_line(database, tmp_path):
    out = tmp_path / "datasets"
    database.execute(INSERT, rows(0, 10, day=1))
    broken = convert(database, out, "--query", "SELECT 问题, 回答 FROM 不存在的表")
    assert broken.returncode == 1
    message = broken.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "the query cannot be read" in message and "不存在的表" in message
    missing = convert(database, out, "--query", "SELECT 问题, 科室, 更新时间 FROM 问诊记录")
    assert "no column '回答' (mapped to answer by --column)" in missing.stderr
    assert not out.exists() or not list(out.glob("*.json*"))


def test_a_wrong_password_is_never_printed(mariadb_server, tmp_path):
    db = MariaDB(mariadb_server)
    db.execute(db.create)
    db.env = {"HIS_PASSWORD": "wrong-" + PASSWORD}
    result = convert(db, tmp_path / "datasets")
    assert result.returncode == 1
    assert "cannot connect to mysql+pymysql://reader@127.0.0.1" in result.stderr
    assert "Access denied for user 'reader'" in result.stderr
    assert "wrong-" not in result.stderr and PASSWORD not in result.stderr
