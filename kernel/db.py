"""The one MetaData of fanmeter, shared column types, and the engine factory.

Alembic autogenerates against ``metadata``; every table of every package is
declared on ``Base`` so there is exactly one schema.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Dialect, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from kernel.instants import from_micros, to_micros

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC instant stored as integer microseconds, identical on SQLite and PostgreSQL."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:  # noqa: ARG002
        return None if value is None else to_micros(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        return None if value is None else from_micros(value)


# SQLite has a 64-bit rowid only for "INTEGER PRIMARY KEY"; PostgreSQL wants BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    if not url.startswith("sqlite"):
        # The admin API serves requests from a pool of threads: connections beyond the pool are
        # opened and closed per request (a new PostgreSQL backend each), which showed as
        # second-long tails under 20 concurrent clients. Keep enough of them open.
        options = {"pool_size": 20, "max_overflow": 20, **kwargs}
        engine = create_engine(url, **options)
        event.listen(engine, "checkin", _note_idle_since)
        event.listen(engine, "checkout", _ping_if_idle)
        return engine
    engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_immediate)
    return engine


# A pooled connection idle longer than this is pinged before use. A busy pool skips the ping:
# it was a quarter of the round trips of a usage API request. A server restart under load is
# still caught: the first statement on a dead connection invalidates the whole pool.
PING_AFTER_IDLE_S = 5.0
_IDLE_SINCE = "fanmeter_idle_since"


def _note_idle_since(dbapi_connection: Any, record: Any) -> None:  # noqa: ARG001
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:  # noqa: ARG001
    idle_since = record.info.get(_IDLE_SINCE)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return  # new, or in use a moment ago
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        # The ping began a transaction (the driver is not in autocommit); end it, or switching
        # the connection to autocommit for a read-only checkout would fail.
        dbapi_connection.rollback()
    except Exception as error:
        # The pool discards this connection and checks out (or opens) another one.
        raise DisconnectionError(f"pooled connection is dead: {error}") from error


def _configure_sqlite(dbapi_connection: Any, connection_record: Any) -> None:  # noqa: ARG001
    # pysqlite's own transaction handling defers BEGIN; we issue BEGIN IMMEDIATE ourselves
    # so two writers never both read a snapshot and then fail to upgrade it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # A reader (see ``read_only``) begins a deferred transaction: in WAL mode it reads its
    # snapshot without waiting for, or blocking, the one writer.
    deferred = connection.get_execution_options().get(READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


READ_ONLY_OPTION = "fanmeter_read_only"


def read_only(engine: Engine) -> Engine:
    """The same engine for work that only reads.

    On SQLite its transactions are deferred and never wait for a writer. On PostgreSQL it runs
    in autocommit: each read is its own snapshot, and a request saves the BEGIN and ROLLBACK
    round trips (reads of the admin API are independent of one another).
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{READ_ONLY_OPTION: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")
