"""Users, roles, the audit chain and retention, on SQLite (PostgreSQL: tests/integration/
test_access_postgres.py)."""

import hashlib
import json
import sqlite3
import time

import pytest
from click.testing import CliRunner

from deploy.gateway import Arm, Exchange, Feedback
from medfactory.ab.purge import purge_conversations
from medfactory.ab.recorder import StoreRecorder
from medfactory.ab.report import build_ab_report
from medfactory.access.audit import entries, record, verify
from medfactory.access.errors import AccessError, Forbidden
from medfactory.access.roles import acting_user
from medfactory.access.users import (
    add_user,
    disable_user,
    list_users,
    new_token,
    user_for_token,
)
from medfactory.cli import cli
from medfactory.store.db import open_store

INJECTIONS = ("x'); DROP TABLE users; --", "' OR '1'='1", 'a"; DELETE FROM audit; --')


@pytest.fixture
def db(tmp_path):
    return tmp_path / "store.db"


@pytest.fixture
def store(db):
    return open_store(f"sqlite:///{db}")


def run(db, *args):
    return CliRunner().invoke(cli, [*args, "--db", f"sqlite:///{db}"])


def prediction_files(folder, count: int) -> list:
    """Two versions' generated_predictions.jsonl over the same `count` prompts."""
    rows = [{"prompt": f"<|im_start|>user\nq{i}<|im_end|>\n<|im_start|>assistant\n",
             "predict": "{v} " + str(i), "label": ""} for i in range(count)]  # fmt: skip
    files = []
    for version in ("a", "b"):
        path = folder / version / "generated_predictions.jsonl"
        path.parent.mkdir()
        path.write_text("".join(json.dumps(r) + "\n" for r in rows).replace("{v}", version))
        files.append(path)
    return files


def test_a_token_is_stored_only_as_its_sha256(store, db):
    user, token = add_user(store, "dr.li", "clinician", "li@example.org")
    assert user.role == "clinician" and len(token) >= 40
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert token not in dump and hashlib.sha256(token.encode()).hexdigest() in dump
    assert user_for_token(store, token) == user


def test_a_replaced_or_disabled_token_is_refused(store):
    _user, first = add_user(store, "dr.li", "clinician")
    second = new_token(store, "dr.li")
    assert user_for_token(store, first) is None and user_for_token(store, second).name == "dr.li"
    disable_user(store, "dr.li")
    assert user_for_token(store, second) is None
    assert user_for_token(store, "") is None and user_for_token(store, "forged") is None


def test_an_unknown_role_or_a_second_user_of_one_name_is_one_message(store):
    with pytest.raises(AccessError, match="--role 'doctor'"):
        add_user(store, "dr.li", "doctor")
    add_user(store, "dr.li", "clinician")
    with pytest.raises(AccessError, match="exists; `medfactory users link dr.li`"):
        add_user(store, "dr.li", "lead")
    with pytest.raises(AccessError, match="no user 'nobody'"):
        new_token(store, "nobody")


def test_sql_injection_strings_land_as_text(store, db):
    for text in INJECTIONS:
        add_user(store, text, "rater", email=text)
        record(store, text, "user-added", text, {"note": text})
    assert sorted(u.name for u in list_users(store)) == sorted(INJECTIONS)
    assert [u.email for u in list_users(store)] == [u.name for u in list_users(store)]
    assert verify(store).count == len(INJECTIONS) and verify(store).broken is None


def test_roles_refuse_what_they_may_not_and_a_store_without_users_records_the_os_user(store):
    assert acting_user(store, None, "export")  # no users yet: as today
    add_user(store, "boss", "admin")
    for name, role in (("doc", "clinician"), ("rita", "rater"), ("lee", "lead")):
        add_user(store, name, role)
    for name in ("doc", "rita"):
        for permission in ("report", "export", "users", "audit", "purge"):
            with pytest.raises(Forbidden, match=f"403: {name} is a"):
                acting_user(store, name, permission)
    assert acting_user(store, "lee", "export") == "lee"
    with pytest.raises(Forbidden, match="purge needs a role of admin"):
        acting_user(store, "lee", "purge")
    assert acting_user(store, "boss", "purge") == "boss"
    with pytest.raises(AccessError, match="--as NAME"):
        acting_user(store, None, "report")
    disable_user(store, "lee")
    with pytest.raises(Forbidden, match="no enabled user"):
        acting_user(store, "lee", "report")


