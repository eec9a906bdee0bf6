"""Users, the audit chain and a purge on both databases (store_url: SQLite and a real
PostgreSQL); the SQLite-only details are in tests/unit/test_access.py."""

import hashlib
import time

import sqlalchemy as sa
from click.testing import CliRunner

from deploy.gateway import Arm, Exchange, Feedback
from medfactory.ab.purge import purge_conversations
from medfactory.ab.recorder import StoreRecorder
from medfactory.ab.report import build_ab_report
from medfactory.access.audit import record, verify
from medfactory.access.users import add_user, disable_user, list_users, new_token, user_for_token
from medfactory.cli import cli
from medfactory.store.db import open_store

INJECTION = "x'); DROP TABLE users; --"


def test_users_audit_and_purge_hold_on_both_databases(store_url):
    store = open_store(store_url)
    _boss, boss = add_user(store, "boss", "admin")
    _odd, odd = add_user(store, INJECTION, "clinician", email=INJECTION)
    with store.engine.connect() as connection:
        hashes = connection.execute(sa.text("select token_hash from users")).scalars().all()
    assert sorted(hashes) == sorted(hashlib.sha256(t.encode()).hexdigest() for t in (boss, odd))
    fresh = new_token(store, INJECTION)
    assert user_for_token(store, odd) is None and user_for_token(store, fresh).name == INJECTION
    disable_user(store, INJECTION)
    assert user_for_token(store, fresh) is None and len(list_users(store)) == 2

    recorder = StoreRecorder(store, "ab", [Arm("a", "http://h", "m")])
    for n in range(4):
        recorder.record(Exchange(
            "ab", "u1", "a", "m", f"c{n}", [{"role": "user", "content": f"secret {n}"}], False,
            started=time.time() - (200 if n < 2 else 0) * 86400, completion_id=f"id{n}",
            answer="a", latency=1.0 + n,
        ))  # fmt: skip
        recorder.feedback(Feedback(f"id{n}", "u1", 1, f"fix {n}", ""))
    before = {k: v for k, v in build_ab_report(store, "ab").items() if k != "generated_at"}
    assert purge_conversations(store, "ab", time.time() - 90 * 86400, "boss")["exchanges"] == 2
    after = {k: v for k, v in build_ab_report(store, "ab").items() if k != "generated_at"}
    assert after == before

    for n in range(3):
        record(store, INJECTION, "export", INJECTION, {"rows": n})
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "--as", "boss", "--db", store_url])
    assert ok.exit_code == 0 and ok.output.startswith(
        f"{verify(store).count} entries, chain intact;"
    )
    with store.engine.begin() as connection:
        connection.execute(sa.text("update audit set target = 'elsewhere' where id = 3"))
    broken = runner.invoke(cli, ["audit", "verify", "--as", "boss", "--db", store_url])
    assert broken.exit_code == 1 and "entry 3 (" in broken.output
    refused = runner.invoke(cli, ["ab", "report", "--as", INJECTION, "--db", store_url])
    assert refused.exit_code == 1 and "403" in refused.output
