"""Schema 6: each gateway exchange keeps the recorded version (NAME@VERSION) its arm was
named by; a store written at schema 5 gains the column on open and keeps its exchanges."""

from __future__ import annotations

import sqlalchemy as sa

from deploy.gateway import Arm, Exchange
from medfactory.ab.recorder import StoreRecorder, exchanges_since
from medfactory.store.db import open_store

QUESTION = [{"role": "user", "content": "头痛"}]


def test_a_schema_5_store_gains_the_model_version_of_its_exchanges(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    old = open_store(url)
    StoreRecorder(old, "ab", [Arm("a", "http://h", "m")]).record(
        Exchange("ab", "u1", "a", "m", "c1", QUESTION, False)
    )
    with old.engine.begin() as connection:  # back to what schema 5 wrote
        connection.execute(sa.text("alter table exchanges drop column model_version"))
        connection.execute(sa.text("update medfactory_meta set value = '5'"))
    old.close()

    store = open_store(url)
    arm = Arm("a", "http://h", "tiny-med", version="tiny-med@3")
    StoreRecorder(store, "ab", [arm]).record(
        Exchange("ab", "u2", "a", "tiny-med", "c2", QUESTION, False, model_version=arm.version)
    )
    with store.engine.connect() as connection:
        version = connection.execute(sa.text("select value from medfactory_meta")).scalar()
    rows = exchanges_since(store, "ab")
    assert version == "6"
    assert [(r["user"], r["model_version"]) for r in rows] == [("u1", None), ("u2", "tiny-med@3")]
    store.close()