def test_users_add_json_prints_name_role_link_and_token_and_the_link_ends_with_it(db):
    result = run(db, "users", "add", "boss", "--role", "admin", "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert set(made) == {"name", "role", "link", "token"} and made["role"] == "admin"
    assert made["link"] == f"http://127.0.0.1:7870/signin/{made['token']}"
    link = run(db, "users", "link", "boss", "--url", "https://h.example/", "--as", "boss")
    assert link.output.startswith("https://h.example/signin/") and made["token"] not in link.output


def test_the_cli_refuses_a_role_in_one_line_and_records_who_acted(db):
    assert run(db, "users", "add", "boss", "--role", "admin").exit_code == 0
    assert run(db, "users", "add", "doc", "--role", "clinician", "--as", "boss").exit_code == 0
    refused = run(db, "users", "add", "x", "--role", "clinician")  # an admin exists: --as
    assert refused.exit_code == 1 and "--as NAME" in refused.output
    for args in (("review", "export", "s1", "--name", "n"), ("ab", "report"),
                 ("ab", "export", "--name", "n"), ("ab", "purge", "--older-than", "90d"),
                 ("review", "report", "s1"), ("users", "list"), ("audit", "list"),
                 ("audit", "verify")):  # fmt: skip
        result = run(db, *args, "--as", "doc")
        assert result.exit_code == 1, (args, result.output)
        assert result.output.strip().count("\n") == 0 and "403: doc is a clinician" in result.output
    listed = run(db, "audit", "list", "--json", "--as", "boss")
    actions = [(e["actor"], e["action"], e["target"]) for e in json.loads(listed.output)]
    assert ("boss", "user-added", "doc") in actions


def test_audit_verify_finds_an_edited_a_deleted_and_a_reordered_row(store, db):
    for n in range(5):
        record(store, f"user{n}", "export", f"target{n}", {"rows": n})
    result = run(db, "audit", "verify")
    assert result.exit_code == 0 and result.output.startswith("5 entries, chain intact; head ")

    def broken_after(sql):
        with sqlite3.connect(db) as connection:
            connection.executescript(sql)
        out = run(db, "audit", "verify")
        assert out.exit_code == 1 and "Traceback" not in out.output
        return out.output

    saved = sqlite3.connect(db).execute("select * from audit").fetchall()

    def restore():
        with sqlite3.connect(db) as connection:
            connection.execute("delete from audit")
            connection.executemany(f"insert into audit values ({','.join('?' * 8)})", saved)
        assert run(db, "audit", "verify").exit_code == 0

    assert "entry 3 (" in broken_after("update audit set target = 'elsewhere' where id = 3")
    restore()
    assert "entry 2 (" in broken_after("update audit set actor = 'someone' where id = 2")
    restore()
    assert "entry 4 (" in broken_after("update audit set details = '{\"rows\": 99}' where id = 4")
    restore()
    deleted = broken_after("delete from audit where id = 2")
    assert "entry 3 (" in deleted and "entry 2 is missing" in deleted
    restore()
    # Reordered: rows 2 and 3 swap places (each keeps its own hash).
    swapped = broken_after(
        "update audit set id = -2 where id = 2; update audit set id = 2 where id = 3;"
        "update audit set id = 3 where id = -2;"
    )
    assert "entry 2 (" in swapped


def test_an_anchor_kept_outside_catches_the_newest_entries_deleted_or_the_chain_rewritten(
    store, db, tmp_path
):
    for n in range(4):
        record(store, f"user{n}", "export", f"target{n}")
    kept = tmp_path / "worm" / "anchor.json"
    printed = json.loads(run(db, "audit", "anchor", "--out", str(kept)).output)
    assert printed == json.loads(kept.read_text()) and printed["entries"] == 4
    assert printed["head"] == sqlite3.connect(db).execute(
        "select hash from audit where id = 4").fetchone()[0]  # fmt: skip
    record(store, "user4", "export", "target4")  # the log grows after the anchor: still fine
    grown = run(db, "audit", "verify", "--anchor", str(kept))
    assert grown.exit_code == 0 and "5 entries, chain intact, and holds the anchor" in grown.output

    with sqlite3.connect(db) as connection:  # the newest three deleted: the chain still checks
        connection.execute("delete from audit where id >= 3")
    assert run(db, "audit", "verify").exit_code == 0
    deleted = run(db, "audit", "verify", "--anchor", str(kept))
    assert deleted.exit_code == 1 and "Traceback" not in deleted.output
    assert "counted 4 entries and the log holds 2: entries 3 to 4 were deleted" in deleted.output

    # Rewritten: entry 2 changed and the chain's hashes recomputed from it on, as someone
    # with the database and this code could; only the anchor tells.
    from medfactory.access.audit import _digest

    with sqlite3.connect(db) as connection:
        connection.execute("delete from audit where id = 2")
        prev = connection.execute("select hash from audit where id = 1").fetchone()[0]
        at = time.time()
        digest = _digest(prev, 2, at, "user1", "export", "elsewhere", {})
        connection.execute(
            "insert into audit (id, at, actor, action, target, details, prev_hash, hash) "
            "values (2, ?, 'user1', 'export', 'elsewhere', '{}', ?, ?)", (at, prev, digest),
        )  # fmt: skip
    for n in (3, 4):
        record(store, f"user{n}", "export", f"target{n}")
    assert run(db, "audit", "verify").exit_code == 0
    rewritten = run(db, "audit", "verify", "--anchor", str(kept))
    assert rewritten.exit_code == 1 and "entry 4 (" in rewritten.output
    assert "differs from the anchor" in rewritten.output
    kept.write_text("{}")
    bad = run(db, "audit", "verify", "--anchor", str(kept))
    assert bad.exit_code == 1 and f"--anchor {kept}: not an anchor" in bad.output


def test_the_user_commands_are_audited_under_who_ran_them(db):
    run(db, "users", "add", "boss", "--role", "admin")
    run(db, "users", "add", "dr.li", "--role", "clinician", "--as", "boss")
    run(db, "users", "link", "dr.li", "--as", "boss")
    run(db, "users", "disable", "dr.li", "--as", "boss")
    listed = json.loads(
        run(db, "audit", "list", "--json", "--actor", "boss", "--as", "boss").output
    )
    assert [(e["action"], e["target"]) for e in listed] == [
        ("user-added", "dr.li"), ("user-new-link", "dr.li"), ("user-disabled", "dr.li"),
        ("audit-listed", "boss"),  # reading the log is itself an entry
    ]  # fmt: skip
    text = run(db, "users", "list", "--as", "boss").output
    assert "dr.li" in text and "disabled" in text


def _exchanges(store):
    recorder = StoreRecorder(
        store, "ab", [Arm("base", "http://h", "m"), Arm("lora", "http://h", "l")]
    )
    old = time.time() - 200 * 86400
    for n in range(12):
        user, arm = f"doc{n % 4}", ("base", "lora")[n % 2]
        recorder.record(Exchange(
            "ab", user, arm, "m", f"conv{n // 3}",
            [{"role": "user", "content": f"patient 13800138000 question {n}"}], n % 3 == 0,
            started=old if n < 8 else time.time(), completion_id=f"c{n}",
            answer=f"answer {n}", prompt_tokens=10, completion_tokens=n, ttft=0.1 * n,
            latency=0.5 + n, error="boom" if n == 5 else None,
        ))  # fmt: skip
        if n % 2 == 0:
            correction = f"better {n}" if n % 4 == 0 else ""
            recorder.feedback(Feedback(f"c{n}", user, 1 if n % 3 else -1, correction, "note"))


def _figures(report):
    return {k: v for k, v in report.items() if k != "generated_at"}


def test_a_purge_keeps_the_reports_figures_and_drops_the_texts(store, db):
    _exchanges(store)
    before = _figures(build_ab_report(store, "ab"))
    done = purge_conversations(store, "ab", time.time() - 90 * 86400, "boss")
    assert done["exchanges"] == 8
    assert _figures(build_ab_report(store, "ab")) == before
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert (
        "13800138000 question 3" not in dump and "answer 3" not in dump and "better 4" not in dump
    )
    assert "13800138000 question 9" in dump and "better 8" in dump  # newer than the cut: kept
    again = run(db, "ab", "purge", "--older-than", "90d")
    assert again.exit_code == 0 and "purged the texts of 0 exchanges" in again.output
    assert [e["action"] for e in json.loads(run(db, "audit", "list", "--json").output)] == [
        "ab-purge", "ab-purge", "audit-listed",
    ]  # fmt: skip


def test_a_schema_4_store_gains_users_and_audit(db):
    import sqlalchemy as sa

    from medfactory.store.db import ACCESS_TABLES

    old = open_store(f"sqlite:///{db}")
    with old.engine.begin() as connection:  # back to what schema 4 wrote
        for model in ACCESS_TABLES:
            model.__table__.drop(connection)
        connection.execute(sa.text("update medfactory_meta set value = '4'"))
    old.close()
    store = open_store(f"sqlite:///{db}")
    _user, token = add_user(store, "dr.li", "lead")
    record(store, "dr.li", "review-export", "s1")
    assert user_for_token(store, token).name == "dr.li" and verify(store).count == 1
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("select value from medfactory_meta")).scalar() == "6"


