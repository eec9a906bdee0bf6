"""The feedback store: one SQLAlchemy schema on SQLite (embedded default) or PostgreSQL.

Every review command takes `--db URL`; without it the store is one SQLite file
under saves/review/ in WAL mode, where each transaction takes the write lock
at its start (BEGIN IMMEDIATE), so concurrent submissions queue instead of
failing. The schema carries its version in `medfactory_meta`: a store written
by an older medfactory is upgraded in place by the steps in MIGRATIONS (Alembic
operations, which work on both databases); a store from a newer one is refused.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from medfactory.review.errors import StoreError

SCHEMA_VERSION = 6
DEFAULT_DB = "saves/review/review.db"
# A stored verdict is relative to the item's pair of versions, never to what was shown.
VERDICTS = ("left", "right", "tie", "both_bad")
# A study of single answers (a model's drafts): each is accepted, edited or rejected.
SINGLE_VERDICTS = ("accept", "edit", "reject")
STUDY_KINDS = ("pair", "single")


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class Meta(Base):
    __tablename__ = "medfactory_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    seed: Mapped[int] = mapped_column(Integer)
    overlap: Mapped[int] = mapped_column(Integer)
    axes: Mapped[list] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(16), default="pair", server_default="pair")


class Version(Base):
    __tablename__ = "versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    name: Mapped[str] = mapped_column(String(256))  # shown in the lead's report only
    path: Mapped[str] = mapped_column(Text)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("study_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1..N, what raters and sheets call it
    line: Mapped[int] = mapped_column(Integer)  # its line in the prediction files
    conversation: Mapped[list] = mapped_column(JSON)  # chat messages, ending with the question
    left_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    right_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    left_answer: Mapped[str] = mapped_column(Text)  # a single-answer study: the answer
    right_answer: Mapped[str] = mapped_column(Text)  # ... and "" here
    # a draft's origin (id, file, chunk, character range, the chunk's text), for the reviewer
    source: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Rater(Base):
    __tablename__ = "raters"
    __table_args__ = (UniqueConstraint("study_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # rater | arbiter
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("item_id", "rater_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    left_first: Mapped[bool] = mapped_column(Boolean)  # "Answer 1" is the left version


class Rating(Base):
    """One submission; a revision adds a row and clears `current` on the earlier ones."""

    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    verdict: Mapped[str] = mapped_column(String(16))  # VERDICTS
    scores: Mapped[dict] = mapped_column(JSON)  # axis -> [left score, right score]
    correction: Mapped[str] = mapped_column(Text, default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # page | sheet
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    submit_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)


class Arbitration(Base):
    __tablename__ = "arbitrations"
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    verdict: Mapped[str] = mapped_column(String(16))
    correction: Mapped[str] = mapped_column(Text, default="", server_default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    submit_key: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)


class Experiment(Base):
    """A live A/B experiment behind the gateway (`--name`)."""

    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    arms: Mapped[list] = mapped_column(JSON)  # [{name, endpoint, model, weight}] at the last start


class ArmUser(Base):
    """Which arm a user was given: theirs for the life of the experiment."""

    __tablename__ = "arm_users"
    __table_args__ = (UniqueConstraint("experiment_id", "user"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    user: Mapped[str] = mapped_column(String(256))
    arm: Mapped[str] = mapped_column(String(128))
    assigned_at: Mapped[float] = mapped_column(Float, default=time.time)


class ExchangeRow(Base):
    """One request through the gateway and its answer (or its error), as stored (the
    gateway's own record of it is deploy.gateway.Exchange)."""

    __tablename__ = "exchanges"
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    user: Mapped[str] = mapped_column(String(256), index=True)
    arm: Mapped[str] = mapped_column(String(128))
    served_model: Mapped[str] = mapped_column(String(256))
    completion_id: Mapped[str | None] = mapped_column(String(128), index=True, nullable=True)
    conversation: Mapped[str] = mapped_column(String(64))
    messages: Mapped[list] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ttft: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency: Mapped[float | None] = mapped_column(Float, nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    replica: Mapped[str | None] = mapped_column(String(512), nullable=True)
    passages: Mapped[list | None] = mapped_column(JSON, nullable=True)  # a rag arm's sources
    # NAME@VERSION of an arm named by a recorded version: the alias it was named by moves.
    model_version: Mapped[str | None] = mapped_column(String(256), nullable=True)


class ExchangeFeedback(Base):
    """A thumb, correction or comment on one answer; a newer one clears `current`."""

    __tablename__ = "exchange_feedback"
    id: Mapped[int] = mapped_column(primary_key=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id"), index=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 1 up, -1 down
    correction: Mapped[str] = mapped_column(Text, default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)


class UserRow(Base):
    """A person or service of the access directory (medfactory.access.users)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(256), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256, never the token
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class AuditRow(Base):
    """One entry of the append-only audit log; `hash` chains it to the entry before."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


LIVE_AB_TABLES = (Experiment, ArmUser, ExchangeRow, ExchangeFeedback)
ACCESS_TABLES = (UserRow, AuditRow)


def _add_access(operations) -> None:
    Base.metadata.create_all(
        operations.get_bind(), tables=[model.__table__ for model in ACCESS_TABLES]
    )


def _add_live_ab(operations) -> None:
    Base.metadata.create_all(
        operations.get_bind(), tables=[model.__table__ for model in LIVE_AB_TABLES]
    )


def _add_single_answer_studies(operations) -> None:
    from sqlalchemy import Column

    operations.add_column(
        "studies", Column("kind", String(16), nullable=False, server_default="pair")
    )
    operations.add_column("items", Column("source", JSON, nullable=True))
    operations.add_column(
        "arbitrations", Column("correction", Text, nullable=False, server_default="")
    )


def _add_replicas_and_passages(operations) -> None:
    from sqlalchemy import Column

    # A store from before version 2 got its exchanges table, these columns included,
    # from the current models in step 2.
    present = {c["name"] for c in inspect(operations.get_bind()).get_columns("exchanges")}
    for column in (Column("replica", String(512), nullable=True),
                   Column("passages", JSON, nullable=True)):  # fmt: skip
        if column.name not in present:
            operations.add_column("exchanges", column)


def _add_model_versions(operations) -> None:
    from sqlalchemy import Column

    present = {c["name"] for c in inspect(operations.get_bind()).get_columns("exchanges")}
    if "model_version" not in present:  # as above: step 2 made it from the current models
        operations.add_column("exchanges", Column("model_version", String(256), nullable=True))


# Version N's step takes a store at N - 1 to N: `step(operations)` with Alembic's
# Operations bound to the open connection.
MIGRATIONS: dict[int, Callable] = {
    2: _add_live_ab, 3: _add_single_answer_studies, 4: _add_replicas_and_passages,
    5: _add_access, 6: _add_model_versions,
}  # fmt: skip


class Store:
    """An open store: `with store.session() as s:` is one transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def default_url(root: Path) -> str:
    return f"sqlite:///{root / DEFAULT_DB}"


def open_store(url: str) -> Store:
    """Open (creating or upgrading) the store at `url`; StoreError with what to do."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"--db {url!r}: not a database URL; e.g. sqlite:///saves/review/review.db "
            "or postgresql://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # hide_parameters: an error message never quotes a prompt, an answer or a rating.
    engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        _serialise_sqlite_writes(engine)
    try:
        _prepare(engine)
    except OperationalError as error:
        engine.dispose()
        raise StoreError(f"cannot open the store {url}: {error.orig}") from None
    return Store(engine)


def _serialise_sqlite_writes(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(connection, _record) -> None:
        connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL's recommended setting: a commit survives the process being killed; only a
        # power cut can undo the last ones. FULL would fsync on every exchange recorded.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _prepare(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    if not tables:
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            session.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
        return
    if Meta.__tablename__ not in tables:
        raise StoreError(
            f"{engine.url.render_as_string(hide_password=True)} holds tables but is no "
            "medfactory store; pass another --db"
        )
    with Session(engine) as session:
        row = session.scalar(select(Meta).where(Meta.key == "schema_version"))
    version = int(row.value) if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store at {engine.url.render_as_string(hide_password=True)} has schema "
            f"{version}, newer than this medfactory's {SCHEMA_VERSION}; upgrade medfactory"
        )
    if version < SCHEMA_VERSION:
        _upgrade(engine, version)


def _upgrade(engine: Engine, version: int) -> None:
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as connection:
        operations = Operations(MigrationContext.configure(connection))
        for step in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[step](operations)
        connection.execute(
            Meta.__table__.update()
            .where(Meta.key == "schema_version")
            .values(value=str(SCHEMA_VERSION))
        )
