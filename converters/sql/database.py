"""Reaching a database: its URL with the password taken from the environment and shown
masked, the query (a table, or the user's own, filtered by the high-water mark), rows
streamed in chunks through a server-side cursor, and the database's own errors as one
line each.

The password never comes from the command line, where `ps` shows it to every user of
the machine: it comes from `--password-env VAR` or from the driver's own environment
(PGPASSWORD, ~/.pgpass, ...). Every message is passed through `Database.masked`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from converters.records import SourceError

MASK = "***"
DEFAULT_CHUNK_ROWS = 2000
# The plain backend names whose SQLAlchemy default driver is seldom installed, and the
# driver the project installs instead (import name, drivername).
_DRIVERS = {
    "postgresql": ("psycopg2", "postgresql+psycopg"),
    "mysql": ("MySQLdb", "mysql+pymysql"),
    "mariadb": ("MySQLdb", "mariadb+pymysql"),
}
_INLINE_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")
_ALIAS = "medfactory_rows"  # the user's query, as a derived table the mark filters
_MARK = "medfactory_mark"


class DatabaseError(SourceError):
    """The database cannot be reached or read; the message is one line, password masked."""


@dataclass(frozen=True)
class SqlSource:
    """What to read: a database URL and a table or a query, and how."""

    url: str
    query: str | None = None
    table: str | None = None
    password_env: str | None = None  # the variable holding the password
    since_column: str | None = None  # the column whose largest value is the high-water mark
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @property
    def what(self) -> str:
        return f"table {self.table}" if self.table else "query"


def mask_inline(text: str) -> str:
    """`text` with any user:password@ of a URL in it masked."""
    return _INLINE_PASSWORD.sub(rf"\g<1>{MASK}@", text)


def one_line(error: BaseException) -> str:
    """The first line of a driver's message: the database's own words, without the
    LINE/HINT lines and the SQLAlchemy background link that follow."""
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__


class Database:
    """An engine on the source's URL (no connection is made until `rows`)."""

    def __init__(self, source: SqlSource):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
        from sqlalchemy.pool import NullPool

        self.source = source
        self.password: str | None = None
        try:
            url = make_url(source.url)
        except ArgumentError:
            raise DatabaseError(
                f"{mask_inline(source.url)!r}: not a database URL; e.g. "
                "postgresql://reader@host/db, mysql+pymysql://reader@host/db, sqlite:///his.db"
            ) from None
        self.shown = url.render_as_string(hide_password=True)
        if url.password is not None:
            raise DatabaseError(
                f"{self.shown}: the URL holds a password, which every user of this machine "
                "can read with ps; put it in an environment variable and pass --password-env VAR"
            )
        if source.password_env and url.get_backend_name() == "sqlite":
            raise DatabaseError(f"--password-env: {self.shown} is a file, which takes no password")
        if source.password_env:
            self.password = os.environ.get(source.password_env)
            if self.password is None:
                raise DatabaseError(
                    f"--password-env {source.password_env}: the variable is not set; "
                    f"export {source.password_env}=... first"
                )
            url = url.set(password=self.password)
        default = _DRIVERS.get(url.drivername)
        if default and importlib.util.find_spec(default[0]) is None:
            url = url.set(drivername=default[1])
        try:
            # hide_parameters: no message quotes a bound value; NullPool: no idle connection
            # stays open once the rows are read.
            self.engine = create_engine(url, hide_parameters=True, poolclass=NullPool)
        except NoSuchModuleError:
            raise DatabaseError(
                f"{self.shown}: no SQLAlchemy dialect {url.drivername!r} is installed "
                "(e.g. pip install pyhive for hive://, oracledb for oracle+oracledb://)"
            ) from None
        except ImportError as error:
            raise DatabaseError(
                f"{self.shown}: the driver of {url.drivername} is not installed ({error})"
            ) from None

    def masked(self, text: str) -> str:
        if self.password:
            text = text.replace(self.password, MASK)
        return mask_inline(text)

    def fail(self, what: str, error: BaseException) -> DatabaseError:
        return DatabaseError(self.masked(f"{self.shown}: {what}: {one_line(error)}"))

    def quoted(self, name: str) -> str:
        """A table or column name quoted for this database (schema.table kept apart)."""
        preparer = self.engine.dialect.identifier_preparer
        return ".".join(preparer.quote(part) for part in name.split("."))

    def statement(self, mark: object = None) -> tuple[str, dict]:
        """The SQL to run and its parameters: the table or query, and with a mark only the
        rows at or past it (those at it again: rows written in the same instant as the
        last run's newest come through, and the content hash says which are present)."""
        source = self.source
        if source.table:
            base = f"SELECT * FROM {self.quoted(source.table)}"
        else:  # a colon in the user's SQL is text, not a bind parameter
            base = source.query.strip().rstrip(";").replace(":", "\\:")
        if mark is None:
            return base, {}
        column = self.quoted(source.since_column)
        return f"SELECT * FROM ({base}) {_ALIAS} WHERE {_ALIAS}.{column} >= :{_MARK}", {_MARK: mark}

    @contextlib.contextmanager
    def rows(self, mark: object = None) -> Iterator[tuple[list[str], Iterator[list]]]:
        """(the result's column names, its rows in lists of at most chunk_rows), read
        through a server-side cursor, so that a table of millions of rows is never held."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            connection = self.engine.connect()
        except SQLAlchemyError as error:
            raise DatabaseError(
                self.masked(f"cannot connect to {self.shown}: {one_line(error)}")
            ) from None
        try:
            sql, parameters = self.statement(mark)
            size = self.source.chunk_rows
            streaming = connection.execution_options(stream_results=True, yield_per=size)
            try:
                result = streaming.execute(text(sql), parameters)
            except SQLAlchemyError as error:
                raise self.fail(f"the {self.source.what} cannot be read", error) from None
            yield list(result.keys()), self._batches(result, size)
        finally:
            with contextlib.suppress(SQLAlchemyError):
                connection.close()
            self.engine.dispose()

    def _batches(self, result, size: int) -> Iterator[list]:
        from sqlalchemy.exc import SQLAlchemyError

        partitions = result.partitions(size)
        while True:
            try:
                batch = next(partitions, None)
            except SQLAlchemyError as error:
                raise self.fail(f"reading the {self.source.what} failed", error) from None
            if batch is None:
                return
            yield batch