def test_a_study_and_an_ab_export_are_audited_with_what_and_how_many_rows(store, db, tmp_path):
    from medfactory.review.studies import StudySpec, create_study

    files = prediction_files(tmp_path, 3)
    create_study(store, StudySpec("s1", files, ["d1", "d2"], overlap=1))
    _exchanges(store)
    add_user(store, "lee", "lead")
    out = run(db, "ab", "export", "--name", "ab_fb", "--dataset-dir", str(tmp_path / "data"),
              "--as", "lee", "--json")  # fmt: skip
    assert out.exit_code == 0, out.output
    written = json.loads(out.output)["written"]
    log = [(e.actor, e.action, e.target, e.details) for e in entries(store)]
    assert log[0][1:3] == ("study-created", "s1") and log[0][3]["raters"] == ["d1", "d2"]
    assert log[1][:3] == ("lee", "ab-export", "ab") and log[1][3]["name"] == "ab_fb"
    assert log[1][3]["rows"] == sum(sum(splits.values()) for splits in written.values()) > 0


def test_studies_and_raters_sheets_are_a_leads_and_recorded_under_them(store, db, tmp_path):
    files = [str(path) for path in prediction_files(tmp_path, 2)]
    add_user(store, "boss", "admin")
    add_user(store, "lee", "lead")
    add_user(store, "doc", "clinician")
    create = ("review", "create", "s2", "--a", files[0], "--b", files[1], "--raters", "d1,d2")
    sheet = tmp_path / "d1.csv"
    steps = (create, ("review", "sheet", "s2", "--rater", "d1", "--out", str(sheet)),
             ("review", "import", "s2", str(sheet), "--rater", "d1"))  # fmt: skip
    for args in steps:
        unnamed = run(db, *args)
        assert unnamed.exit_code == 1 and "--as NAME" in unnamed.output, args
        refused = run(db, *args, "--as", "doc")
        assert refused.exit_code == 1 and "403: doc is a clinician" in refused.output, args
        done = run(db, *args, "--as", "lee")
        assert done.exit_code == 0, (args, done.output)
    assert "--as lee" in run(db, *steps[1], "--as", "lee").output  # the import line to run
    log = [(e.actor, e.action, e.target) for e in entries(store)]
    assert log[:3] == [("lee", "study-created", "s2"), ("lee", "sheet-written", "s2"),
                       ("lee", "sheet-imported", "s2")]  # fmt: skip
    assert entries(store)[1].details == {"rater": "d1", "file": "d1.csv", "rows": 2}
